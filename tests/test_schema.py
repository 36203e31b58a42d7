"""Recipe, group and dataset-card files are checked by strict schemas: every problem is one line
naming the file, the key and the fix; the committed JSON schemas are the code's; recipes and
cards can come from folders added with --include-path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import tomllib

from bench.cli import main
from bench.core.errors import ConfigError
from bench.core.paths import CHECKOUT, DATASET_CARDS_DIR, INCLUDE_PATH_VARIABLE, RECIPES_DIR
from bench.core.schema import SchemaError
from bench.data.real import known_datasets, load_card
from bench.spec.recipe_schema import schema_files
from bench.spec.recipes import load_recipe, recipe_names, variant_label

GOOD = (RECIPES_DIR / "gm-mnist-ipc1.toml").read_text()
CARD = (DATASET_CARDS_DIR / "mnist.toml").read_text()


@pytest.fixture
def included(tmp_path, monkeypatch):
    """A folder on the include path: write(name, text) puts a recipe there, card(...) a card."""
    monkeypatch.setenv(INCLUDE_PATH_VARIABLE, str(tmp_path))
    (tmp_path / "datasets").mkdir()

    def write(name: str, text: str = GOOD, card: bool = False) -> None:
        folder = tmp_path / "datasets" if card else tmp_path
        old = 'name = "mnist"' if card else 'name = "gm-mnist-ipc1"'
        (folder / f"{name}.toml").write_text(text.replace(old, f'name = "{name}"'))

    write.folder = tmp_path
    return write


def _problems(load, name: str) -> list[str]:
    with pytest.raises(SchemaError) as info:
        load(name)
    assert all("\n" not in line for line in info.value.problems)
    return list(info.value.problems)


def test_the_known_holes_are_one_line_errors_naming_file_key_and_fix(included):
    included("nosource", GOOD.replace('source = "DC', '# source = "DC'))
    assert _problems(load_recipe, "nosource") == [
        "recipe nosource.toml [published]: 'mean' without 'source'; "
        'add source = "<paper, venue, table>"'
    ]
    included(
        "strbase",
        GOOD.replace(
            'baselines = ["random-mnist-ipc1", "herding-mnist-ipc1"]',
            'baselines = "random-mnist-ipc10"',
        ),
    )
    assert _problems(load_recipe, "strbase") == [
        'recipe strbase.toml: baselines must be a list [...], got "random-mnist-ipc10"; '
        'write baselines = ["random-mnist-ipc10"]'
    ]
    included("title3", GOOD.replace('title = "DC gradient', 'title = 3\ntitel = "DC gradient'))
    assert _problems(load_recipe, "title3") == [
        'recipe title3.toml: title must be a string in quotes, got 3; write title = "3"',
        "recipe title3.toml: unknown key 'titel'; did you mean 'title'?",
    ]
    included("nolicence", CARD.replace("licence =", "# licence ="), card=True)
    assert _problems(load_card, "nolicence") == [
        "dataset card nolicence.toml: missing key 'licence'; add it (the dataset's licence or "
        "terms of use)"
    ]
    included("typo", CARD.replace("channels =", "chanels ="), card=True)
    assert "dataset card typo.toml: unknown key 'chanels'; did you mean 'channels'?" in (
        _problems(load_card, "typo")
    )


def test_the_old_checks_still_hold(included):
    included("paper", GOOD + '\n[budgets.paper]\ndescription = "x"\n')
    assert _problems(load_recipe, "paper") == [
        "recipe paper.toml [budgets]: budgets are 'smoke' and 'reduced' ('paper' is the recipe "
        "itself)"
    ]
    included("stat", GOOD.replace("[published]", '[published]\nstatistic = "best"'))
    assert (
        "must be 'final', 'max_over_evaluations' or 'stream'" in _problems(load_recipe, "stat")[0]
    )
    included("alpha", GOOD.replace("alpha = 0.05", "alpha = 1.5"))
    assert "[test]: need margin > 0 and 0 < alpha < 1" in _problems(load_recipe, "alpha")[0]
    (included.folder / "renamed.toml").write_text(GOOD)
    assert (
        "'name' must equal the file name 'renamed', got 'gm-mnist-ipc1'"
        in _problems(load_recipe, "renamed")[0]
    )
    included("nomean", GOOD.replace("mean = 91.7", "").replace("\nnote = ", "\nxnote = "))
    assert any("[published]: unknown key 'xnote'" in p for p in _problems(load_recipe, "nomean"))
    included("nonote", GOOD.replace("mean = 91.7", "").replace("\nnote = ", "\n# note = "))
    assert any("no 'mean'; say in 'note' why" in p for p in _problems(load_recipe, "nonote"))
    included("stdcard", CARD.replace("std = [0.3081]", "std = [0.3081, 0.3]"), card=True)
    assert "one value per channel (1), got 1 and 2" in _problems(load_card, "stdcard")[0]


def test_a_variant_is_labelled_and_the_rest_are_faithful(included):
    included("fixed", GOOD.replace("ipc = 1\n", 'ipc = 1\nvariant = "uses the fixed schedule"\n'))
    fixed = load_recipe("fixed")
    assert fixed.variant == "uses the fixed schedule"
    assert variant_label(fixed) == "variant: uses the fixed schedule"
    assert variant_label(fixed, width=10) == "variant: uses the…"
    assert variant_label(load_recipe("gm-mnist-ipc1")) == "faithful"


def test_validate_prints_every_problem_of_every_file_and_list_survives_them(included, capsys):
    included("twice", GOOD.replace("ipc = 1\n", 'ipc = "1"\ntitel = "x"\n'))
    included("broken", CARD.replace("channels = 1", 'channels = "1"'), card=True)
    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    assert 'FAILED  twice: recipe twice.toml: ipc must be an integer, got "1"' in out
    assert "FAILED  twice: recipe twice.toml: unknown key 'titel'; did you mean 'title'?" in out
    assert "FAILED  broken (dataset card): dataset card broken.toml: channels must be an " in out
    assert "ok      mnist (dataset card)" in out and "Traceback" not in out
    count = len(recipe_names())
    assert f"{count - 1} of {count} recipe(s) valid" in out
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    broken = next(line for line in lines if line.startswith("twice "))
    assert "BROKEN" in broken and "(+1 more: python -m bench validate twice)" in broken
    assert any(line.startswith("gm-mnist-ipc1 ") and " faithful" in line for line in lines)


def test_a_card_on_the_include_path_is_used_and_a_name_defined_twice_is_refused(included):
    included("mnist2", CARD, card=True)
    assert "mnist2" in known_datasets() and load_card("mnist2").display_name == "MNIST"
    included("gm-mnist-ipc1")
    with pytest.raises(ConfigError, match="recipe 'gm-mnist-ipc1' is defined twice"):
        load_recipe("gm-mnist-ipc1")


def test_include_path_option_reaches_list_validate_and_subprocesses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(INCLUDE_PATH_VARIABLE, "")  # restored after the test
    (tmp_path / "mine.toml").write_text(GOOD.replace('name = "gm-mnist-ipc1"', 'name = "mine"'))
    assert main(["validate", "mine"]) == 1  # not found without the option
    assert "FAILED  mine: unknown recipe 'mine'" in capsys.readouterr().out
    assert main(["validate", "--include-path", str(tmp_path), "mine"]) == 0
    assert "ok      mine" in capsys.readouterr().out
    # the option sets the variable, which sweep tasks (processes of their own) inherit
    assert os.environ[INCLUDE_PATH_VARIABLE] == str(tmp_path.resolve())
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=300,
    )
    assert listed.returncode == 0 and "\nmine " in listed.stdout
    assert main(["list", "--include-path", str(tmp_path / "nope")]) == 2


def test_reproduce_finds_a_recipe_on_the_include_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(INCLUDE_PATH_VARIABLE, "")  # restored after the test
    (tmp_path / "mine.toml").write_text(GOOD.replace('name = "gm-mnist-ipc1"', 'name = "mine"'))
    argv = ["reproduce", "mine", "--data-root", str(tmp_path / "no-data"), "--out", str(tmp_path)]
    assert main([*argv, "--include-path", str(tmp_path)]) == 2
    # it got as far as the data: the recipe was found
    assert "MNIST" in capsys.readouterr().err


def test_committed_json_schemas_are_the_codes_and_every_shipped_file_fits_them():
    assert CHECKOUT is not None
    for relative, schema in schema_files().items():
        committed = json.loads((CHECKOUT / relative).read_text())
        assert committed == schema, f"{relative} is stale: run python -m bench schema"
    schemas = {k.split("/")[-1]: v for k, v in schema_files().items()}
    for name in recipe_names():
        raw = tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text())
        which = "group.schema.json" if "members" in raw else "recipe.schema.json"
        jsonschema.validate(raw, schemas[which])  # an independent validator agrees
    for name in known_datasets():
        raw = tomllib.loads((DATASET_CARDS_DIR / f"{name}.toml").read_text())
        jsonschema.validate(raw, schemas["card.schema.json"])
    bad = tomllib.loads(GOOD.replace("ipc = 1\n", "ipc = 1\nipcc = 2\n"))
    with pytest.raises(jsonschema.ValidationError, match="ipcc"):
        jsonschema.validate(bad, schemas["recipe.schema.json"])


@pytest.mark.parametrize(
    ("table", "entry", "message"),
    [
        ("method_overrides", {"lr_imgg": 0.1}, "lr_imgg"),  # gm's config has lr_img
        ("method_overrides", {"iterations": "many"}, "'many' is not of type 'integer'"),
        ("eval", {"epochz": 3}, "epochz"),
        ("eval", {"augmentation": "flip"}, "'flip' is not one of"),
        ("budgets.smoke.method", {"outer_loopp": 1}, "outer_loopp"),
        ("budgets.reduced.eval", {"num_exp": 1.5}, "1.5 is not of type 'integer'"),
    ],
)
def test_the_recipe_schema_types_the_method_and_eval_tables(table, entry, message):
    """An editor's validator sees a method's config fields (by the recipe's ``method``) and the
    evaluation protocol's in their tables, not free dictionaries."""
    schema = schema_files()["reproduce/recipe.schema.json"]
    raw = tomllib.loads((RECIPES_DIR / "gm-mnist-ipc1.toml").read_text())
    jsonschema.validate(raw, schema)
    where = raw
    for key in table.split(".")[:-1]:
        where = where[key]
    where.setdefault(table.split(".")[-1], {}).update(entry)
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(raw, schema)


def test_schema_command_writes_the_three_files(tmp_path, capsys):
    assert main(["schema", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["card.schema.json", "group.schema.json", "recipe.schema.json"]
