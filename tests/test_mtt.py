"""MTT on the CIFAR-10 JPEG copy with tiny budgets: ZCA, expert trajectories, trajectory
matching, the learned learning rate."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from bench.core.errors import CheckpointError, ConfigError, DataNotFoundError
from bench.core.seeds import derive_seed
from bench.data.real import denormalise, load_card, load_real
from bench.data.zca import zca_whiten
from bench.evaluation.networks import build_network
from distillbench_methods import mtt
from distillbench_methods.experts import ExpertConfig, ExpertTrajectories, generate_experts

TINY = dict(
    dataset="cifar10-jpeg", preprocessing="normalise", num_experts=1, epochs=2, images_per_class=10
)


@pytest.fixture(scope="module")
def cifar(data_root):
    card = load_card("cifar10-jpeg")
    return load_real(card, data_root, "train"), load_real(card, data_root, "test")


@pytest.fixture(scope="module")
def small(cifar):
    """20 training and 200 test images per class, for fast experts and evaluations."""

    def per_class(split, n):
        keep = torch.cat([(split.labels == c).nonzero().flatten()[:n] for c in range(10)])
        return dataclasses.replace(split, images=split.images[keep], labels=split.labels[keep])

    return per_class(cifar[0], 20), per_class(cifar[1], 200)


@pytest.fixture(scope="module")
def experts(small, tmp_path_factory):
    root = tmp_path_factory.mktemp("experts")
    config = ExpertConfig(**{**TINY, "num_experts": 2})
    folder = generate_experts(*small, config, root, torch.device("cpu"))
    return root, folder, config


def test_zca_is_fitted_on_train_applied_to_both_and_inverts_to_the_pixels(small):
    train, test = small
    white_train, white_test = zca_whiten(train, test)
    assert white_train.preprocessing == white_test.preprocessing
    assert white_train.preprocessing["kind"] == "zca" and white_train.preprocessing["eps"] == 0.1
    assert "200 images" in white_train.preprocessing["fitted_on"]
    for original, white in ((train, white_train), (test, white_test)):
        assert white.images.shape == original.images.shape
        picture = white.pixels(white.images)
        assert picture.shape == original.images.shape
        assert picture.min() >= 0 and picture.max() <= 1

    # the test split goes through the transform fitted on the training split, not its own
    from kornia.enhance import ZCAWhitening

    fitted = ZCAWhitening(eps=0.1).fit(denormalise(train.images, train.card))
    assert torch.allclose(white_test.images, fitted(denormalise(test.images, test.card)), atol=1e-5)
    own = ZCAWhitening(eps=0.1).fit(denormalise(test.images, test.card))
    assert not torch.allclose(
        white_test.images, own(denormalise(test.images, test.card)), atol=1e-2
    )
    # un-whitening gives the pixels back
    fitted = ZCAWhitening(eps=0.1, compute_inv=True).fit(denormalise(train.images, train.card))
    back = fitted.inverse_transform(white_train.images)
    assert torch.allclose(back, denormalise(train.images, train.card), atol=1e-3)


def test_expert_parameters_change_across_epochs_and_the_file_round_trips(experts, small):
    root, folder, config = experts
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [e["index"] for e in manifest["experts"]] == [0, 1]
    assert manifest["preprocessing"]["kind"] == "normalise"
    assert manifest["config"]["epochs"] == 2 and manifest["config"]["images_per_class"] == 10
    card = small[0].card
    net = build_network("ConvNet", 3, 10, card.image_size, 0)
    trajectories = ExpertTrajectories(folder, config, small[0].preprocessing_description(), net)
    stored = load_file(str(folder / "expert_0000.safetensors"))
    names = [n for n, _ in net.named_parameters()]
    assert all(stored[n].shape[0] == config.epochs + 1 for n in names)
    for epoch in range(config.epochs + 1):
        flat = torch.cat([stored[n][epoch].flatten() for n in names])
        assert torch.equal(trajectories.flat_parameters(0, epoch), flat)
    # epoch 0 is the initialisation drawn from the expert's seed; training moves every epoch
    init = build_network("ConvNet", 3, 10, card.image_size, derive_seed(derive_seed(0, 0), 0))
    assert torch.equal(
        trajectories.flat_parameters(0, 0), torch.cat([p.flatten() for p in init.parameters()])
    )
    steps = [trajectories.flat_parameters(0, e) for e in range(config.epochs + 1)]
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(steps, steps[1:], strict=False))
    assert not torch.equal(trajectories.flat_parameters(1, 1), steps[1])


def test_interrupted_expert_generation_continues_to_the_same_trajectories(small, tmp_path):
    config = ExpertConfig(**TINY)
    generate_experts(*small, config, tmp_path / "whole", torch.device("cpu"))

    def stop_after_first_epoch(expert, epoch, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_experts(
            *small, config, tmp_path / "cut", torch.device("cpu"), stop_after_first_epoch
        )
    cut = tmp_path / "cut" / config.folder_name
    assert (cut / "expert_0000.partial.pt").exists()
    generate_experts(*small, config, tmp_path / "cut", torch.device("cpu"))
    whole = tmp_path / "whole" / config.folder_name
    sums = [
        json.loads((f / "manifest.json").read_text())["experts"][0]["sha256"] for f in (whole, cut)
    ]
    assert sums[0] == sums[1]
    assert not (cut / "expert_0000.partial.pt").exists()


def test_corrupt_missing_and_mismatched_experts_are_refused(experts, small, tmp_path):
    root, folder, config = experts
    net = build_network("ConvNet", 3, 10, small[0].card.image_size, 0)
    with pytest.raises(DataNotFoundError, match="python -m bench experts"):
        ExpertTrajectories(tmp_path / "none", config, {}, net)
    with pytest.raises(DataNotFoundError, match="2 finished expert"):
        ExpertTrajectories(
            folder,
            dataclasses.replace(config, num_experts=3),
            small[0].preprocessing_description(),
            net,
        )
    # preprocessing mismatch: experts made without ZCA, distillation on whitened data
    white = zca_whiten(*small)[0]
    with pytest.raises(ConfigError, match="another preprocessing.*refusing to mix"):
        ExpertTrajectories(folder, config, white.preprocessing_description(), net)
    with pytest.raises(ConfigError, match="another training.*epochs"):
        ExpertTrajectories(
            folder, dataclasses.replace(config, epochs=5), small[0].preprocessing_description(), net
        )
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        copy.joinpath(f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "expert_0001.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (copy / "expert_0001.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ExpertTrajectories(copy, config, small[0].preprocessing_description(), net)


def _mtt_config(root, **changes):
    base = dict(
        syn_steps=3,
        expert_epochs=1,
        max_start_epoch=1,
        preprocessing="normalise",
        num_experts=2,
        expert_train_epochs=2,
        expert_images_per_class=10,
        experts_dir=str(root),
        eval_every=0,
    )
    return mtt.MTTConfig(**{**base, **changes})


def test_one_distillation_step_lowers_the_matching_loss_against_a_fixed_expert(experts, small):
    root, _, _ = experts
    config = _mtt_config(root)
    real = small[0]
    trajectories = mtt.load_experts(real, config)
    net = build_network("ConvNet", 3, 10, real.card.image_size, 0)
    start, target = trajectories.flat_parameters(0, 0), trajectories.flat_parameters(0, 1)
    images = real.images[::20].clone().requires_grad_(True)  # 1 image per class, class-major
    labels = real.labels[::20]
    lr = torch.tensor(0.01, requires_grad=True)

    def loss():
        generator = torch.Generator().manual_seed(0)  # the same batches and augmentations
        return mtt.trajectory_matching_loss(
            net, start, target, images, labels, lr, config, generator
        )

    before = loss()
    before.backward()
    assert images.grad.abs().sum() > 0 and lr.grad is not None and lr.grad != 0
    with torch.no_grad():
        images -= 100.0 * images.grad
    assert loss().item() < before.item()


def test_learned_learning_rate_stays_positive(experts, small, monkeypatch):
    root, _, _ = experts
    config = _mtt_config(root, iterations=2, lr_lr=1.0)
    # a loss that falls as the learning rate falls pushes it below zero in one step
    monkeypatch.setattr(
        mtt,
        "trajectory_matching_loss",
        lambda net, start, target, images, labels, lr, config, generator: (
            1e3 * lr + 0 * images.sum()
        ),
    )
    seen = []
    synset = mtt.distill(
        small[0],
        1,
        config,
        seed=0,
        device=torch.device("cpu"),
        after_iteration=lambda it, metrics, state: seen.append(metrics["distill/lr"]),
    )
    assert seen == pytest.approx([mtt.MIN_LR, mtt.MIN_LR])
    assert synset.extras["lr"].item() == pytest.approx(mtt.MIN_LR)


def test_distillation_refuses_experts_of_other_preprocessing(experts, small):
    root, _, _ = experts
    # the folder for ZCA experts does not exist: the message gives the command that makes them
    with pytest.raises(DataNotFoundError, match="--preprocessing zca"):
        mtt.distill(
            zca_whiten(*small)[0], 1, _mtt_config(root, preprocessing="zca"), 0, torch.device("cpu")
        )


def test_config_refuses_start_epochs_beyond_the_experts():
    with pytest.raises(ConfigError, match="expert_train_epochs"):
        mtt.MTTConfig(max_start_epoch=20, expert_epochs=2, expert_train_epochs=10)
