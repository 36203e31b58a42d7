"""End to end on real MNIST: the README's smoke reproduction, read back from MLflow."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch

from bench.cli import main
from bench.data.synthetic import SyntheticSet
from bench.evaluation.evaluate import EvalProtocol, evaluate_synthetic_set
from bench.run.tracking import Tracker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("smoke")
    code = main(
        [
            "reproduce",
            "gm-mnist-ipc1",
            "--budget",
            "smoke",
            "--data-root",
            str(data_root),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    runs = tracker.client.search_runs([tracker.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id)
    return out, tracker, parent, child


def test_run_is_logged_with_config_provenance_and_metrics(smoke_run):
    _, tracker, parent, child = smoke_run
    assert parent.info.status == child.info.status == "FINISHED"
    tags, params = parent.data.tags, parent.data.params
    assert tags["recipe"] == "gm-mnist-ipc1" and tags["budget"] == "smoke"
    assert tags["seed"] == "0" and tags["comparable"] == "false"
    assert tags["git_commit"] and tags["hardware"].startswith("cpu")
    assert tags["version.torch"] == metadata.version("torch")
    assert tags["verdict"] == "not comparable (budget=smoke)"
    assert params["method.iterations"] == "60" and params["eval.augmentation"] == "dc"
    history = tracker.client.get_metric_history(child.info.run_id, "distill/loss")
    assert [m.step for m in history] == list(range(60))
    assert history[-1].value < history[0].value  # gradient matching lowers the loss
    assert parent.data.metrics["eval/ConvNet/n"] == 3


def test_synthetic_set_artifact_round_trips_and_beats_untrained_noise(smoke_run, mnist, tmp_path):
    _, tracker, parent, child = smoke_run
    path = tracker.download_artifact(child.info.run_id, "synthetic_set.safetensors", tmp_path)
    synset = SyntheticSet.load(path)
    _, test = mnist
    synset.validate(test.card)
    assert synset.images.shape == (10, 1, 28, 28) and synset.labels.tolist() == list(range(10))
    assert synset.method == "gm" and synset.config_hash == parent.data.tags["config_hash"]
    names = {a.path for a in tracker.client.list_artifacts(child.info.run_id)}
    assert {"synthetic_set.safetensors", "synthetic_grid.png"} <= names

    accuracy = parent.data.metrics["eval/ConvNet/acc"]
    assert accuracy > 60.0, f"smoke synthetic set reached only {accuracy:.1f}% (chance: 10%)"
    # The same number of noise images, left untrained, under the same protocol.
    noise = SyntheticSet(
        images=torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
        labels=synset.labels,
        method="noise",
        dataset="mnist",
        ipc=1,
        seed=0,
    )
    protocol = EvalProtocol(num_eval=2, epochs=300, augmentation="dc")
    noise_acc = evaluate_synthetic_set(noise, test, protocol, 0, torch.device("cpu"))["ConvNet"]
    assert accuracy > max(noise_acc) + 30.0


def test_verdict_json_states_the_test_and_refuses_comparison(smoke_run, tmp_path):
    _, tracker, parent, _ = smoke_run
    path = tracker.download_artifact(parent.info.run_id, "verdict.json", tmp_path)
    data = json.loads(path.read_text())
    assert data["verdict"] == "not comparable (budget=smoke)" and data["n"] == 3
    assert "TOST" in data["test"] and data["published_mean"] == 91.7


def test_leaderboard_shows_the_real_run_beside_the_published_number(smoke_run, tmp_path):
    from bench.reports.leaderboard import write_leaderboards

    _, tracker, parent, _ = smoke_run
    write_leaderboards(tracker, tmp_path)
    row = next(
        line
        for line in (tmp_path / "dc-table1.md").read_text().splitlines()
        if line.startswith("| gm-mnist-ipc1 ")
    )
    acc = parent.data.metrics["eval/ConvNet/acc"]
    assert f"{acc:.2f} ± " in row and "(n=3)" in row and "91.7 ± 0.5" in row
    assert parent.info.run_id in row and "not comparable (budget=smoke)" in row
    assert (tmp_path / "grids" / "gm-mnist-ipc1.png").stat().st_size > 1000
