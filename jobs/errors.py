"""Errors the CLI reports as one line without a traceback."""


class UsageError(ValueError):
    """A bad option or option combination: exit code 2."""


class JobError(RuntimeError):
    """A failure with a clear, user-facing cause (bad input data, missing file): exit code 1."""
