"""Recipes: every one validates; budgets only override; the published number has a source."""

import pytest

from bench.cli import main
from bench.core.errors import ConfigError
from bench.spec.recipes import (
    RECIPES_DIR,
    Recipe,
    load_recipe,
    protocol_hash,
    recipe_names,
    resolve,
)


def _published(*names: str) -> dict[str, tuple[float, float]]:
    """Each recipe's published (mean, std)."""
    published = {name: load_recipe(name).published for name in names}
    return {name: (p.mean, p.std) for name, p in published.items()}


def test_every_recipe_validates(capsys):
    assert main(["validate"]) == 0
    count = len(recipe_names())
    assert f"{count} of {count} recipe(s) valid" in capsys.readouterr().out


def test_every_cell_of_dc_table_1_has_a_recipe_with_the_reference_protocol():
    datasets = ("mnist", "fashionmnist", "svhn", "cifar10")
    members = load_recipe("dc-table1").members
    for dataset in datasets:
        assert f"whole-{dataset}" in members
        for method in ("gm", "random", "herding"):
            for ipc in (1, 10, 50):
                recipe = load_recipe(f"{method}-{dataset}-ipc{ipc}")
                assert f"{method}-{dataset}-ipc{ipc}" in members
                assert (recipe.method, recipe.dataset, recipe.ipc) == (method, dataset, ipc)
                protocol = resolve(recipe, "paper", 0).eval
                # get_daparam: augmentation at evaluation only for MNIST (1000 epochs there)
                augmented = dataset == "mnist"
                assert protocol.augmentation == ("dc" if augmented else "none")
                assert protocol.epochs == (1000 if augmented else 300)
                assert (protocol.num_exp, protocol.num_eval) == (5, 20)
    assert _published("gm-cifar10-ipc1", "random-cifar10-ipc10", "herding-cifar10-ipc50") == {
        "gm-cifar10-ipc1": (28.3, 0.5),
        "random-cifar10-ipc10": (26.0, 1.2),
        "herding-cifar10-ipc50": (40.4, 0.6),
    }
    missing = load_recipe("random-svhn-ipc1")
    assert missing.published is None and missing.published_note.startswith("NOT FOUND")


def test_whole_dataset_recipes_have_no_ipc_and_others_need_one(tmp_path, monkeypatch):
    assert load_recipe("whole-mnist").ipc is None
    whole = (RECIPES_DIR / "whole-mnist.toml").read_text()
    gm = (RECIPES_DIR / "gm-mnist-ipc1.toml").read_text()
    monkeypatch.setattr("bench.core.paths.RECIPES_DIR", tmp_path)
    (tmp_path / "whole-mnist.toml").write_text(
        whole.replace('dataset = "mnist"', 'dataset = "mnist"\nipc = 1')
    )
    (tmp_path / "gm-mnist-ipc1.toml").write_text(gm.replace("ipc = 1\n", ""))
    for name in ("whole-mnist", "gm-mnist-ipc1"):  # checked against the method's kind
        with pytest.raises(ConfigError, match="'ipc' is required, except for methods"):
            resolve(load_recipe(name), "smoke", 0)


def test_runs_off_the_papers_protocol_say_why():
    recipe = load_recipe("gm-cifar10-ipc1")
    assert resolve(recipe, "paper", 0).off_protocol() == []
    assert resolve(recipe, "smoke", 0).off_protocol() == ["budget=smoke"]
    jpeg = resolve(recipe, "paper", 0, dataset="cifar10-jpeg")
    assert jpeg.dataset == "cifar10-jpeg" and jpeg.recipe_dataset == "cifar10"
    assert jpeg.off_protocol() == ["data: cifar10-jpeg, not the original cifar10"]
    with pytest.raises(ConfigError, match="--dataset mnist: not a copy of gm-cifar10-ipc1"):
        resolve(recipe, "paper", 0, dataset="mnist")


def test_eval_models_follow_the_recipes_own_model():
    recipe = load_recipe("gm-mnist-ipc1")
    config = resolve(recipe, "paper", 0, eval_models=("ResNet18", "ConvNet", "MLP"))
    assert config.eval.models == ("ConvNet", "ResNet18", "MLP")
    assert config.off_protocol() == []  # the recipe's ConvNet result is unchanged


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
    for baseline in ("random-mnist-ipc1", "herding-mnist-ipc1"):  # gm-mnist-ipc1's baselines
        (tmp_path / f"{baseline}.toml").write_text((RECIPES_DIR / f"{baseline}.toml").read_text())
    typo = good.replace('name = "gm-mnist-ipc1"', 'name = "typo"').replace(
        "[method_overrides]", "[method_overrides]\nlr_imgg = 0.2"
    )
    (tmp_path / "typo.toml").write_text(typo)
    (tmp_path / "extra.toml").write_text(
        good.replace('name = "gm-mnist-ipc1"', 'name = "extra"\nbudget = "paper"')
    )
    monkeypatch.setattr("bench.core.paths.RECIPES_DIR", tmp_path)
    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    assert "ok      gm-mnist-ipc1" in out
    assert "FAILED  typo: unknown key 'lr_imgg'" in out and "did you mean 'lr_img'" in out
    assert "FAILED  extra: recipe extra.toml: unknown key 'budget'; did you mean 'budgets'?" in out
    assert "3 of 5 recipe(s) valid" in out


def test_a_recipe_without_a_usable_margin_is_refused(tmp_path, monkeypatch):
    good = (RECIPES_DIR / "gm-mnist-ipc1.toml").read_text()
    monkeypatch.setattr("bench.core.paths.RECIPES_DIR", tmp_path)
    (tmp_path / "gm-mnist-ipc1.toml").write_text(good.replace("margin = 1.0", "margin = 0.0"))
    with pytest.raises(ConfigError, match=r"\[test\]: need margin > 0"):
        load_recipe("gm-mnist-ipc1")
    (tmp_path / "gm-mnist-ipc1.toml").write_text(good.replace("margin = 1.0", ""))
    with pytest.raises(ConfigError, match=r"\[test\]: missing key 'margin'; add it \(the equiv"):
        load_recipe("gm-mnist-ipc1")


def test_speed_only_overrides_keep_a_run_on_the_papers_protocol():
    recipe = load_recipe("gm-mnist-ipc1")
    fast = {"eval": {"networks_per_batch": "20"}, "method": {"matching": "batched"}}
    config = resolve(recipe, "paper", 0, fast)
    assert config.eval.networks_per_batch == 20 and config.method_config.matching == "batched"
    assert config.off_protocol() == []
    fast["method"]["lr_img"] = "0.2"
    assert resolve(recipe, "paper", 0, fast).off_protocol() == ["overrides: method.lr_img=0.2"]


def test_channels_last_and_compile_are_speed_only_but_bf16_is_off_protocol():
    recipe = load_recipe("gm-mnist-ipc1")
    fast = {"method": {"channels_last": "true", "compile": "true"}}
    assert resolve(recipe, "paper", 0, fast).off_protocol() == []
    bf16 = resolve(recipe, "paper", 0, {"method": {"precision": "bf16"}})
    assert bf16.off_protocol() == ["overrides: method.precision=bf16"]


def test_a_verdict_off_the_protocol_names_every_reason():
    """Budget, data copy and each override that changes results; never a speed-only one."""
    from bench.evaluation.stats import Published, verdict

    recipe = load_recipe("gm-cifar10-ipc1")
    options = {
        "method": {"lr_img": "0.2", "compile": "true", "batch_real": "8"},
        "eval": {"epochs": "3", "networks_per_batch": "2"},
    }
    config = resolve(recipe, "smoke", 0, options, dataset="cifar10-jpeg")
    reasons = config.off_protocol()
    assert reasons == [
        "budget=smoke",
        "overrides: eval.epochs=3, method.batch_real=8, method.lr_img=0.2",
        "data: cifar10-jpeg, not the original cifar10",
    ]
    judged = verdict([[30.0, 31.0]], Published(28.3, 0.7, 100, "x", 5, 20), 1.0, 0.05, reasons)
    assert judged.verdict == f"not comparable ({'; '.join(reasons)})"


def test_a_field_added_later_keeps_the_recorded_designs_hashes():
    # efb0c29617d4 is the protocol hash gm-mnist-ipc1's paper sets 0-1 were recorded with
    # (leaderboards/runs/2f3942982a0d4ace9200660dccc7a306.json), before eval.dsa_align_corners
    config = resolve(load_recipe("gm-mnist-ipc1"), "paper", 0)
    assert config.protocol_hash() == "efb0c29617d4"
    recorded = config.as_dict()
    del recorded["eval"]["dsa_align_corners"]  # a config.json written before the field
    assert protocol_hash(recorded) == config.protocol_hash()
    unaligned = {"eval": {"dsa_align_corners": "false"}}
    changed = resolve(load_recipe("gm-mnist-ipc1"), "paper", 0, unaligned)
    assert changed.protocol_hash() != config.protocol_hash()
    assert changed.config_hash() != config.config_hash()
    assert changed.off_protocol() == ["overrides: eval.dsa_align_corners=false"]


def test_dsa_and_dm_recipes_follow_the_reference_readme():
    members = load_recipe("dc-table1").members
    for dataset in ("mnist", "fashionmnist", "svhn", "cifar10"):
        # readme.md: no flip for the digit datasets
        flip = "" if dataset in ("mnist", "svhn") else "flip_"
        strategy = f"color_crop_cutout_{flip}scale_rotate"
        for method, evaluations in (("dsa", 20), ("dm", 5)):
            for ipc in (1, 10, 50):
                name = f"{method}-{dataset}-ipc{ipc}"
                assert name in members
                config = resolve(load_recipe(name), "paper", 0)
                assert config.method_config.dsa_strategy == config.eval.dsa_strategy == strategy
                assert config.method_config.init == "real"
                assert config.eval.augmentation == "dsa" and config.eval.epochs == 1000
                assert not config.eval.dsa_align_corners  # DC's DiffAugment
                assert (config.eval.num_exp, config.eval.num_eval) == (5, evaluations)
                smoke = resolve(load_recipe(name), "smoke", 0)  # its budgets build valid configs
                assert smoke.method_config.iterations < config.method_config.iterations
    assert resolve(load_recipe("dm-mnist-ipc1"), "paper", 0).method_config.iterations == 20000
    # the sources' numbers (the recipes' notes): README/KIP for DSA, FTD for DM on CIFAR-10,
    # DANCE's Table 1 for DM on FashionMNIST; none found for DM on SVHN
    assert _published("dsa-mnist-ipc1", "dm-cifar10-ipc50", "dm-fashionmnist-ipc10") == {
        "dsa-mnist-ipc1": (88.7, 0.6),
        "dm-cifar10-ipc50": (63.0, 0.4),
        "dm-fashionmnist-ipc10": (83.5, 0.3),
    }
    assert load_recipe("dm-svhn-ipc1").published is None
    assert resolve(load_recipe("dsa-mnist-ipc1"), "paper", 0).method_config.iterations == 1000
