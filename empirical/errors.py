"""One exception type for a user's mistake: entry points print its message on one line and exit 2."""


class UserError(ValueError):
    """Bad input from the user (a flag, a file, a data set). Raised before any expensive work."""


class TrainingDiverged(UserError):
    """A training whose loss became NaN/inf (too large a step size): nothing from it is saved or cached."""
