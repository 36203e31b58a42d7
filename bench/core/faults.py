"""The one place that turns a fault of the machine into a ``UserError`` naming it and its fix.

Python, SQLite (through SQLAlchemy and MLflow) and ``requests`` report a full disk, a denied
permission, a too-long path, a damaged or locked database and a vanished tracking server with
exceptions of many types, often wrapped in each other. ``explain`` looks through the wrapping
(``__cause__``, ``__context__``, SQLAlchemy's ``orig``) for one of these faults; anything else
is a bug and is left to propagate with its traceback: there is no broad ``except`` here.
"""

from __future__ import annotations

import errno

from bench.core.errors import EnvironmentFault, TrackingError

SQLITE_MAX_PATH = 512
"""SQLite's default ``SQLITE_MAX_PATHNAME``: a longer database path cannot be opened"""

_STORE_DAMAGED = ("file is not a database", "database disk image is malformed")
_STORE_LOCKED = ("database is locked",)
_STORE_FULL = ("database or disk is full",)
_STORE_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "Failed to establish a new connection",
    "Read timed out",
    "unable to open database file",
    "readonly database",
    "disk I/O error",
)
"""text of the errors (requests, SQLAlchemy, as MLflow wraps them) of a store that cannot be
reached or written"""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps, outermost first (no cycles)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return [e for e in seen if isinstance(e, BaseException)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _os_fault(exc: OSError) -> EnvironmentFault | None:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentFault(
            f"no space left on the device{where}: free some space, or pass --out on another "
            "disk, then continue with --resume (the partial file was removed; every finished "
            "file and checkpoint is kept)"
        )
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EnvironmentFault(
            f"permission denied{where}: make it readable (and, for outputs, writable) by this "
            "user, or point the option that names it elsewhere"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return EnvironmentFault(
            f"a path is too long for this file system{where}: use a shorter --out or data root"
        )
    return None


def store_fault(exc: BaseException, store: str) -> TrackingError | None:
    """The ``TrackingError`` that ``exc`` (raised by a call to the tracking store ``store``)
    stands for, or None when it is not a fault of the store (a bug, a bad request)."""
    import requests

    for inner in _chain(exc):
        text = str(inner)
        if any(marker in text for marker in _STORE_DAMAGED):
            database = store.removeprefix("sqlite:///")
            return TrackingError(
                f"tracking store {store} is damaged ({_first_line(inner)}): recover what it "
                f"holds with `sqlite3 {database} .recover | sqlite3 recovered.db` and pass "
                "--tracking-uri sqlite:///recovered.db, or log to a new store with another --out"
            )
        if any(marker in text for marker in _STORE_LOCKED):
            return TrackingError(
                f"tracking store {store} is locked by another process (not a bench command: "
                "those wait their turn): wait for it to finish, or log to another --out"
            )
        if any(marker in text for marker in _STORE_FULL):
            return TrackingError(
                f"tracking store {store}: no space left on its device; free some space, then "
                "continue with --resume"
            )
        if isinstance(inner, requests.ConnectionError | requests.Timeout) or any(
            marker in text for marker in _STORE_UNREACHABLE
        ):
            return TrackingError(
                f"tracking store {store} stopped answering "
                f"({type(inner).__name__}: {_first_line(inner)})"
            )
    return None


def explain(exc: BaseException) -> EnvironmentFault | None:
    """The ``EnvironmentFault`` (one line: the fault, the file, the fix) that ``exc`` or an
    exception it wraps stands for: no space left, permission denied, a path too long, a special
    file where a regular one belongs; None for anything else."""
    for inner in _chain(exc):
        if isinstance(inner, EnvironmentFault):
            return inner
        if isinstance(inner, OSError):
            fault = _os_fault(inner)
            if fault is not None:
                return fault
        if any(marker in str(inner) for marker in _STORE_FULL):
            return EnvironmentFault(
                "no space left on the device of the tracking store: free some space, then "
                "continue with --resume"
            )
    return None
