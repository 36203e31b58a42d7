"""MTT as the EuroSAT work's code runs it (julius-lautz/imp_dataset_distillation@4b8bf43), each
reproduced quirk pinned on a tiny example: raw [0, 1] pixels where its ``--zca`` is set (it never
whitens), experts on raw pixels and distillation on normalised ones (allowed by a field only),
no augmentation anywhere (its ``DiffAugment`` body is commented out), batch 128 for experts and
evaluation; and MTT's CIFAR protocol kept as the ``-cifar-protocol`` variants. EuroSAT is read
from small JPEGs in its exact on-disk layout (``test_eurosat._write_eurosat``)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tomllib
import torch
import torch.nn.functional as F
from test_eurosat import CLASSES, _write_eurosat

from bench.core.errors import ConfigError, DataNotFoundError
from bench.core.paths import RECIPES_DIR
from bench.core.seeds import derive_seed
from bench.data.preprocess import prepare_real, raw_pixels
from bench.data.real import RealSet, eurosat_split, load_card, load_real, normalise
from bench.evaluation.networks import build_network
from bench.spec.recipes import load_recipe, resolve
from distillbench_methods import mtt
from distillbench_methods.experts import ExpertConfig, generate_experts

CPU = torch.device("cpu")
PER_CLASS = 15  # 150 images: a 135-image training split, more than one batch of 128


@pytest.fixture(scope="module")
def eurosat(tmp_path_factory):
    """The small EuroSAT copy: (root, file paths in torchvision's order, train, test)."""
    root = tmp_path_factory.mktemp("eurosat")
    paths = _write_eurosat(root, per_class=PER_CLASS)
    n = len(CLASSES) * PER_CLASS
    card = dataclasses.replace(load_card("eurosat"), splits={"train": n - n // 10, "test": n // 10})
    train, test = (load_real(card, root, split) for split in ("train", "test"))
    return root, paths, train, test


def _to_tensor(path) -> torch.Tensor:
    """``torchvision.transforms.ToTensor()`` of the file, as the reference's ``EuroSAT`` dataset
    gives it: float32 ``[3, 64, 64]`` in [0, 1]."""
    from PIL import Image
    from torchvision import transforms

    with Image.open(path) as image:
        return transforms.ToTensor()(image.convert("RGB"))


def test_none_is_totensor_of_the_files_bit_for_bit_and_normalise_uses_the_references_mean_std(
    eurosat,
):
    _, paths, train, test = eurosat
    raw_train, raw_test = prepare_real(train, test, ExpertConfig(preprocessing="none"))
    train_idx, test_idx = eurosat_split(len(paths))
    for raw, idx in ((raw_train, train_idx), (raw_test, test_idx)):
        expected = torch.stack([_to_tensor(paths[i]) for i in idx])
        assert torch.equal(raw.images, expected)
        assert raw.preprocessing["kind"] == "none"
    # without --zca the reference normalises with its own constants (helper_functions.py)
    mean = torch.tensor([0.344, 0.380, 0.407]).view(1, 3, 1, 1)
    std = torch.tensor([0.202, 0.136, 0.115]).view(1, 3, 1, 1)
    assert torch.allclose(train.images, (raw_train.images - mean) / std, atol=1e-5)
    same = prepare_real(train, test, ExpertConfig(preprocessing="normalise"))
    assert same[0] is train and same[0].preprocessing_description()["kind"] == "normalise"


def test_raw_pixels_undo_the_normalisation_to_the_256_levels_exactly():
    card = load_card("eurosat")
    levels = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8)
    images = levels.view(1, 1, 1, 6).expand(1, 3, 64, 6).contiguous()
    images = torch.cat([images] * 11, dim=3)[..., :64]  # [1, 3, 64, 64]
    real = RealSet(normalise(images, card), torch.zeros(1, dtype=torch.int64), card)
    back = raw_pixels(real).images
    assert torch.equal(back, images.float() / 255)  # ToTensor's img.float().div(255)
    by_hand = [0.0, 1 / 255, 127 / 255, 128 / 255, 254 / 255, 1.0]
    assert back[0, 0, 0, :6].tolist() == pytest.approx(by_hand, rel=1e-7)  # float32


def _faithful(root, **changes) -> mtt.MTTConfig:
    base = dict(
        iterations=1,
        syn_steps=2,
        expert_epochs=1,
        max_start_epoch=1,
        preprocessing="normalise",
        expert_preprocessing="none",
        expert_batch_train=128,
        expert_augmentation="none",
        dsa=False,
        num_experts=1,
        expert_train_epochs=1,
        experts_dir=str(root),
        eval_every=0,
    )
    return mtt.MTTConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def raw_experts(eurosat, tmp_path_factory):
    """One expert of the EuroSAT work's training: raw pixels, batch 128, no augmentation."""
    _, _, train, test = eurosat
    root = tmp_path_factory.mktemp("experts")
    config = _faithful(root).experts("eurosat")
    raw = prepare_real(train, test, config)
    folder = generate_experts(*raw, config, root, CPU)
    return root, folder, config


def test_experts_train_on_raw_pixels_in_batches_of_128_without_augmentation(raw_experts, eurosat):
    root, folder, config = raw_experts
    manifest = json.loads((folder / "manifest.json").read_text())
    assert folder.name == "ConvNet-none" and manifest["preprocessing"]["kind"] == "none"
    assert manifest["config"]["batch_train"] == 128 and manifest["config"]["augmentation"] == "none"
    # expert_training.py: SGD lr 0.01, no momentum, on plain shuffled batches of 128
    raw = raw_pixels(eurosat[2])
    seed = derive_seed(config.seed, 0)
    net = build_network("ConvNet", 3, 10, (64, 64), derive_seed(seed, 0))
    order = torch.randperm(135, generator=torch.Generator().manual_seed(derive_seed(seed, 1, 0)))
    for batch in (order[:128], order[128:]):  # 135 images: two steps
        loss = F.cross_entropy(net(raw.images[batch]), raw.labels[batch])
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads, strict=True):
                p -= 0.01 * g
    trajectories = mtt.load_experts(eurosat[2], _faithful(root))
    by_hand = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert torch.allclose(trajectories.flat_parameters(0, 1), by_hand, atol=1e-5)
    one_step = (by_hand - trajectories.flat_parameters(0, 0)).abs().max()
    assert one_step > 1e-4


def test_expert_distillation_preprocessing_mismatch_is_allowed_only_by_its_field(
    raw_experts, eurosat, tmp_path
):
    root, folder, _ = raw_experts
    train = eurosat[2]
    assert len(mtt.load_experts(train, _faithful(root))) == 1  # raw experts, normalised distill
    # without the field the distillation wants experts of its own preprocessing
    with pytest.raises(DataNotFoundError, match="--preprocessing normalise"):
        mtt.load_experts(train, _faithful(root, expert_preprocessing="same"))
    # raw-pixel experts placed where normalised ones belong are refused by their manifest
    fake = tmp_path / "eurosat" / "ConvNet-normalise"
    shutil.copytree(folder, fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["config"]["preprocessing"] = "normalise"
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ConfigError, match="another preprocessing.*kind: 'none' there, 'normalise' here"
    ):
        mtt.load_experts(train, _faithful(tmp_path, expert_preprocessing="normalise"))
    # experts are trained on data preprocessed as their config says, or not at all
    config = _faithful(tmp_path / "other").experts("eurosat")
    with pytest.raises(ConfigError, match="preprocessed 'normalise'.*'none'"):
        generate_experts(train, eurosat[3], config, tmp_path / "other", CPU)


def test_student_steps_without_augmentation_are_plain_sgd_on_all_images():
    config = mtt.MTTConfig(syn_steps=2, dsa=False)
    net = build_network("ConvNet", 3, 10, (64, 64), 0)
    start = torch.cat([p.detach().flatten() for p in net.parameters()])
    target = start + 0.001 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    images = torch.randn(10, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(10)
    lr = torch.tensor(0.1)  # steps as long as the start-target distance: the loss is far from 1

    def matching(dsa: bool, seed: int) -> float:
        cfg = dataclasses.replace(config, dsa=dsa)
        gen = torch.Generator().manual_seed(seed)
        return mtt.trajectory_matching_loss(net, start, target, images, labels, lr, cfg, gen).item()

    # by hand (distillation.py): theta <- theta - syn_lr * grad CE on all 10 images, twice
    theta = start.clone()
    for _ in range(2):
        with torch.no_grad():
            offset = 0
            for p in net.parameters():
                p.copy_(theta[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        loss = F.cross_entropy(net(images), labels)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        theta = theta - 0.1 * torch.cat([g.flatten() for g in grads])
    by_hand = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
    assert matching(False, 0) == pytest.approx(by_hand.item(), rel=1e-4)
    assert matching(False, 1) == pytest.approx(matching(False, 0), rel=1e-5)  # nothing random
    assert abs(by_hand.item() - 1) > 0.1
    assert matching(True, 0) != pytest.approx(by_hand.item(), rel=1e-2)  # DSA changes it


def _method(name: str):
    return resolve(load_recipe(name), "paper", 0)


@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_faithful_eurosat_recipes_run_the_eurosat_code_and_the_variants_mtts_cifar_protocol(ipc):
    faithful = _method(f"mtt-eurosat-ipc{ipc}")
    m, e = faithful.method_config, faithful.eval
    assert (m.preprocessing, m.experts_preprocessing) == ("normalise", "none")
    assert (m.expert_batch_train, m.expert_augmentation, m.dsa) == (128, "none", False)
    assert (e.batch_train, e.augmentation, e.lr_from_set, e.epochs) == (128, "none", True, 1000)
    assert (m.syn_steps, m.expert_epochs, m.max_start_epoch) == (20, 3, 5)
    assert (m.lr_img, m.lr_lr, m.lr_teacher, m.iterations) == (1000.0, 1e-5, 0.01, 5000)
    for baseline in (f"random-eurosat-ipc{ipc}", "whole-eurosat"):
        b = _method(baseline)
        assert b.method_config.preprocessing == "normalise"
        assert (b.eval.batch_train, b.eval.augmentation) == (128, "none")
    variant = _method(f"mtt-eurosat-ipc{ipc}-cifar-protocol")
    m, e = variant.method_config, variant.eval
    assert (m.preprocessing, m.experts_preprocessing, m.dsa) == ("zca", "zca", True)
    assert (m.expert_batch_train, m.expert_augmentation) == (256, "dsa")
    assert (e.batch_train, e.augmentation) == (256, "dsa")
    for name in (f"mtt-eurosat-ipc{ipc}", f"random-eurosat-ipc{ipc}", "whole-eurosat"):
        raw = tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text())
        assert "variant" not in raw
        protocol_variant = tomllib.loads((RECIPES_DIR / f"{name}-cifar-protocol.toml").read_text())
        assert (
            "ZCA" in protocol_variant["variant"]
            and protocol_variant["published"].get("mean") is None
        )


@pytest.mark.parametrize(("ipc", "preprocessing"), [(1, "zca"), (10, "zca"), (50, "normalise")])
def test_mtt_cifar_recipes_keep_mtts_protocol(ipc, preprocessing):
    run = _method(f"mtt-cifar10-ipc{ipc}")
    m, e = run.method_config, run.eval
    assert (m.preprocessing, m.experts_preprocessing, m.dsa) == (preprocessing, preprocessing, True)
    assert (m.expert_batch_train, m.expert_augmentation) == (256, "dsa")
    assert m.dsa_strategy == e.dsa_strategy == "color_crop_cutout_flip_scale_rotate"
    assert (e.batch_train, e.augmentation) == (256, "dsa")
    experts = m.experts("cifar10")
    assert (experts.batch_train, experts.augmentation, experts.preprocessing) == (
        256,
        "dsa",
        preprocessing,
    )
    assert np.isclose(experts.lr, 0.01) and experts.momentum == 0.0


def test_unknown_preprocessing_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="method.preprocessing.*'none'"):
        mtt.MTTConfig(preprocessing="whiten")
    with pytest.raises(ConfigError, match="expert_preprocessing"):
        mtt.MTTConfig(expert_preprocessing="whiten")
