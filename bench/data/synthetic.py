"""The synthetic set every method hands to the shared evaluation, and its on-disk format.

File format (``synthetic_set.safetensors``), readable by any evaluator with ``safetensors``:
  - tensor ``images``: float32 ``[N, C, H, W]`` in the preprocessing that the metadata
    ``preprocessing`` states: ``{"kind": "normalise", "mean": [...], "std": [...]}``
    (``x_normalised = (x - mean) / std`` per channel, ``x`` in [0, 1]; most methods) or
    ``{"kind": "zca", ...}`` (ZCA-whitened [0, 1] pixels: MTT and the baselines of ZCA
    recipes; ``bench/data/zca.py`` gives the fields) or ``{"kind": "none", ...}`` (the [0, 1]
    pixels themselves; ``bench/data/preprocess.py``);
  - tensor ``labels``: int64 ``[N]``, class indices in ``[0, K)``;
  - method-specific tensors (``SyntheticSet.extras``), each under its own name:
    ``indices`` int64 ``[N]`` (coresets: positions in the real training split), ``lr`` float32
    0-d (MTT: the learned learning rate the set is meant to be trained with; the evaluation
    uses it when ``EvalProtocol.lr_from_set``), ``points`` / ``initial_points`` float32
    ``[N, P, 3]`` (point clouds, depth-height-width, whose projections the images are, at the
    end and start of distillation), ``generator.<parameter>`` (GTN: the weights of the
    generator that sampled the images);
  - string metadata: ``method``, ``dataset``, ``ipc``, ``seed``, ``config_hash``,
    ``preprocessing`` (JSON), ``mean``, ``std`` (the card's, JSON lists), ``format``
    (``distillbench.synthetic_set/1``) and ``data_sha256`` (hex SHA-256 of the tensor data: the
    bytes after the header; ``load`` checks it).

The file is byte-reproducible: the same tensors and metadata give the same bytes in every
process. safetensors' Rust serialiser writes the metadata from a hash map, in an order that
changes between processes, so ``save`` rewrites the header it made as canonical JSON (keys
sorted, no spaces, space-padded to 8 bytes as the format requires;
https://github.com/huggingface/safetensors#format); tensor offsets and data are unchanged and
the file stays a standard safetensors file (``safetensors.safe_open`` reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError, field_validator
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from bench.core.errors import ShapeError, UserError
from bench.core.hashing import atomic_target, sha256_bytes, write_atomic
from bench.core.paths import not_a_file
from bench.data.real import DatasetCard

FORMAT = "distillbench.synthetic_set/1"
GRID = "synthetic_grid.png"


class SetMetadata(BaseModel):
    """The string metadata of a synthetic-set file (module docstring), parsed: numbers from
    their decimal text, ``preprocessing`` from JSON. Keys this suite does not read (``format``,
    ``mean``, ``std``, ``data_sha256``, a writer's own) are allowed; files from before a key
    was written get its default."""

    model_config = ConfigDict(extra="allow", frozen=True)

    method: str = "unknown"
    dataset: str = "unknown"
    ipc: int | None = Field(None, ge=1, description='images per class; "None" for coresets')
    seed: int = Field(-1, description="the set's seed; -1 where the writer did not record one")
    config_hash: str = ""
    preprocessing: Json[dict] = Field(default_factory=dict)

    @field_validator("ipc", mode="before")
    @classmethod
    def _none_text(cls, value):
        return None if value == "None" else value

    @classmethod
    def parse(cls, meta: dict[str, str], path: Path) -> SetMetadata:
        """``meta`` checked; raises ``UserError`` naming each bad key of ``path`` on one line."""
        try:
            return cls.model_validate(meta)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}"
                for e in exc.errors()
            )
            raise UserError(
                f"synthetic set {path} has unreadable metadata ({problems}); it was not written "
                "by SyntheticSet.save: re-save its tensors with it or pass the set to "
                "`bench evaluate` in another format"
            ) from None


"""file name of the picture of a synthetic set (``save_grid``)"""
GENERATOR_PREFIX = "generator."
"""extras under this prefix are a generator's weights (``SyntheticSet.generator_weights``)"""


@dataclass(kw_only=True)
class SyntheticSet:
    """Synthetic images and their labels plus where they came from.

    Attributes:
        images: float32 ``[N, C, H, W]`` in ``preprocessing``.
        labels: int64 ``[N]``.
        method, dataset: names (``"gm"``, ``"mnist"``).
        ipc: images per class (``None``: the whole training split).
        seed: the seed this set was distilled with.
        config_hash: hash of the resolved run config; a method leaves it empty, the runner
            fills it in before the set is saved.
        extras: method-specific tensors by name (module docstring: ``indices``, ``lr``,
            ``points``, ``initial_points``, ``generator.*``); saved in the same file.
        preprocessing: how ``images`` relate to pixels (``RealSet.preprocessing_description``);
            empty: the card's mean/std normalisation.
    """

    images: torch.Tensor
    labels: torch.Tensor
    method: str
    dataset: str
    ipc: int | None
    seed: int
    config_hash: str = ""
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The set's tensors by name (on the CPU): ``images``, ``labels`` and the extras. A
        checkpoint keeps them to rebuild the set as ``SyntheticSet.from_tensors``."""
        named = {"images": self.images, "labels": self.labels, **self.extras}
        return {k: v.detach().cpu().contiguous() for k, v in named.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], **metadata) -> SyntheticSet:
        """Inverse of ``tensors()``; ``metadata``: the other fields (``method``, ...)."""
        extras = {k: v for k, v in tensors.items() if k not in ("images", "labels")}
        return cls(images=tensors["images"], labels=tensors["labels"], extras=extras, **metadata)

    def generator_weights(self) -> dict[str, torch.Tensor]:
        """The state dict of the generator that sampled the images (GTN), else empty."""
        n = len(GENERATOR_PREFIX)
        return {k[n:]: v for k, v in self.extras.items() if k.startswith(GENERATOR_PREFIX)}

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
        preprocessing = self.preprocessing or {
            "kind": "normalise",
            "mean": list(card.mean),
            "std": list(card.std),
        }
        metadata = {
            "format": FORMAT,
            "method": self.method,
            "dataset": self.dataset,
            "ipc": str(self.ipc),
            "seed": str(self.seed),
            "config_hash": self.config_hash,
            "preprocessing": json.dumps(preprocessing, sort_keys=True),
            "mean": json.dumps(list(card.mean)),
            "std": json.dumps(list(card.std)),
        }
        write_atomic(Path(path), canonical_safetensors(save_bytes(self.tensors(), metadata)))
        return path

    @classmethod
    def load(cls, path: Path) -> SyntheticSet:
        """Read a file written by ``save``, checking its ``data_sha256`` (files without one, from
        before it was recorded, are read unchecked).

        Raises:
            UserError: the file is missing, not safetensors, corrupt (its tensor data does not
                hash to ``data_sha256``), lacks ``images``/``labels``, or its metadata does not
                parse (``SetMetadata``).
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"synthetic set {path} {not_a_file(path)}")
        try:
            data = path.read_bytes()
            tensors = load_bytes(data)
            header_size = int.from_bytes(data[:8], "little")
            meta = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(
                f"synthetic set {path} is not a readable safetensors file ({exc})"
            ) from None
        recorded = meta.get("data_sha256")
        if recorded is not None and sha256_bytes(memoryview(data)[8 + header_size :]) != recorded:
            raise UserError(
                f"synthetic set {path} is corrupt: its tensor data does not match the SHA-256 "
                "recorded in the file; download it again from the run's artifacts or recompute it"
            )
        missing = {"images", "labels"} - tensors.keys()
        if missing:
            raise UserError(f"synthetic set {path} lacks tensor(s) {sorted(missing)}")
        parsed = SetMetadata.parse(meta, path)
        return cls.from_tensors(
            tensors,
            method=parsed.method,
            dataset=parsed.dataset,
            ipc=parsed.ipc,
            seed=parsed.seed,
            config_hash=parsed.config_hash,
            preprocessing=parsed.preprocessing,
        )


def canonical_safetensors(data: bytes) -> bytes:
    """The safetensors file ``data`` with its header rewritten as canonical JSON (keys sorted,
    no spaces, padded with spaces to a multiple of 8 bytes) and ``data_sha256`` (hex SHA-256 of
    the tensor data) added to its metadata; offsets and tensor bytes are unchanged.

    Format (https://github.com/huggingface/safetensors#format): 8 bytes little-endian header
    size ``n``, ``n`` bytes of JSON header, then the tensor data the header's offsets index."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    header["__metadata__"] = {**header.get("__metadata__", {}), "data_sha256": sha256_bytes(body)}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


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
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
