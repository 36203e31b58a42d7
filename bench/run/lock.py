"""One run, one writer: the process distilling, evaluating or resuming a run holds an OS file
lock beside its checkpoints (``<out>/checkpoints/<run id>/.lock``) for as long as it runs.

A second process that would write the same run (a second ``--resume`` of it, a sweep's retry
racing a manual resume) is refused in one line naming the holder (host, pid, since when, from
``.lock.owner`` beside the lock and the run's MLflow tag ``writer``). The lock is the operating
system's (``filelock``: ``fcntl.flock`` on Unix), so the death of its holder releases it: a
stale lock from a killed process is taken over by the next resume, with nothing to clean up.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from bench.core.errors import UserError
from bench.core.hashing import write_atomic


def holder() -> dict:
    """This process as a lock holder: host, pid and start time (UTC)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class RunLock:
    """The lock of run ``run_id`` in ``folder`` (its checkpoint folder)."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.folder, self.run_id = Path(folder), run_id
        self._lock: FileLock | None = None

    @property
    def owner_file(self) -> Path:
        return self.folder / ".lock.owner"

    def acquire(self) -> dict:
        """Take the lock (at once or not at all) and record this process as its holder;
        returns the holder record.

        Raises:
            UserError: another live process holds it (named, with what to do).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UserError(
                f"run {self.run_id} is being written by another process ({self.describe()}); "
                "wait for it to end or stop it, then resume again"
            ) from None
        self._lock = lock
        me = holder()
        write_atomic(self.owner_file, json.dumps(me))
        return me

    def describe(self) -> str:
        """The recorded holder in words, or that it is unknown."""
        try:
            owner = json.loads(self.owner_file.read_text())
            return f"pid {owner['pid']} on {owner['host']} since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "holder not recorded"

    def release(self) -> None:
        """Give the lock up (the process's exit does too)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
