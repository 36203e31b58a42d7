"""Real datasets through the real torchvision loaders, described by the cards in ``datasets/``.

``load_real`` returns the whole split as one normalised tensor, the form gradient matching and
the evaluation both need (per-class sampling of real batches, a fast test pass).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import tomllib
import torch

from bench.errors import ConfigError, DataNotFoundError
from bench.paths import DATASET_CARDS_DIR


@dataclass(frozen=True)
class DatasetCard:
    """One ``datasets/<name>.toml`` card: loader, shape, classes and normalisation."""

    name: str
    display_name: str
    loader: str
    folder: str
    channels: int
    image_size: tuple[int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: dict[str, int]
    source: str
    licence: str
    md5: dict[str, str]
    """file name under ``<root>/<folder>/raw`` -> md5 of the original file"""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def known_datasets() -> list[str]:
    """Names of the dataset cards in ``datasets/``."""
    return sorted(p.stem for p in DATASET_CARDS_DIR.glob("*.toml"))


def load_card(name: str) -> DatasetCard:
    """Read ``datasets/<name>.toml``.

    Raises:
        ConfigError: no card of that name (the message lists the known ones).
    """
    path = DATASET_CARDS_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(known_datasets())
        raise ConfigError(f"unknown dataset {name!r}; cards exist for: {known}")
    raw = tomllib.loads(path.read_text())
    return DatasetCard(
        name=raw["name"],
        display_name=raw["display_name"],
        loader=raw["loader"],
        folder=raw["folder"],
        channels=int(raw["channels"]),
        image_size=tuple(raw["image_size"]),
        classes=tuple(raw["classes"]),
        mean=tuple(float(m) for m in raw["mean"]),
        std=tuple(float(s) for s in raw["std"]),
        splits=dict(raw["splits"]),
        source=raw["source"],
        licence=raw["licence"],
        md5=dict(raw.get("checksums", {}).get("md5", {})),
    )


@dataclass
class RealSet:
    """A whole real split: ``images [N, C, H, W]`` float32 normalised with the card's mean/std,
    ``labels [N]`` int64 in ``[0, K)``."""

    images: torch.Tensor
    labels: torch.Tensor
    card: DatasetCard

    def to(self, device: torch.device | str) -> RealSet:
        return RealSet(self.images.to(device), self.labels.to(device), self.card)


def normalise(images_uint8: torch.Tensor, card: DatasetCard) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` in 0..255 -> float32 ``(x / 255 - mean) / std`` per channel
    (what ``ToTensor`` + ``Normalize`` give, without a per-image Python loop)."""
    mean = torch.tensor(card.mean).view(1, -1, 1, 1)
    std = torch.tensor(card.std).view(1, -1, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def denormalise(images: torch.Tensor, card: DatasetCard) -> torch.Tensor:
    """Inverse of ``normalise``, clamped to [0, 1] (for pictures)."""
    mean = torch.tensor(card.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(card.std, device=images.device).view(1, -1, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)


def verify_checksums(card: DatasetCard, root: Path) -> None:
    """Compare the md5 of every file the card lists that exists under ``root/folder/raw``.

    Raises:
        DataNotFoundError: a file differs from the original (corrupt or another version).
    """
    for name, expected in card.md5.items():
        path = root / card.folder / "raw" / name
        if path.is_file():
            actual = hashlib.md5(path.read_bytes()).hexdigest()
            if actual != expected:
                raise DataNotFoundError(
                    f"{path} has md5 {actual}, the {card.display_name} card says {expected}: "
                    "the file is corrupt or not the original; delete it and re-download"
                )


def _mnist(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``[N, 1, 28, 28]`` images, int64 ``[N]`` labels (``torchvision.datasets.MNIST``)."""
    import torchvision

    dataset = torchvision.datasets.MNIST(str(root), train=train, download=download)
    return dataset.data.unsqueeze(1), dataset.targets.long()


_LOADERS = {"torchvision.datasets.MNIST": _mnist}


def load_real(card: DatasetCard, root: str | Path, split: str, download: bool = False) -> RealSet:
    """Load one split (``"train"`` or ``"test"``) with the card's torchvision loader.

    Raises:
        DataNotFoundError: the files are not under ``root`` (the message names the folder
            searched and the flags that fix it), or differ from the card's checksums.
        ConfigError: the card names a loader this suite does not have.
    """
    if card.loader not in _LOADERS:
        raise ConfigError(f"dataset card {card.name!r} names unsupported loader {card.loader!r}")
    root = Path(root).expanduser().resolve()
    try:
        images, labels = _LOADERS[card.loader](root, split == "train", download)
    except RuntimeError as exc:
        if "not found" not in str(exc).lower():
            raise
        raise DataNotFoundError(
            f"{card.display_name} {split} split not found under {root / card.folder}; "
            f"pass --data-root DIR (the folder that holds {card.folder}/), "
            "or add --download on a machine with network"
        ) from None
    verify_checksums(card, root)
    expected = card.splits.get(split)
    if expected is not None and len(labels) != expected:
        raise DataNotFoundError(
            f"{card.display_name} {split} split under {root / card.folder} has {len(labels)} "
            f"images, the card says {expected}; the copy is incomplete: re-download it"
        )
    return RealSet(normalise(images, card), labels, card)
