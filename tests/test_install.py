"""The suite installs like a library: recipes and dataset cards ship in the wheel and are found
from any directory; the explicit package list of pyproject.toml misses no package."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import tomllib
from setuptools import find_packages

from bench.core.paths import CHECKOUT
from bench.data.real import known_datasets
from bench.spec.recipes import recipe_names


def test_pyproject_lists_every_package_and_ships_recipes_and_cards():
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(CHECKOUT), include=["bench*"]))
    # the methods/ folder installs as distillbench_methods (package-dir)
    found |= {
        "distillbench_methods" + name.removeprefix("methods")
        for name in find_packages(str(CHECKOUT), include=["methods*"])
    }
    assert found <= set(config["packages"]), "add the new package to [tool.setuptools] packages"
    assert config["package-dir"] == {
        "bench._recipes": "reproduce",
        "bench._cards": "datasets",
        "distillbench_methods": "methods",
    }
    # never a top-level package a user's folder or Hugging Face's datasets would shadow
    assert not {"datasets", "methods"} & {name.split(".")[0] for name in config["packages"]}


@pytest.mark.slow
def test_a_non_editable_install_lists_and_validates_from_another_directory(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    for name in ("bench", "methods", "reproduce", "datasets"):
        shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__py*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source / name)
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(source)],
        check=True,
        timeout=600,
    )
    assert (target / "bench" / "_recipes" / "gm-mnist-ipc1.toml").is_file()
    assert (target / "bench" / "_cards" / "mnist.toml").is_file()
    assert (target / "distillbench_methods" / "gm.py").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # only the installed copy and the dependencies of this environment
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}")
    env.pop("DISTILLBENCH_INCLUDE_PATH", None)

    def bench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bench", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    where = bench("schema", "--out", ".")
    assert where.returncode == 0, where.stderr
    listed = bench("list")
    assert listed.returncode == 0, listed.stderr
    for name in recipe_names():
        assert f"\n{name} " in listed.stdout
    validated = bench("validate")
    count, cards = len(recipe_names()), len(known_datasets())
    assert f"{count} of {count} recipe(s) valid, {cards} of {cards} dataset card(s)" in (
        validated.stdout
    ), validated.stdout + validated.stderr
    probe = "import bench.core.paths as p, bench.core.provenance as v, distillbench_methods as m; "
    probe += "print(p.CHECKOUT, p.RECIPES_DIR, p.LEADERBOARDS_DIR, v.git_commit(), m.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    checkout, recipes, leaderboards, commit, methods = out.stdout.split()
    assert checkout == "None" and recipes.startswith(str(target))
    assert methods.startswith(str(target))
    assert (leaderboards, commit) == ("leaderboards", "unknown")


def _pins() -> dict[str, str]:
    """constraints.txt as ``{canonical name: version}``."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (CHECKOUT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_constraints_pin_every_requirement_and_this_environment_matches_them():
    """CI installs with constraints.txt (tox.ini's install_command): a requirement added to
    pyproject.toml without a pin, or an environment that drifted from the pins, fails here.
    Regenerate the file as its header says."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _pins()
    site_packages = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("distillbench")]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is required by pyproject.toml but not in constraints.txt"
        assert requirement.specifier.contains(pins[name]), (text, pins[name])
    drifted = {
        name: (dist.version, pins[name])
        for dist in metadata.distributions(path=list(site_packages))  # not vendored copies
        if (name := canonicalize_name(dist.metadata["Name"])) in pins and dist.version != pins[name]
    }
    assert not drifted, (
        f"installed versions differ from constraints.txt (installed, pinned): {drifted}"
    )
