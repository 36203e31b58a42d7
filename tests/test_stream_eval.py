"""Evaluation on a stream of synthetic batches (``eval.stream``): the GTN reference's
``TeacherIterDataset`` + ``evaluate_net`` (dm-medvedev/EfficientDistillation@7ebe4b9,
``my_experiments/utils.py``): ``Epoch + 1`` passes, each one SGD step on one fresh batch."""

from __future__ import annotations

import torch

from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
from bench.evaluation import networks
from bench.evaluation.evaluate import EvalProtocol, train_on_synthetic


def test_every_epoch_trains_once_on_a_fresh_whole_batch(monkeypatch):
    drawn, batches = [], []

    def stream(rng: torch.Generator):
        # 300 images > batch_train 256: the reference still takes them as one batch
        images = torch.rand(300, 1, 28, 28, generator=rng)
        drawn.append(images)
        return images, torch.arange(300) % 10

    forward = networks.MLP.forward
    monkeypatch.setattr(
        networks.MLP, "forward", lambda self, x: batches.append(len(x)) or forward(self, x)
    )
    empty = SyntheticSet(
        images=torch.empty(0),
        labels=torch.empty(0, dtype=torch.int64),
        method="",
        dataset="mnist",
        ipc=0,
        seed=0,
    )
    protocol = EvalProtocol(models=("MLP",), epochs=3, batch_train=256)
    train_on_synthetic(
        "MLP", empty, load_card("mnist"), protocol, 0, torch.device("cpu"), stream=stream
    )
    # the reference's range(Epoch + 1): 4 passes, 4 fresh draws, one step on each whole batch
    assert len(drawn) == 4 and not torch.equal(drawn[0], drawn[1])
    assert batches == [300] * 4


def test_stream_needs_a_method_that_draws_one(tmp_path, capsys):
    """eval.stream on a method without ``Method.stream`` fails before loading any data, with a
    one-line error naming the fix."""
    from bench.cli import main

    code = main(
        ["reproduce", "random-mnist-ipc10", "--out", str(tmp_path), "--set", "eval.stream=true"]
    )
    assert code != 0
    assert "set eval.stream=false" in capsys.readouterr().err
