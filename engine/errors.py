"""User-facing errors: a PfsError message names the fix; the CLI prints it on one line."""
from __future__ import annotations


class PfsError(Exception):
    """A user mistake (bad flag, missing data, unreachable budget); never a bug."""


class DataError(PfsError):
    """The data set is missing, unknown or malformed."""


class RunError(PfsError):
    """A run directory is missing, incomplete, corrupt or unsafe to load."""


class BudgetError(PfsError):
    """No structure meets the requested FLOPs budget."""
