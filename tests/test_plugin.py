"""A method outside the repository is one module plus its recipe, found through the
``distillbench.methods`` entry point: the example package in ``examples/dm-example``."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core.paths import REPO_ROOT
from bench.spec.method import Kind, load_method, registered_methods

EXAMPLE = REPO_ROOT / "examples" / "dm-example"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example package installed (not editable) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_the_example_registers_through_its_entry_point(installed_example, monkeypatch):
    assert "dm-example" not in registered_methods()
    monkeypatch.syspath_prepend(str(installed_example))
    assert registered_methods()["dm-example"] == "distillbench_dm_example.method:METHOD"
    method = load_method("dm-example")
    assert method.kind is Kind.DISTILLED and method.config_class.__name__ == "DMConfig"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed_example), str(REPO_ROOT)]))
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "methods"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "dm-example" in listed.stdout


def test_the_example_distils_and_resumes_through_the_contract(
    installed_example, mnist, monkeypatch
):
    monkeypatch.syspath_prepend(str(installed_example))
    method = load_method("dm-example")
    train, _ = mnist
    small = dataclasses.replace(train, images=train.images[:2000], labels=train.labels[:2000])
    config = method.config_class(iterations=3, batch_real=16)
    states = []

    def keep(it, metrics, state):
        assert metrics["distill/loss"] >= 0
        states.append(copy.deepcopy(state()))  # optimiser buffers change in place

    cpu = torch.device("cpu")
    full = method.distill(small, 2, config, 5, cpu, after_iteration=keep)
    assert full.images.shape == (20, 1, 28, 28) and full.labels.tolist() == [
        c for c in range(10) for _ in range(2)
    ]
    assert not torch.equal(full.images, states[0]["images"])  # the images keep moving
    resumed = method.distill(small, 2, config, 5, cpu, resume=states[0])
    assert torch.equal(full.images, resumed.images)  # resume is exact


@pytest.mark.slow
def test_the_readmes_walk_reproduces_then_evaluates_the_examples_set(installed_example, tmp_path):
    """docs/adding-a-method.md: reproduce the example's recipe from its own folder, then
    evaluate the saved set: the same accuracies (tiny budget)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(installed_example), str(REPO_ROOT)]),
        MLFLOW_TRACKING_URI="",
    )
    recipes = str(EXAMPLE / "recipes")
    tiny = ["--set", "method.iterations=2", "--set", "eval.epochs=1", "--set", "eval.num_eval=2"]
    where = ["--out", str(tmp_path), "--device", "cpu", "--include-path", recipes]
    reproduced = subprocess.run(
        [sys.executable, "-m", "bench", "reproduce", "dm-example-mnist-ipc1", *where, *tiny],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert reproduced.returncode == 0, reproduced.stderr[-2000:]
    (saved,) = tmp_path.glob("sets/*/set0/synthetic_set.safetensors")
    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "evaluate",
            str(saved),
            "--recipe",
            "dm-example-mnist-ipc1",
            "--submitted-by",
            "test",
            *where,
            *tiny,
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]

    def accuracies(path: Path) -> list:
        import json

        return json.loads(path.read_text())["ConvNet"]

    made, judged = sorted(tmp_path.glob("sets/*/accuracies.json"), key=lambda p: p.stat().st_mtime)
    assert accuracies(made) == accuracies(judged)


def test_a_name_registered_twice_is_one_line_naming_both(monkeypatch, capsys):
    """A plugin taking a built-in's name (or two plugins one name) is refused, not resolved by
    the order of installation."""
    from importlib.metadata import EntryPoint

    import bench.spec.method as registry

    clash = [
        EntryPoint("gm", "distillbench_methods.gm:METHOD", registry.METHOD_GROUP),
        EntryPoint("gm", "someone_else.gm:METHOD", registry.METHOD_GROUP),
    ]
    monkeypatch.setattr(
        registry, "entry_points", lambda group: clash * (group == "distillbench.methods")
    )
    assert main(["methods"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'gm' is registered twice" in err
    assert "distillbench_methods.gm:METHOD" in err and "someone_else.gm:METHOD" in err
    # the same target twice (stale metadata of one package) is one registration
    monkeypatch.setattr(registry, "entry_points", lambda group: clash[:1] * 2)
    assert registered_methods() == {"gm": "distillbench_methods.gm:METHOD"}


def test_methods_lists_a_config_with_its_field_docstrings(capsys):
    """``bench methods gm``: every GMConfig field with its annotation, default and the
    docstring written under it in methods/gm.py."""
    import dataclasses

    from distillbench_methods.gm import GMConfig

    assert main(["methods", "gm"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(GMConfig):
        assert f"\n{f.name} " in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "int | None" in lines["outer_loop"] and "None" in lines["outer_loop"]
    assert "0.1" in lines["lr_img"] and "SGD learning rate of the synthetic images" in out
    assert "(speed only)" in lines["compile"]


def test_version_is_the_installed_distribution(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"distillbench {version('distillbench')}"


def test_the_example_and_the_builtins_import_bench_only_through_the_api():
    """A method author needs one public module, ``bench.api`` (import-linter checks methods/;
    the example package is not installed where it runs, so its imports are read here)."""
    import ast

    files = [*EXAMPLE.rglob("src/**/*.py"), *(REPO_ROOT / "methods").glob("*.py")]
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                assert module == "bench.api" or not module.startswith("bench"), (path, module)


def test_nothing_imports_the_methods_folder_by_its_folder_name():
    """The built-ins are ``distillbench_methods``; from the repository root ``methods`` would
    import too, as a second copy of every module (two ``GMConfig`` classes, two registries)."""
    import ast

    for folder in ("bench", "methods", "tests", "scripts", "examples"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module or ""]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                assert all(m.split(".")[0] != "methods" for m in modules), (path, modules)


def test_a_methods_folder_in_the_working_directory_does_not_stand_in_for_the_built_ins(tmp_path):
    """Under ``python -m`` the working directory comes first on ``sys.path``: a user's own
    ``methods/`` package there must not be imported in place of the built-in methods, whose
    package is ``distillbench_methods`` (the repository's ``methods/`` folder, pyproject
    package-dir)."""
    own = tmp_path / "methods"
    own.mkdir()
    (own / "__init__.py").write_text("raise SystemExit('the user folder was imported')\n")
    (own / "gm.py").write_text("METHOD = None\n")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "methods", "gm"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "GMConfig" in result.stdout and "outer_loop" in result.stdout
