"""GTN end to end: ``python -m bench reproduce gtn-ift-mnist`` on real MNIST with a tiny budget
(``--set``), read back from MLflow: the generator's weights beside the synthetic set, the
cross-architecture evaluation and the baseline comparison."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.data.synthetic import SyntheticSet
from bench.run.tracking import Tracker
from distillbench_methods.gtn import GTNIFTConfig, build_generator

pytestmark = pytest.mark.slow

TINY = [
    "method.iterations=3",
    "method.learner=LeNet",
    "method.select_every=2",
    "method.select_epochs=5",
    "eval.models=ConvNet,MLP",
    "eval.num_eval=1",
    "eval.epochs=5",
]


@pytest.fixture(scope="module")
def gtn_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("gtn")
    args = ["reproduce", "gtn-ift-mnist", "--data-root", str(data_root), "--out", str(out)]
    args += ["--device", "cpu", *[f"--set={o}" for o in TINY]]
    code = main(args)
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    return code, out, tracker


def _runs(tracker):
    runs = tracker.client.search_runs([tracker.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    return parent, child


def test_run_logs_set_generator_and_every_architecture(gtn_run, tmp_path):
    code, _, tracker = gtn_run
    assert code == 0
    parent, child = _runs(tracker)
    assert parent.info.status == "FINISHED"
    assert {"eval/ConvNet/acc", "eval/MLP/acc"} <= set(parent.data.metrics)
    # the reference's evaluation on the generator's stream, beside the fixed set
    assert {"eval/ConvNet/stream_acc", "eval/MLP/stream_acc"} <= set(parent.data.metrics)
    losses = tracker.client.get_metric_history(child.info.run_id, "distill/loss")
    assert [m.step for m in losses] == [0, 1, 2]
    selections = tracker.client.get_metric_history(child.info.run_id, "distill/validation_acc")
    assert [m.step for m in selections] == [1]

    synset = SyntheticSet.load(
        tracker.download_artifact(child.info.run_id, "synthetic_set.safetensors", tmp_path)
    )
    assert synset.images.shape == (100, 1, 28, 28) and synset.method == "gtn-ift"
    generator = build_generator(GTNIFTConfig(), _mnist_like(), 0)
    generator.load_state_dict(synset.generator_weights())  # the set file rebuilds the generator


def _mnist_like():
    from distillbench_methods.gtn_speed import mnist_shaped_real

    return mnist_shaped_real(10)


def test_verdict_names_missing_baselines_and_no_published_number(gtn_run, tmp_path):
    _, _, tracker = gtn_run
    parent, _ = _runs(tracker)
    verdict = json.loads(
        tracker.download_artifact(parent.info.run_id, "verdict.json", tmp_path).read_text()
    )
    assert [b["baseline"] for b in verdict["baselines"]] == [
        "random-mnist-ipc10",
        "gtn-unrolled-mnist",
    ]
    assert all("not measured" in b["summary"] for b in verdict["baselines"])
    assert verdict["statistic"] == "stream"
    assert verdict["verdict"].startswith("not comparable")
    assert "no published number" in verdict["verdict"]
