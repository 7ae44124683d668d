"""User-facing errors: a PfsError message names the fix; the CLI prints it on one line."""
from __future__ import annotations

import shlex


class PfsError(Exception):
    """A user mistake (bad flag, missing data, unreachable budget); never a bug."""


class DataError(PfsError):
    """The data set is missing, unknown or malformed."""


class RunError(PfsError):
    """A run directory is missing, incomplete, corrupt or unsafe to load."""


class BudgetError(PfsError):
    """No structure meets the requested FLOPs budget."""


class StopRequested(PfsError):
    """The user asked a job to stop (Ctrl-C); its work up to now is saved and resumable.

    The message says where it stopped and how to continue; the CLI exits with 130 for it
    in every command, as for an interrupted program.
    """


class DivergedError(PfsError):
    """The loss became NaN or infinite: the run stops as failed, naming the step and the fix."""


class PfsWarning(UserWarning):
    """Something the user should know that does not stop the job (the CLI prints one line)."""


def shell_path(path) -> str:
    """A path as it must be typed in a shell, for the commands our messages suggest (paste-able)."""
    return shlex.quote(str(path))


def plural(n: int, word: str) -> str:
    """'1 cell', '3 cells': counts in messages read as words do."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
