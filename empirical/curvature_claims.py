"""`python -m empirical.curvature_claims`: the entry point of :mod:`empirical.experiments.curvature` (its ``cli``)."""
import sys

from empirical.experiments.curvature.cli import main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
