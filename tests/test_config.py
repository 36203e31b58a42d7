"""Typed overrides: recipes and --set only change known keys, with checked types."""

import pytest

from bench.core.config import apply_overrides, parse_set_options
from bench.core.errors import ConfigError
from bench.evaluation.evaluate import EvalProtocol
from distillbench_methods.gm import GMConfig


def test_strings_from_the_command_line_are_parsed_to_the_field_type():
    cfg = apply_overrides(
        GMConfig(),
        {"lr_img": "0.05", "iterations": "7", "outer_loop": "none", "init": "real"},
        "--set",
    )
    assert (cfg.lr_img, cfg.iterations, cfg.outer_loop, cfg.init) == (0.05, 7, None, "real")
    ev = apply_overrides(EvalProtocol(), {"models": "ConvNet", "augmentation": "dc"}, "--set")
    assert ev.models == ("ConvNet",) and ev.augmentation == "dc"


def test_unknown_key_names_the_nearest_one():
    with pytest.raises(ConfigError, match="unknown key 'lr_imgs'.*did you mean 'lr_img'"):
        apply_overrides(GMConfig(), {"lr_imgs": 1.0}, "--set method.*")


@pytest.mark.parametrize(
    "overrides", [{"iterations": "ten"}, {"iterations": 2.5}, {"init": "zeros"}, {"lr_img": "fast"}]
)
def test_ill_typed_values_are_errors(overrides):
    with pytest.raises(ConfigError, match="bad value"):
        apply_overrides(GMConfig(), overrides, "--set method.*")


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        (GMConfig(), {"iterations": 0}, "method.iterations must be at least 1"),
        (GMConfig(), {"model": "VGG16"}, "unknown network 'VGG16'"),
        (EvalProtocol(), {"models": "ConvNet,VGG16"}, "unknown or no network"),
        (EvalProtocol(), {"num_eval": "0"}, "eval.num_eval must be at least 1"),
        (GMConfig(), {"matching": "batched", "compile": "true"}, "per_class matching only"),
    ],
)
def test_impossible_values_are_refused_before_a_run(config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(config, overrides, "--set")


def test_set_options_need_a_section_and_a_value():
    assert parse_set_options(["method.lr_img=0.2", "eval.epochs=5"]) == {
        "method": {"lr_img": "0.2"},
        "eval": {"epochs": "5"},
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_options(["method.lr_img"])
    with pytest.raises(ConfigError, match="prefix the key with its section"):
        parse_set_options(["lr_img=0.2"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no", False),  # a command-line string: pydantic's lax mode
        ("true", True),
        (True, True),  # a recipe's TOML value: strict
    ],
)
def test_booleans_from_either_source(value, expected):
    overrides = {"augmentation": "dc", "augment_test": value}
    assert apply_overrides(EvalProtocol(), overrides, "--set").augment_test is expected


@pytest.mark.parametrize(
    "overrides",
    [{"iterations": True}, {"iterations": 2.0}, {"lr_img": True}, {"iterations": "1e23"}],
)
def test_typed_recipe_values_are_checked_strictly(overrides):
    """TOML gives typed values: no bool or float for an int, no bool for a float."""
    with pytest.raises(ConfigError, match="bad value"):
        apply_overrides(GMConfig(), overrides, "recipe [method]")


def test_an_int_for_a_float_is_widened_and_a_toml_array_is_a_tuple():
    cfg = apply_overrides(GMConfig(), {"lr_img": 1}, "recipe [method]")
    assert cfg.lr_img == 1.0 and isinstance(cfg.lr_img, float)
    ev = apply_overrides(EvalProtocol(), {"models": ["ConvNet", "MLP"]}, "recipe [eval]")
    assert ev.models == ("ConvNet", "MLP")


def test_a_commands_options_are_its_config_dataclasses_fields():
    """``python -m bench experts`` takes one option per ``ExpertConfig`` field, parsed like
    ``--set`` values; an option left out keeps the dataclass default."""
    import argparse
    import dataclasses

    from bench.core.config import add_config_arguments, config_from_arguments
    from distillbench_methods.experts import ExpertConfig

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ExpertConfig, required=("dataset",))
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings} - {"-h"}
    assert flags == {"--" + f.name.replace("_", "-") for f in dataclasses.fields(ExpertConfig)}
    argv = ["--dataset", "mnist", "--lr", "0.1", "--images-per-class", "none", "--epochs", "3"]
    config = config_from_arguments(ExpertConfig, parser.parse_args(argv))
    assert config == ExpertConfig(dataset="mnist", lr=0.1, epochs=3)
    with pytest.raises(ConfigError, match="bad value for 'num_experts'"):
        config_from_arguments(
            ExpertConfig, parser.parse_args(["--dataset", "x", "--num-experts", "2.5"])
        )
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --dataset is required
