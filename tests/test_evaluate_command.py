"""``python -m bench evaluate``: sets made elsewhere take the path of every result."""

from __future__ import annotations

import json

import pytest
import torch

from bench.cli import build_parser, main
from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
from bench.run.external import evaluate_argv
from bench.run.options import EvaluateOptions, from_namespace
from bench.run.tracking import Tracker

TINY = [
    "--set", "method.iterations=1", "--set", "method.batch_real=8",
    "--set", "eval.num_eval=2", "--set", "eval.epochs=1",
]  # fmt: skip


def _store(out):
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    runs = tracker.client.search_runs([tracker.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return tracker, parents


@pytest.mark.slow
def test_evaluate_of_a_reproduced_set_gives_exactly_its_accuracies(tmp_path, data_root):
    common = ["--data-root", str(data_root), "--out", str(tmp_path), "--device", "cpu", *TINY]
    assert main(["reproduce", "gm-mnist-ipc1", *common]) == 0
    (made,) = _store(tmp_path)[1]
    set_file = tmp_path / "sets" / made.info.run_id / "set0" / "synthetic_set.safetensors"
    argv = ["evaluate", str(set_file), "--recipe", "gm-mnist-ipc1", *common]
    assert main([*argv, "--submitted-by", "a test"]) == 0

    tracker, parents = _store(tmp_path)
    (external,) = [p for p in parents if p.info.run_id != made.info.run_id]
    tags = external.data.tags
    assert tags["source"] == "external" and tags["submitted_by"] == "a test"
    assert tags["file.0.name"] == "synthetic_set.safetensors" and tags["files"] == "1"
    assert tags["config_hash"] == made.data.tags["config_hash"]
    (child,) = tracker.children(external.info.run_id)
    assert child.data.tags["set_sha256"] == tags["file.0.sha256"]

    def accuracies(run) -> dict:
        path = tracker.download_artifact(
            run.info.run_id, "accuracies.json", tmp_path / run.info.run_id
        )
        return json.loads(path.read_text())

    assert accuracies(external) == accuracies(made)  # same seeds, same networks, same numbers
    record = json.loads(
        tracker.download_artifact(external.info.run_id, "verdict.json", tmp_path / "v").read_text()
    )
    # compared with the suite's own reproduction of the recipe, which it equals
    (own,) = [b for b in record["baselines"] if b["baseline"] == "gm-mnist-ipc1"]
    assert own["run"] == made.info.run_id and own["difference"] == 0.0


def _nan_set(path):
    images = torch.randn(10, 1, 28, 28) - 0.4
    images[0, 0, 0, 0] = float("nan")
    SyntheticSet(
        images=images, labels=torch.arange(10), method="x", dataset="mnist", ipc=1, seed=0
    ).save(path, load_card("mnist"))
    return path


class Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


@pytest.mark.parametrize("bad", ["nan", "pickle", "recipe-ipc"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, data_root, capsys, bad):
    if bad == "pickle":
        path = tmp_path / "res_x.pt"
        torch.save({"data": [], "x": Payload()}, path)
    else:
        path = _nan_set(tmp_path / "s.safetensors")
    recipe = "gm-mnist-ipc10" if bad == "recipe-ipc" else "gm-mnist-ipc1"
    if bad == "recipe-ipc":
        path = SyntheticSet(
            images=torch.randn(10, 1, 28, 28) - 0.4,
            labels=torch.arange(10),
            method="x",
            dataset="mnist",
            ipc=1,
            seed=0,
        ).save(tmp_path / "ok.safetensors", load_card("mnist"))
    out = tmp_path / "store"
    code = main(
        ["evaluate", str(path), "--recipe", recipe, "--data-root", str(data_root)]
        + ["--out", str(out), "--device", "cpu"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert {"nan": "NaN", "pickle": "arbitrary pickle", "recipe-ipc": "10 per class"}[bad] in err
    assert not out.exists()  # no store, no run, no artifacts


def test_every_evaluate_option_round_trips_through_its_argv(tmp_path):
    everything = EvaluateOptions(
        data_root=tmp_path / "data",
        tracking_uri="sqlite:///x.db",
        out=tmp_path / "out",
        device="cpu",
        download=True,
        budget="paper",
        set_items=("eval.num_eval=2",),
        dataset="cifar10-jpeg",
        eval_models=("MLP", "LeNet"),
        recipe="gm-cifar10-ipc1",
        seed=4,
        preprocessing="zca",
        learned_lr=0.01,
        submitted_by="someone (paper X)",
    )
    skipped = {"checkpoint_every"}
    defaults = EvaluateOptions(recipe="r")
    names = {f for f in EvaluateOptions.__dataclass_fields__ if f not in skipped}
    assert {f for f in names if getattr(everything, f) == getattr(defaults, f)} == set()
    argv = evaluate_argv([tmp_path / "a.pt", tmp_path / "b"], everything)
    args = build_parser().parse_args(argv[2:])
    assert args.sets == [str(tmp_path / "a.pt"), str(tmp_path / "b")]
    assert from_namespace(EvaluateOptions, args) == everything
