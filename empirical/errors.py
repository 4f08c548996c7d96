"""One exception type for a user's mistake: entry points print its message on one line and exit 2."""


class UserError(ValueError):
    """Bad input from the user (a flag, a file, a data set). Raised before any expensive work."""


class TrainingDiverged(UserError):
    """A training whose loss became NaN/inf (too large a step size): nothing from it is saved or cached."""


class DeadlineReached(Exception):
    """A run stopped cleanly at its wall-clock deadline (a GPU slice's budget): its state up to the last step or
    unit is saved, and the same command resumes it. Entry points print its message on one line and exit 75
    (EX_TEMPFAIL: try again)."""

    EXIT_CODE = 75
