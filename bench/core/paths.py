"""Where the suite's files are: the recipes and dataset cards it ships, the folders added with
``--include-path``, and the defaults of what it writes.

Recipes (``reproduce/*.toml``) and dataset cards (``datasets/*.toml``) live in those top-level
folders of the repository and ship in the wheel as data of the ``bench`` package
(``bench/_recipes``, ``bench/_cards``; pyproject ``[tool.setuptools.package-dir]``). An
installed copy reads them from there (``importlib.resources``); a source checkout (editable
install or ``PYTHONPATH``) from the top-level folders.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from bench.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The folder above the ``bench`` package: the repository in a checkout (site-packages when
installed; use ``CHECKOUT`` to tell)."""
CHECKOUT: Path | None = REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() else None
"""The repository root when running from a source checkout, else None (an installed copy)."""


def _shipped(folder: str, package_folder: str) -> Path:
    installed = resources.files("bench") / package_folder
    if installed.is_dir():
        return Path(str(installed))
    return REPO_ROOT / folder


RECIPES_DIR = _shipped("reproduce", "_recipes")
DATASET_CARDS_DIR = _shipped("datasets", "_cards")
LEADERBOARDS_DIR = CHECKOUT / "leaderboards" if CHECKOUT else Path("leaderboards")
"""The checkout's ``leaderboards/``; ``./leaderboards`` for an installed copy."""

INCLUDE_PATH_VARIABLE = "DISTILLBENCH_INCLUDE_PATH"
"""More folders of recipes and cards, separated by ``os.pathsep`` (``--include-path`` sets it,
so that sweep tasks, which are processes of their own, see the same recipes)."""


def include_paths() -> list[Path]:
    """The folders of ``$DISTILLBENCH_INCLUDE_PATH``, in order."""
    return [Path(p) for p in os.environ.get(INCLUDE_PATH_VARIABLE, "").split(os.pathsep) if p]


def add_include_paths(folders: Iterable[str | Path]) -> None:
    """Put ``folders`` (made absolute) before the include paths already set.

    Raises:
        ConfigError: a folder does not exist.
    """
    added = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"--include-path {folder}: no such folder (it should hold recipes *.toml and "
                f"optionally dataset cards in datasets/*.toml)"
            )
        added.append(str(path))
    if added:
        paths = [*added, *map(str, include_paths())]
        os.environ[INCLUDE_PATH_VARIABLE] = os.pathsep.join(dict.fromkeys(paths))


def include_path_env() -> dict[str, str]:
    """``{INCLUDE_PATH_VARIABLE: value}`` when include paths are set, else empty (for
    processes that do not inherit this one's environment, e.g. Ray tasks on a cluster)."""
    value = os.environ.get(INCLUDE_PATH_VARIABLE)
    return {INCLUDE_PATH_VARIABLE: value} if value else {}


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up: each include path, then the shipped ``reproduce/``."""
    return [*include_paths(), RECIPES_DIR]


def card_dirs() -> list[Path]:
    """Where dataset cards are looked up: ``<include path>/datasets``, then ``datasets/``."""
    return [*(p / "datasets" for p in include_paths()), DATASET_CARDS_DIR]


def toml_files(folders: Iterable[Path]) -> dict[str, list[Path]]:
    """File stem -> the ``*.toml`` files of that name in ``folders`` (in folder order; a file
    reached twice, e.g. through an include path naming a shipped folder, counts once)."""
    found: dict[str, list[Path]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            paths = found.setdefault(path.stem, [])
            if path.resolve() not in {p.resolve() for p in paths}:
                paths.append(path)
    return found


def find_toml(name: str, folders: Iterable[Path], what: str) -> Path | None:
    """The one file ``<name>.toml`` in ``folders``; None if there is none.

    Raises:
        ConfigError: two folders hold a file of that name (the name is a file's identity).
    """
    paths = toml_files(folders).get(name, [])
    if len(paths) > 1:
        raise ConfigError(
            f"{what} {name!r} is defined twice, in {paths[0]} and {paths[1]}; rename one "
            f"(its name is its identity in runs and leaderboards)"
        )
    return paths[0] if paths else None


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


def not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file, for a message: "does not exist", "is a folder",
    or what special file it is ("is a FIFO (named pipe), not a file", "is a character device,
    not a file", ...: reading those would block or never end)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return "does not exist"
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    found = (f"is {name}, not a file" for test, name in kinds.items() if test(mode))
    return next(found, "is a file")
