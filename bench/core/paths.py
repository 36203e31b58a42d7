"""Where the suite's declarative files live (install the repository with ``pip install -e .``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES_DIR = REPO_ROOT / "reproduce"
DATASET_CARDS_DIR = REPO_ROOT / "datasets"
LEADERBOARDS_DIR = REPO_ROOT / "leaderboards"


def require_writable_folder(folder: Path, what: str, fix: str = "") -> Path:
    """Create ``folder`` if needed and check that a file can be written in it (by writing and
    removing one: permission bits alone mislead for root, ACLs and read-only mounts).

    Raises:
        EnvironmentFault: naming ``what`` (e.g. ``"--out"``), the folder, the reason and
            ``fix`` (default: pass ``what`` a writable folder).
    """
    import os
    import tempfile

    from bench.core.errors import EnvironmentFault

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EnvironmentFault(
            f"{what} {folder} cannot be written ({reason}); "
            f"{fix or f'pass {what} a writable folder'}"
        ) from None
    return folder
