"""Expert trajectories for MTT: networks trained on the real training set, their parameters
stored after every epoch.

Follows ``buffer.py`` of the MTT reference code (GeorgeCazenavette/mtt-distillation@50dccea):
each expert is a freshly initialised network trained for ``epochs`` epochs by SGD (lr 0.01, no
momentum, no weight decay, no learning-rate decay) on mini-batches of ``batch_train`` real images
(MTT: 256) with ``augmentation`` (MTT: DSA); its parameters are recorded at initialisation and
after every epoch (paper: 100 experts x 50 epochs). The EuroSAT work's ``expert_training.py``
(julius-lautz/imp_dataset_distillation@4b8bf43) is the same loop with batch 128, no augmentation
(its ``DiffAugment`` body is commented out) and raw [0, 1] pixels by default: the fields
``batch_train``, ``augmentation`` and ``preprocessing`` say which. Differences from both: every
draw comes from a seed derived from the expert's seed (the references use the global RNG), and
the trajectories are stored one file per expert in the format below instead of pickled lists.

On-disk format of one trajectory folder (``<experts_dir>/<dataset>/<model>-<preprocessing>``):

- ``manifest.json``: ``format`` (``distillbench.expert_trajectories/1``), ``config`` (the
  ``ExpertConfig``), ``dataset`` (card name and display name), ``preprocessing`` (the real
  set's description, ``bench/data/preprocess.py``), ``parameters`` (names and shapes,
  ``named_parameters`` order),
  ``provenance`` (git commit, hardware) and ``experts``: per finished expert its ``index``,
  ``seed``, ``file``, ``sha256`` and final ``test_accuracy`` (%).
- ``expert_<index>.safetensors``: one float32 tensor per parameter name, shape
  ``[epochs + 1, *parameter shape]`` (entry ``e`` = after ``e`` epochs).
- ``expert_<index>.partial.pt`` while an expert trains: its trajectory so far, so an
  interrupted generation continues after its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from bench.api import (
    NETWORKS,
    CheckpointError,
    ConfigError,
    DataNotFoundError,
    Preprocessing,
    RealSet,
    atomic_target,
    build_network,
    check_preprocessing,
    derive_seed,
    require_learning_rates,
    require_positive,
    sha256_file,
    write_atomic,
)

FORMAT = "distillbench.expert_trajectories/1"

# seed streams of one expert (first key after the expert's index)
_INIT, _EPOCH = 0, 1


@dataclass(frozen=True)
class ExpertConfig:
    """How expert trajectories are trained; the defaults are the MTT paper's (``buffer.py``)."""

    dataset: str = "cifar10"
    """dataset card name"""
    model: str = "ConvNet"
    """the expert network (a name in ``bench.api.NETWORKS``); MTT: ConvNet (ConvNet-3)"""
    preprocessing: Preprocessing = "zca"
    """how the real images are preprocessed (``bench/data/preprocess.py``; MTT: ``"zca"``, the
    EuroSAT work's default: ``"none"``)"""
    num_experts: int = 100
    """expert trajectories to train"""
    epochs: int = 50
    """epochs per expert; one checkpoint per epoch is its trajectory"""
    lr: float = 0.01
    """the experts' SGD learning rate (MTT's ``lr_teacher``)"""
    momentum: float = 0.0
    """SGD momentum (MTT: 0)"""
    weight_decay: float = 0.0
    """SGD weight decay (MTT: 0)"""
    batch_train: int = 256
    """mini-batch size (MTT: 256; the EuroSAT work: 128)"""
    augmentation: Literal["none", "dsa"] = "dsa"
    """``"dsa"`` with ``dsa_strategy`` (MTT); ``"none"`` (the EuroSAT work, whose
    ``DiffAugment`` returns its input)"""
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    """the DSA transforms, ``_``-separated (MTT's)"""
    images_per_class: int | None = None
    """train on the first ``n`` training images of each class (reduced budgets); None: all"""
    seed: int = 0
    """base seed; expert ``i`` uses ``derive_seed(seed, i)``. Experts of any seed serve the
    same distillation, so it is not part of what a distillation checks (``training``)"""

    def __post_init__(self) -> None:
        if self.model not in NETWORKS:
            raise ConfigError(f"unknown model {self.model!r}; available: {', '.join(NETWORKS)}")
        check_preprocessing(self.preprocessing, "experts")
        if self.augmentation not in ("none", "dsa"):
            raise ConfigError(
                f"experts: augmentation is 'none' or 'dsa', not {self.augmentation!r}"
            )
        require_positive(
            self, ("num_experts", "epochs", "batch_train", "images_per_class"), "experts"
        )
        require_learning_rates(self, "experts")

    @property
    def folder_name(self) -> str:
        return f"{self.dataset}/{self.model}-{self.preprocessing}"

    def training(self) -> dict:
        """The fields that define an expert's training (all but ``num_experts`` and ``seed``)."""
        out = dataclasses.asdict(self)
        out.pop("num_experts"), out.pop("seed")
        return out

    def command(self, experts_dir: str | Path) -> str:
        """The ``python -m bench experts`` command that generates these experts."""
        parts = [
            "python -m bench experts",
            f"--dataset {self.dataset}",
            f"--model {self.model}",
            f"--preprocessing {self.preprocessing}",
            f"--num-experts {self.num_experts}",
            f"--epochs {self.epochs}",
        ]
        defaults = ExpertConfig()
        if self.batch_train != defaults.batch_train:
            parts.append(f"--batch-train {self.batch_train}")
        if self.augmentation != defaults.augmentation:
            parts.append(f"--augmentation {self.augmentation}")
        if self.images_per_class is not None:
            parts.append(f"--images-per-class {self.images_per_class}")
        parts.append(f"--experts-dir {experts_dir}")
        return " ".join(parts)


def trajectory_folder(experts_dir: str | Path, config: ExpertConfig) -> Path:
    """``<experts_dir>/<dataset>/<model>-<preprocessing>``: where ``config``'s experts are
    stored."""
    return Path(experts_dir) / config.folder_name


def _write_json(path: Path, content: dict) -> None:
    write_atomic(path, json.dumps(content, indent=2))


def _subset(real: RealSet, per_class: int | None) -> RealSet:
    """The first ``per_class`` images of every class (all of them for None)."""
    if per_class is None:
        return real
    keep = (
        torch.cat(
            [
                (real.labels == c).nonzero().flatten()[:per_class]
                for c in range(real.card.num_classes)
            ]
        )
        .sort()
        .values
    )
    return dataclasses.replace(real, images=real.images[keep], labels=real.labels[keep])


def _new_manifest(
    config: ExpertConfig, real: RealSet, net: torch.nn.Module, device: torch.device
) -> dict:
    from bench.api import provenance_tags

    tags = provenance_tags(device)
    return {
        "format": FORMAT,
        "config": config.training(),
        "dataset": {"name": real.card.name, "display_name": real.card.display_name},
        "preprocessing": real.preprocessing_description(),
        "parameters": [{"name": n, "shape": list(p.shape)} for n, p in net.named_parameters()],
        "provenance": {"git_commit": tags.get("git_commit", ""), "hardware": tags["hardware"]},
        "experts": [],
    }


def _check_manifest(
    manifest: dict, config: ExpertConfig, preprocessing: dict, folder: Path
) -> None:
    """Raise ``ConfigError`` unless ``manifest`` describes experts trained as ``config`` says on
    data preprocessed as ``preprocessing`` (a ``RealSet.preprocessing_description()``)."""
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{folder}/manifest.json is not a {FORMAT} manifest")
    stored_config = dict(manifest["config"])
    if "zca" in stored_config:  # manifests written before ``preprocessing`` replaced ``zca``
        stored_config["preprocessing"] = "zca" if stored_config.pop("zca") else "normalise"
    for what, stored, wanted in (
        ("training", stored_config, config.training()),
        ("preprocessing", manifest["preprocessing"], preprocessing),
    ):
        if stored != wanted:
            differ = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            details = ", ".join(
                f"{k}: {stored.get(k)!r} there, {wanted.get(k)!r} here" for k in differ
            )
            raise ConfigError(
                f"the expert trajectories in {folder} were made with another {what} ({details}); "
                f"refusing to mix them. Use another --experts-dir (method.experts_dir), or make "
                f"matching experts with: {config.command(folder.parent.parent)}"
            )


def generate_experts(
    real: RealSet,
    test: RealSet,
    config: ExpertConfig,
    experts_dir: str | Path,
    device: torch.device,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Train ``config.num_experts`` experts on ``real`` and store their trajectories (module
    docstring); experts already in the folder are kept, an interrupted one continues from its
    last finished epoch.

    Args:
        real, test: the preprocessed training and test splits (``test`` gives each expert's
            final accuracy in the manifest).
        config: how to train; its ``dataset`` must be ``real``'s card.
        experts_dir: root folder; the trajectories go to ``trajectory_folder(experts_dir,
            config)``.
        device: where to train.
        progress: called as ``progress(expert, epoch, loss)`` after every epoch.

    Returns:
        the trajectory folder.

    Raises:
        ConfigError: the folder holds experts made with another training config or
            preprocessing, or ``real`` is not preprocessed as ``config.preprocessing`` says.
    """
    from bench.api import test_accuracy, training_batches

    kind = real.preprocessing_description()["kind"]
    if kind != config.preprocessing:
        raise ConfigError(
            f"experts: the real data is preprocessed {kind!r}, the config says "
            f"{config.preprocessing!r}; prepare it with bench.data.preprocess.prepare_real"
        )
    folder = trajectory_folder(experts_dir, config)
    folder.mkdir(parents=True, exist_ok=True)
    real = _subset(real, config.images_per_class)
    card = real.card
    template = build_network(config.model, card.channels, card.num_classes, card.image_size, 0)
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        _check_manifest(manifest, config, real.preprocessing_description(), folder)
    else:
        manifest = _new_manifest(config, real, template, device)
        _write_json(manifest_path, manifest)
    done = {entry["index"] for entry in manifest["experts"]}
    images, labels = real.images.to(device), real.labels.to(device)
    for index in range(config.num_experts):
        if index in done:
            continue
        seed = derive_seed(config.seed, index)
        net = build_network(
            config.model, card.channels, card.num_classes, card.image_size, derive_seed(seed, _INIT)
        ).to(device)
        optimizer = torch.optim.SGD(
            net.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        partial = folder / f"expert_{index:04d}.partial.pt"
        trajectory = [[p.detach().cpu().clone() for p in net.parameters()]]
        if partial.exists():  # an interrupted expert: continue after its last finished epoch
            state = _load_partial(partial, seed)
            trajectory = state["trajectory"]
            with torch.no_grad():
                for p, saved in zip(net.parameters(), trajectory[-1], strict=True):
                    p.copy_(saved)
            optimizer.load_state_dict(state["optimizer"])
        net.train()
        for epoch in range(len(trajectory) - 1, config.epochs):
            generator = torch.Generator().manual_seed(derive_seed(seed, _EPOCH, epoch))
            total, count = 0.0, 0
            for x, y in training_batches(images, labels, config, generator, device):
                loss = F.cross_entropy(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(y), count + len(y)
            trajectory.append([p.detach().cpu().clone() for p in net.parameters()])
            with atomic_target(partial) as tmp:
                torch.save(
                    {"seed": seed, "trajectory": trajectory, "optimizer": optimizer.state_dict()},
                    tmp,
                )
            if progress is not None:
                progress(index, epoch, total / count)
        file = folder / f"expert_{index:04d}.safetensors"
        names = [n for n, _ in net.named_parameters()]
        stacked = {n: torch.stack([step[i] for step in trajectory]) for i, n in enumerate(names)}
        with atomic_target(file) as tmp:
            save_file(stacked, str(tmp))
        manifest["experts"].append(
            {
                "index": index,
                "seed": seed,
                "file": file.name,
                "sha256": sha256_file(file),
                "test_accuracy": test_accuracy(net, test, None, device),
            }
        )
        _write_json(manifest_path, manifest)
        partial.unlink()
    return folder


def _load_partial(path: Path, seed: int) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated files
        raise CheckpointError(
            f"{path} is corrupt ({type(exc).__name__}); delete it to retrain that expert"
        ) from None
    if state.get("seed") != seed:
        raise CheckpointError(f"{path} belongs to another seed; delete it to retrain that expert")
    return state


class ExpertTrajectories:
    """A verified trajectory folder, read one (expert, epoch) at a time.

    Args:
        folder: the trajectory folder.
        config: the training the distillation needs (``num_experts`` at least, ``epochs``
            at least as many as the distillation reaches, the same everything else).
        preprocessing: the description of the data the experts must have been trained on
            (``RealSet.preprocessing_description()``; ``bench.data.preprocess.describe``).
        net: a network of the experts' architecture (parameter names and shapes are checked).

    Raises:
        DataNotFoundError: no manifest, too few experts, or a missing file (the message gives
            the command that makes them).
        ConfigError: experts of another training config, preprocessing or architecture.
        CheckpointError: a file whose checksum differs from the manifest's (corrupt).
    """

    def __init__(
        self, folder: Path, config: ExpertConfig, preprocessing: dict, net: torch.nn.Module
    ) -> None:
        make = f"make them with: {config.command(folder.parent.parent)}"
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise DataNotFoundError(f"no expert trajectories in {folder}; {make}")
        manifest = json.loads(manifest_path.read_text())
        _check_manifest(manifest, config, preprocessing, folder)
        shapes = [{"name": n, "shape": list(p.shape)} for n, p in net.named_parameters()]
        if manifest["parameters"] != shapes:
            raise ConfigError(f"the experts in {folder} were trained for another network")
        experts = sorted(manifest["experts"], key=lambda e: e["index"])[: config.num_experts]
        if len(experts) < config.num_experts:
            raise DataNotFoundError(
                f"{folder} holds {len(experts)} finished expert(s), {config.num_experts} are "
                f"needed; {make} (it continues where the folder stopped)"
            )
        for entry in experts:
            path = folder / entry["file"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise CheckpointError(
                    f"{path} is missing or its checksum differs from the manifest (corrupt): "
                    f"delete it and its entry in {manifest_path}, then {make}"
                )
        self.folder = folder
        self.files = [folder / e["file"] for e in experts]
        self.names = [p["name"] for p in manifest["parameters"]]
        self.epochs = config.epochs
        self.manifest = manifest

    def __len__(self) -> int:
        return len(self.files)

    def flat_parameters(self, expert: int, epoch: int) -> torch.Tensor:
        """Expert ``expert``'s parameters after ``epoch`` epochs, flattened and concatenated in
        ``named_parameters`` order: float32 ``[P]`` on the CPU.

        Raises:
            CheckpointError: the file cannot be read.
        """
        try:
            with safe_open(str(self.files[expert]), framework="pt") as handle:
                return torch.cat([handle.get_slice(n)[epoch].flatten() for n in self.names])
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{self.files[expert]} cannot be read ({exc})") from None
