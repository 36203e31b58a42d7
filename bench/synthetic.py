"""The synthetic set every method hands to the shared evaluation, and its on-disk format.

File format (``synthetic_set.safetensors``), readable by any evaluator with ``safetensors``:
  - tensor ``images``: float32 ``[N, C, H, W]``, normalised with the dataset's mean/std
    (``x_normalised = (x - mean) / std`` per channel, ``x`` in [0, 1]);
  - tensor ``labels``: int64 ``[N]``, class indices in ``[0, K)``;
  - optional tensor ``indices``: int64 ``[N]``, positions in the real training split (coresets);
  - optional tensor ``lr``: float32 0-d, the learned learning rate the set is meant to be trained
    with (MTT; the evaluation uses it when ``EvalProtocol.lr_from_set``);
  - optional tensors ``points``, ``initial_points``: float32 ``[N, P, 3]``, the point clouds
    (depth, height, width) at the end and start of distillation, where the images are their
    projections (point-cloud methods);
  - string metadata: ``method``, ``dataset``, ``ipc``, ``seed``, ``config_hash``, ``mean``,
    ``std`` (JSON lists) and ``format`` (``distillbench.synthetic_set/1``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bench.data import DatasetCard
from bench.errors import ShapeError, UserError

FORMAT = "distillbench.synthetic_set/1"


@dataclass
class SyntheticSet:
    """Synthetic images and their labels plus where they came from.

    Attributes:
        images: float32 ``[N, C, H, W]``, normalised with the dataset's mean/std.
        labels: int64 ``[N]``.
        method, dataset: names (``"gm"``, ``"mnist"``).
        ipc: images per class (``None``: the whole training split).
        seed: the seed this set was distilled with.
        config_hash: hash of the resolved run config.
        indices: int64 ``[N]`` indices into the real training split when the images are real
            ones (coreset baselines), else ``None``.
        points, initial_points: float32 ``[N, P, 3]`` point clouds whose projections the images
            are, at the end and the start of distillation (point-cloud methods), else ``None``.
        lr: float32 0-d tensor, the learned learning rate to train on the set with (MTT), else
            ``None``.
        generator: the state dict of the generator that sampled the images (GTN methods), else
            ``None``; saved beside the set by ``save_generator``, not in its file.
    """

    images: torch.Tensor
    labels: torch.Tensor
    method: str
    dataset: str
    ipc: int | None
    seed: int
    config_hash: str
    indices: torch.Tensor | None = None
    points: torch.Tensor | None = None
    initial_points: torch.Tensor | None = None
    lr: torch.Tensor | None = None
    generator: dict[str, torch.Tensor] | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The set's tensors by name (on the CPU), the optional ones only where present."""
        named = {
            "images": self.images,
            "labels": self.labels,
            "indices": self.indices,
            "points": self.points,
            "initial_points": self.initial_points,
            "lr": self.lr,
        }
        return {k: v.detach().cpu().contiguous() for k, v in named.items() if v is not None}

    def state(self) -> dict:
        """``tensors()`` plus the generator's weights where present: what a checkpoint keeps
        to rebuild the set as ``SyntheticSet(**state, method=..., ...)``."""
        state: dict = self.tensors()
        if self.generator is not None:
            state["generator"] = self.generator
        return state

    def save_generator(self, path: Path) -> Path:
        """Write the generator's weights as safetensors (metadata: ``format``
        ``distillbench.generator/1``, method, dataset, seed, config_hash; the architecture is
        the run's method config); returns ``path``.

        Raises:
            UserError: the set has no generator.
        """
        if self.generator is None:
            raise UserError(f"the {self.method} synthetic set has no generator to save")
        metadata = {
            "format": "distillbench.generator/1",
            "method": self.method,
            "dataset": self.dataset,
            "seed": str(self.seed),
            "config_hash": self.config_hash,
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.generator.items()}
        save_file(tensors, str(path), metadata=metadata)
        return path

    def validate(self, card: DatasetCard) -> None:
        """Check shapes, dtypes, labels and finiteness against the dataset card.

        Raises:
            ShapeError: naming the offending tensor, its shape and the expected one.
        """
        expected = (card.channels, *card.image_size)
        if self.images.ndim != 4 or tuple(self.images.shape[1:]) != expected:
            raise ShapeError(
                f"synthetic images have shape {list(self.images.shape)}, {card.display_name} "
                f"needs [N, {', '.join(map(str, expected))}]"
            )
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ShapeError(
                f"synthetic labels have shape {list(self.labels.shape)}, expected "
                f"[{self.images.shape[0]}] (one label per image)"
            )
        if self.images.dtype != torch.float32 or self.labels.dtype != torch.int64:
            raise ShapeError(
                f"synthetic set dtypes are images={self.images.dtype}, labels={self.labels.dtype};"
                " expected float32 and int64"
            )
        if self.labels.numel() and (
            int(self.labels.min()) < 0 or int(self.labels.max()) >= card.num_classes
        ):
            raise ShapeError(f"synthetic labels must lie in [0, {card.num_classes})")
        if not torch.isfinite(self.images).all():
            raise ShapeError("synthetic images contain NaN or infinite values")

    def save(self, path: Path, card: DatasetCard) -> Path:
        """Write the safetensors file described in the module docstring; returns ``path``."""
        metadata = {
            "format": FORMAT,
            "method": self.method,
            "dataset": self.dataset,
            "ipc": str(self.ipc),
            "seed": str(self.seed),
            "config_hash": self.config_hash,
            "mean": json.dumps(list(card.mean)),
            "std": json.dumps(list(card.std)),
        }
        save_file(self.tensors(), str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: Path) -> SyntheticSet:
        """Read a file written by ``save``.

        Raises:
            UserError: the file is missing, not safetensors, or lacks ``images``/``labels``.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UserError(f"synthetic set {path} does not exist")
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(
                f"synthetic set {path} is not a readable safetensors file ({exc})"
            ) from None
        missing = {"images", "labels"} - tensors.keys()
        if missing:
            raise UserError(f"synthetic set {path} lacks tensor(s) {sorted(missing)}")
        return cls(
            images=tensors["images"],
            labels=tensors["labels"],
            method=meta.get("method", "unknown"),
            dataset=meta.get("dataset", "unknown"),
            ipc=int(meta.get("ipc", 0)),
            seed=int(meta.get("seed", -1)),
            config_hash=meta.get("config_hash", ""),
            indices=tensors.get("indices"),
            points=tensors.get("points"),
            initial_points=tensors.get("initial_points"),
            lr=tensors.get("lr"),
        )


def save_grid(pixels: torch.Tensor, labels: torch.Tensor, card: DatasetCard, path: Path) -> Path:
    """PNG grid of synthetic images: one column per class, one row per image of that class (at
    most 10 rows). ``pixels`` is ``[N, C, H, W]`` in [0, 1] (``RealSet.pixels``), ``labels``
    ``[N]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pixels = pixels.detach().cpu().float()
    per_class = [pixels[labels.cpu() == c][:10] for c in range(card.num_classes)]
    rows = max(1, max(len(p) for p in per_class))
    fig, axes = plt.subplots(
        rows, card.num_classes, squeeze=False, figsize=(card.num_classes * 0.9, rows * 0.9 + 0.3)
    )
    for r, row in enumerate(axes):
        for c, ax in enumerate(row):
            ax.axis("off")
            if r == 0:
                ax.set_title(card.classes[c], fontsize=8)
            if r < len(per_class[c]):
                image = per_class[c][r].permute(1, 2, 0).numpy()
                ax.imshow(
                    image.squeeze(-1) if image.shape[-1] == 1 else image,
                    cmap="gray",
                    vmin=0.0,
                    vmax=1.0,
                )
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
