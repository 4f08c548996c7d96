"""`python -m empirical.smoothing_study`: the entry point of :mod:`empirical.experiments.smoothing` (see its ``cli``)."""
import sys

from empirical.experiments.smoothing.cli import PRESETS, config_from_args, main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
