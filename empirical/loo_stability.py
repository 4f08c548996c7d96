"""`python -m empirical.loo_stability`: the entry point of :mod:`empirical.experiments.loo` (see its ``cli``)."""
import sys

from empirical.experiments.loo.cli import PRESETS, config_from_args, main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
