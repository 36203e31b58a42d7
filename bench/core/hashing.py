"""Content hashes of the files the suite writes, and writes that a kill cannot leave half done.

Every artifact a run logs gets its SHA-256 recorded twice: as the MLflow tag
``sha256/<artifact name>`` of its run and as a line of ``SHA256SUMS`` in the folder of the local
copy (the ``sha256sum`` format, so ``cd <folder> && sha256sum -c SHA256SUMS`` checks a run's
files without the suite).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

SUMS = "SHA256SUMS"
"""name of the per-folder manifest (``sha256sum -c`` format: ``<hex>  <file name>``)"""


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same folder,
    flushed to disk and renamed over it (``os.replace``), so that a kill or a full disk
    mid-write leaves the previous file, never a truncated one; the temporary file is removed if
    the write fails."""
    with atomic_target(Path(path)) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so libraries that read the format from
    it still can) for a library to write to (``savefig``, ``save_file``); when the block ends
    it is flushed to disk and renamed over ``path``, and on any error it is removed and
    ``path`` left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def record_sha256(path: Path) -> str:
    """Hash ``path`` and set its line in ``SHA256SUMS`` beside it (lines sorted by name, so the
    manifest itself is byte-identical between identical runs); returns the hex digest."""
    path = Path(path)
    digest = sha256_file(path)
    sums = path.parent / SUMS
    entries = read_sums(sums)
    entries[path.name] = digest
    text = "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))
    write_atomic(sums, text.encode())
    return digest


def read_sums(sums: Path) -> dict[str, str]:
    """``{file name: hex digest}`` of a ``SHA256SUMS`` file (empty if there is none)."""
    if not sums.is_file():
        return {}
    entries = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name:
            entries[name] = digest
    return entries
