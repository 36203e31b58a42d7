"""Command-line options come from one set of dataclasses: parsing, the argv a sweep hands its
tasks and the printed resume command agree on every option."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from bench.cli import build_parser
from bench.core.errors import UserError
from bench.run.options import RunOptions, from_namespace, reproduce_argv
from bench.run.sweep import SweepOptions, Task, task_command

# every option set away from its default
EVERYTHING = RunOptions(
    data_root=Path("/data/sets"),
    tracking_uri="http://127.0.0.1:5000",
    out=Path("/tmp/out dir"),
    device="cpu",
    download=True,
    budget="reduced",
    set_items=("method.lr_img=0.05", "eval.num_eval=3"),
    checkpoint_every=3,
    dataset="cifar10-jpeg",
    eval_models=("MLP", "LeNet"),
    seed=7,
    resume="0123abcd",
    parallel_sets=3,
    sets="0,2-3",
    distilled_from=("leaderboards/runs/a.json", "b c.json"),
)


def _parse(argv: list[str]) -> RunOptions:
    assert argv[:3] == ["-m", "bench", "reproduce"]
    args = build_parser().parse_args(argv[2:])
    return from_namespace(RunOptions, args)


def test_every_field_of_run_options_is_an_option_that_round_trips():
    names = {f.name for f in dataclasses.fields(RunOptions)}
    assert {f for f in names if getattr(EVERYTHING, f) == getattr(RunOptions(), f)} == set()
    assert _parse(reproduce_argv("gm-mnist-ipc1", EVERYTHING)) == EVERYTHING
    assert _parse(reproduce_argv("gm-mnist-ipc1", RunOptions())) == RunOptions()


def test_the_printed_resume_command_carries_every_option():
    """What ``Reproduction.start`` prints after a failure (``shlex.join`` of this argv)."""
    original = dataclasses.replace(EVERYTHING, resume=None)
    resume = dataclasses.replace(original, resume="run42")
    hint = shlex.join(["python", *reproduce_argv("gm-mnist-ipc1", resume)])
    assert _parse(shlex.split(hint)[1:]) == resume


def test_the_resume_command_finds_recipes_from_include_paths_again(tmp_path, monkeypatch):
    from bench.core.paths import INCLUDE_PATH_VARIABLE

    monkeypatch.setenv(INCLUDE_PATH_VARIABLE, str(tmp_path))
    argv = reproduce_argv("my-recipe", RunOptions(resume="run1"))
    args = build_parser().parse_args(argv[2:])
    assert [Path(p) for p in args.include_path] == [tmp_path]
    assert from_namespace(RunOptions, args) == RunOptions(resume="run1")


def test_a_sweep_task_receives_the_sweeps_options_and_its_own_seed():
    sweep = SweepOptions(
        recipes=("gm-mnist-ipc1",),
        seeds=(3, 4),
        budget="reduced",
        set_items=("eval.num_eval=2",),
        dataset="cifar10-jpeg",
        eval_models=("MLP",),
        data_root=Path("/data"),
        out=Path("/out"),
        device="cpu",
        checkpoint_every=5,
        workers=2,
    )
    command = task_command(
        sweep, Task("gm-mnist-ipc1", 4, "hash", "protocol", "0-4"), "sqlite:///x.db", "run9"
    )
    task = _parse(command[1:])
    assert task == RunOptions(
        data_root=Path("/data"),
        tracking_uri="sqlite:///x.db",
        out=Path("/out"),
        device="cpu",
        budget="reduced",
        set_items=("eval.num_eval=2",),
        checkpoint_every=5,
        dataset="cifar10-jpeg",
        eval_models=("MLP",),
        seed=4,
        resume="run9",
    )


def test_checkpoint_every_below_one_is_a_user_error():
    with pytest.raises(UserError, match="--checkpoint-every must be between 1 and 10,000,000"):
        RunOptions(checkpoint_every=0)


def test_the_speed_commands_take_their_options_from_their_dataclasses():
    """``python -m bench speed METHOD``: every flag is a field of the method's options
    dataclass or of the shared ``DataRoot``/``SpeedOutput``, typed, and ``to_argv`` inverts
    the parse."""
    from bench.api import DataRoot, SpeedOutput, parse_options
    from bench.run.options import to_argv
    from distillbench_methods.gm_speed import GMSpeedOptions
    from distillbench_methods.gtn_speed import GTNSpeedOptions
    from distillbench_methods.mtt_speed import MTTSpeedOptions

    gm, data, output = parse_options(
        "speed gm",
        ["--ipc", "1", "10", "--variants", "--repeats", "5", "--out", "x", "--data-root", "d"],
        GMSpeedOptions,
        DataRoot,
        SpeedOutput,
    )
    assert (gm.ipc, gm.variants, gm.repeats, gm.iterations) == ((1, 10), (), 5, 3)
    assert (data.data_root, output.out, output.device) == (Path("d"), Path("x"), "auto")
    assert GMSpeedOptions().variants == ("channels_last", "compile", "batched", "bf16")
    with pytest.raises(SystemExit):  # argparse's usage line: not a known variant
        parse_options("speed gm", ["--variants", "fp8"], GMSpeedOptions)
    (mtt,) = parse_options(
        "speed mtt", ["--batch-syn", "100", "--syn-steps", "20"], MTTSpeedOptions
    )
    assert (mtt.batch_syn, mtt.syn_steps, mtt.ipc) == ((100,), (20,), (1,))
    changed = {
        GMSpeedOptions: GMSpeedOptions(ipc=(10,), variants=("bf16",), networks=4),
        MTTSpeedOptions: mtt,
        GTNSpeedOptions: GTNSpeedOptions(inner_steps=(10,), iterations=1),
        SpeedOutput: SpeedOutput(out=Path("o"), device="cpu"),
    }
    for cls, options in changed.items():
        assert parse_options("speed", to_argv(options), cls) == (options,)
