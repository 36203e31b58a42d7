"""Errors a user can fix. The CLI prints them as one line (no traceback) and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can fix; the message names the problem and the fix."""

    exit_code = 2


class ConfigError(UserError):
    """Unknown or ill-typed config key, recipe or override."""


class DataNotFoundError(UserError):
    """The real dataset is not where ``--data-root`` points."""


class ShapeError(UserError):
    """A tensor (synthetic set, checkpoint) does not have the shape the dataset needs."""


class CheckpointError(UserError):
    """A checkpoint is corrupt or belongs to another run or config."""


class DivergedError(UserError):
    """The distillation loss became NaN or infinite; the last good synthetic set is kept."""

    exit_code = 3


class EnvironmentFault(UserError):
    """The machine refuses something the run needs: an unwritable folder, an unreachable or
    unwritable tracking store, an unavailable device, a corrupt data file, a missing optional
    dependency."""


class TrackingError(EnvironmentFault):
    """The tracking store cannot be reached or written (a server that stopped answering, a
    read-only SQLite database); the run's checkpoints keep what was computed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or a sweep stopping the task), raised in the main thread so that
    it is handled exactly as Ctrl-C: runs marked FAILED, artifacts kept, resume command shown."""
