"""Coreset baselines (random, herding) and the whole-dataset baseline."""

from __future__ import annotations

import pytest
import torch

from bench.cli import main
from bench.core.errors import ConfigError
from bench.data.real import RealSet
from bench.run.tracking import Tracker
from distillbench_methods.coreset import herding_indices, herding_order, random_indices


def clustered_features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 200 points in 8-d; class c is centred at 3 * c."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(200)
    features = torch.randn(400, 8, generator=g) + 3.0 * labels[:, None]
    return features, labels


def test_herding_order_tracks_the_class_mean_better_than_random_picks():
    features, _ = clustered_features()
    own = features[:200]
    mu = own.mean(0)
    order = herding_order(own, 10)
    assert len(set(order.tolist())) == 10
    herded_gap = (own[order].mean(0) - mu).norm()
    random_gaps = [
        (own[torch.randperm(200, generator=torch.Generator().manual_seed(s))[:10]].mean(0) - mu)
        .norm()
        .item()
        for s in range(50)
    ]
    # herding's running mean converges like 1/k, random picks like 1/sqrt(k)
    assert herded_gap < min(random_gaps)
    # the first pick is the point nearest the mean
    assert order[0] == torch.argmin((own - mu).norm(dim=1))


def test_herding_is_deterministic_per_class_and_differs_from_random_selection():
    features, labels = clustered_features()
    picks = herding_indices(features, labels, ipc=5, num_classes=2)
    assert torch.equal(picks, herding_indices(features.clone(), labels, ipc=5, num_classes=2))
    assert labels[picks].tolist() == [0] * 5 + [1] * 5
    chosen = random_indices(labels, 5, 2, seed=0)
    assert torch.equal(chosen, random_indices(labels, 5, 2, seed=0))
    assert not torch.equal(chosen, random_indices(labels, 5, 2, seed=1))
    assert labels[chosen].tolist() == [0] * 5 + [1] * 5
    assert set(picks.tolist()) != set(chosen.tolist())


def test_too_few_images_in_a_class_is_a_config_error():
    labels = torch.tensor([0, 0, 1])
    with pytest.raises(ConfigError, match="class 1 has 1 training images, fewer than ipc=2"):
        random_indices(labels, 2, 2, seed=0)


@pytest.fixture
def small_mnist(monkeypatch, mnist):
    """The runner reads the first 2000 training and 1000 test images of real MNIST (speed)."""
    import bench.run.runner

    train, test = mnist

    def load_real(card, root, split, download=False):
        source, size = (train, 2000) if split == "train" else (test, 1000)
        return RealSet(source.images[:size], source.labels[:size], source.card)

    monkeypatch.setattr(bench.run.runner, "load_real", load_real)
    return train, test


def run_recipe(out, data_root, recipe, *extra):
    args = ["reproduce", recipe, "--data-root", str(data_root), "--out", str(out)]
    assert main([*args, "--device", "cpu", *extra]) == 0
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    runs = tracker.client.search_runs([tracker.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return tracker, parent, runs


def test_herding_run_records_the_real_images_it_picked(small_mnist, data_root, tmp_path):
    from bench.data.synthetic import SyntheticSet

    train, _ = small_mnist
    tracker, parent, runs = run_recipe(
        tmp_path, data_root, "herding-mnist-ipc1", "--set", "eval.epochs=5"
    )
    assert parent.info.status == "FINISHED" and parent.data.params["method.feature_epochs"] == "0"
    child = next(r for r in runs if r is not parent)
    path = tracker.download_artifact(child.info.run_id, "synthetic_set.safetensors", tmp_path)
    synset = SyntheticSet.load(path)
    assert "indices" in synset.extras and synset.labels.tolist() == list(range(10))
    assert torch.equal(synset.images, train.images[synset.extras["indices"]])
    assert torch.equal(synset.labels, train.labels[synset.extras["indices"]])


def test_whole_dataset_run_trains_on_the_training_split_and_logs_no_set(
    small_mnist, data_root, tmp_path
):
    tracker, parent, runs = run_recipe(tmp_path, data_root, "whole-mnist", "--set", "eval.epochs=0")
    assert parent.data.tags["ipc"] == "whole" and parent.info.status == "FINISHED"
    child = next(r for r in runs if r is not parent)
    assert tracker.client.list_artifacts(child.info.run_id) == []
    # 2000 real images, one pass: far above chance, unlike one image per class untrained
    assert parent.data.metrics["eval/ConvNet/acc"] > 60.0
    assert parent.data.tags["verdict"].startswith("not comparable (budget=smoke")


def test_eval_models_adds_architectures_after_the_recipes_own(small_mnist, data_root, tmp_path):
    _, parent, _ = run_recipe(
        tmp_path,
        data_root,
        "random-mnist-ipc1",
        "--set",
        "eval.epochs=2",
        "--eval-models",
        "MLP",
        "LeNet",
    )
    metrics, tags = parent.data.metrics, parent.data.tags
    assert tags["eval_models"] == "ConvNet MLP LeNet"
    assert {"eval/ConvNet/acc", "eval/MLP/acc", "eval/LeNet/acc"} <= set(metrics)
    assert metrics["eval/MLP/n"] == 3 and tags["comparable"] == "false"
    assert "no published number" in tags["verdict"]
