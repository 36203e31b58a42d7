"""Recipes: every one validates; budgets only override; the published number has a source."""

import pytest

from bench.cli import main
from bench.errors import ConfigError
from bench.recipes import RECIPES_DIR, Recipe, load_recipe, recipe_names, resolve


def test_every_recipe_validates(capsys):
    assert main(["validate"]) == 0
    assert "4 of 4 recipe(s) valid" in capsys.readouterr().out


def test_the_mnist_recipes_target_dc_table_1():
    expected = {
        "gm-mnist-ipc1": (1, 91.7),
        "gm-mnist-ipc10": (10, 97.4),
        "gm-mnist-ipc50": (50, 98.8),
    }
    for name, (ipc, mean) in expected.items():
        recipe = load_recipe(name)
        assert isinstance(recipe, Recipe)
        assert (recipe.ipc, recipe.published.mean, recipe.published.n) == (ipc, mean, 100)
        assert "Table 1" in recipe.published.source and "2006.05929" in recipe.published.source
    assert load_recipe("gm-mnist").members == tuple(expected)


def test_paper_budget_is_the_papers_protocol_and_smoke_only_overrides():
    recipe = load_recipe("gm-mnist-ipc1")
    paper = resolve(recipe, "paper", seed=0)
    assert paper.method_config.iterations == 1000 and paper.method_config.batch_real == 256
    assert (paper.eval.num_exp, paper.eval.num_eval, paper.eval.epochs) == (5, 20, 1000)
    assert paper.eval.augmentation == "dc" and paper.overrides == ()
    smoke = resolve(recipe, "smoke", seed=0)
    assert smoke.method_config.iterations < 1000 and smoke.eval.num_exp == 1
    assert smoke.method_config.lr_img == paper.method_config.lr_img
    assert smoke.config_hash() != paper.config_hash()


def test_set_overrides_are_recorded_and_unknown_sections_refused():
    recipe = load_recipe("gm-mnist-ipc1")
    cfg = resolve(recipe, "paper", 0, {"method": {"lr_img": "0.2"}})
    assert cfg.method_config.lr_img == 0.2 and cfg.overrides == ("method.lr_img=0.2",)
    with pytest.raises(ConfigError, match="sections are 'method' and 'eval'"):
        resolve(recipe, "paper", 0, {"model": {"x": "1"}})


def test_list_shows_every_recipe_with_its_published_number(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in recipe_names():
        assert name in out
    assert "91.7 ± 0.5 (n=100)" in out and "98.8" in out


def test_validate_reports_broken_recipes(tmp_path, monkeypatch, capsys):
    good = (RECIPES_DIR / "gm-mnist-ipc1.toml").read_text()
    (tmp_path / "gm-mnist-ipc1.toml").write_text(good)
    typo = good.replace('name = "gm-mnist-ipc1"', 'name = "typo"').replace(
        "[method_overrides]", "[method_overrides]\nlr_imgg = 0.2"
    )
    (tmp_path / "typo.toml").write_text(typo)
    (tmp_path / "extra.toml").write_text(
        good.replace('name = "gm-mnist-ipc1"', 'name = "extra"\nbudget = "paper"')
    )
    monkeypatch.setattr("bench.recipes.RECIPES_DIR", tmp_path)
    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    assert "ok      gm-mnist-ipc1" in out
    assert "FAILED  typo: unknown key 'lr_imgg'" in out and "did you mean 'lr_img'" in out
    assert "FAILED  extra: recipe extra.toml: unknown key 'budget'" in out
    assert "1 of 3 recipe(s) valid" in out


def test_a_recipe_without_a_usable_margin_is_refused(tmp_path, monkeypatch):
    good = (RECIPES_DIR / "gm-mnist-ipc1.toml").read_text()
    monkeypatch.setattr("bench.recipes.RECIPES_DIR", tmp_path)
    (tmp_path / "gm-mnist-ipc1.toml").write_text(good.replace("margin = 1.0", "margin = 0.0"))
    with pytest.raises(ConfigError, match=r"\[test\]: need margin > 0"):
        load_recipe("gm-mnist-ipc1")
    (tmp_path / "gm-mnist-ipc1.toml").write_text(good.replace("margin = 1.0", ""))
    with pytest.raises(ConfigError, match="missing the equivalence 'margin'"):
        load_recipe("gm-mnist-ipc1")
