"""Real datasets through the real torchvision loaders, described by the cards in ``datasets/``
(their schema: ``bench.data.card_schema``).

``load_real`` returns the whole split as one normalised tensor, the form gradient matching and
the evaluation both need (per-class sampling of real batches, a fast test pass).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.core.errors import ConfigError, DataNotFoundError, UserError
from bench.core.faults import explain
from bench.core.paths import card_dirs, find_toml, toml_files
from bench.core.schema import parse, read_toml
from bench.data.card_schema import CardModel

if TYPE_CHECKING:
    import numpy as np


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
    """path relative to ``<data-root>/<folder>`` -> md5 of the original file"""
    variant_of: str | None = None
    """name of the card whose dataset this is another copy of (e.g. ``cifar10-jpeg`` ->
    ``cifar10``): its results are labelled with this card's ``display_name`` and must never be
    passed off as the original's"""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def known_datasets() -> list[str]:
    """Names of the dataset cards in ``datasets/`` and in ``<include path>/datasets``."""
    return sorted(toml_files(card_dirs()))


def load_card(name: str) -> DatasetCard:
    """Read ``datasets/<name>.toml`` (or ``<include path>/datasets/<name>.toml``).

    Raises:
        ConfigError: no card of that name (the message lists the known ones), a name defined
            twice, or unreadable TOML.
        SchemaError: the card does not fit ``CardModel``; one line per problem in ``problems``
            (missing or unknown key, wrong type, mean/std not one per channel).
    """
    path = find_toml(name, card_dirs(), "dataset card")
    if path is None:
        known = ", ".join(known_datasets())
        raise ConfigError(f"unknown dataset {name!r}; cards exist for: {known}")
    where = f"dataset card {path.name}"
    card = parse(CardModel, read_toml(path, "dataset card"), where, {"stem": name})
    return DatasetCard(
        name=card.name,
        display_name=card.display_name,
        loader=card.loader,
        folder=card.folder,
        channels=card.channels,
        image_size=tuple(card.image_size),
        classes=tuple(card.classes),
        mean=tuple(card.mean),
        std=tuple(card.std),
        splits=dict(card.splits),
        source=card.source,
        licence=card.licence,
        md5=dict(card.checksums.md5),
        variant_of=card.variant_of,
    )


@dataclass
class RealSet:
    """A whole real split: ``images [N, C, H, W]`` float32 normalised with the card's mean/std
    (or otherwise preprocessed, as ``preprocessing`` says), ``labels [N]`` int64 in ``[0, K)``."""

    images: torch.Tensor
    labels: torch.Tensor
    card: DatasetCard
    preprocessing: dict = field(default_factory=dict)
    """how ``images`` were made from the files when not by the card's mean/std (e.g. ZCA
    whitening or raw pixels, ``bench/data/preprocess.py``); empty: the card's normalisation"""
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None
    """maps images of this preprocessing back to [0, 1] pixels (for pictures); None:
    ``denormalise``"""

    def to(self, device: torch.device | str) -> RealSet:
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def preprocessing_description(self) -> dict:
        """``preprocessing``, or the card's normalisation where there is none (what expert
        manifests record and distillation compares)."""
        return self.preprocessing or {
            "kind": "normalise",
            "mean": list(self.card.mean),
            "std": list(self.card.std),
        }

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, H, W]`` of this set's preprocessing as [0, 1] pixels (CPU)."""
        images = images.detach().cpu().float()
        return self.to_pixels(images) if self.to_pixels else denormalise(images, self.card)


def normalise(images_uint8: torch.Tensor, card: DatasetCard) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` in 0..255 -> float32 ``(x / 255 - mean) / std`` per channel
    (what ``ToTensor`` + ``Normalize`` give, without a per-image Python loop; in place on the one
    float copy, which is several times faster on a whole split and gives the same bits)."""
    mean = torch.tensor(card.mean).view(1, -1, 1, 1)
    std = torch.tensor(card.std).view(1, -1, 1, 1)
    return images_uint8.float().div_(255.0).sub_(mean).div_(std)


def denormalise(images: torch.Tensor, card: DatasetCard) -> torch.Tensor:
    """Inverse of ``normalise``, clamped to [0, 1] (for pictures)."""
    mean = torch.tensor(card.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(card.std, device=images.device).view(1, -1, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)


def verify_checksums(card: DatasetCard, root: Path) -> None:
    """Compare the md5 of every file the card lists that exists under ``root/folder``.

    Raises:
        DataNotFoundError: a file differs from the original (corrupt or another version).
    """
    for name, expected in card.md5.items():
        path = root / card.folder / name
        if path.is_file():
            actual = hashlib.md5(path.read_bytes()).hexdigest()
            if actual != expected:
                raise DataNotFoundError(
                    f"{path} has md5 {actual}, the {card.display_name} card says {expected}: "
                    "the file is corrupt or not the original; delete it and re-download"
                )


def _idx(card: DatasetCard, root: Path, train: bool, download: bool):
    """uint8 ``[N, 1, 28, 28]`` images, int64 ``[N]`` labels from the IDX files that
    ``torchvision.datasets.MNIST`` and ``FashionMNIST`` (the card's loader) read from
    ``root/<card.folder>/raw``."""
    import torchvision

    loader = getattr(torchvision.datasets, card.loader.rsplit(".", 1)[1])
    dataset = loader(str(root), train=train, download=download)
    return dataset.data.unsqueeze(1), dataset.targets.long()


def _svhn(card: DatasetCard, root: Path, train: bool, download: bool):
    """uint8 ``[N, 3, 32, 32]``, int64 ``[N]`` in 0..9 (``torchvision.datasets.SVHN`` on
    ``root/SVHN/{train,test}_32x32.mat``; it turns the files' ``[H, W, C, N]`` into
    ``[N, C, H, W]`` and the files' label 10 into digit 0)."""
    import numpy as np
    import torchvision

    split = "train" if train else "test"
    dataset = torchvision.datasets.SVHN(str(root / card.folder), split=split, download=download)
    images = torch.from_numpy(np.ascontiguousarray(dataset.data))
    return images, torch.from_numpy(dataset.labels).long()


def _cifar10(card: DatasetCard, root: Path, train: bool, download: bool):
    """uint8 ``[N, 3, 32, 32]``, int64 ``[N]`` (``torchvision.datasets.CIFAR10`` on the original
    pickles in ``root/cifar-10-batches-py``)."""
    import torchvision

    dataset = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return images, torch.tensor(dataset.targets, dtype=torch.int64)


def _check_class_order(class_to_idx: dict[str, int], card: DatasetCard, folder: Path) -> None:
    """Check that ImageFolder numbered the class folders of ``folder`` in the card's order.

    Raises:
        DataNotFoundError: a class folder is missing, extra or misnamed (the message lists the
            folders found, the missing and the unexpected ones).
    """
    expected = {name: index for index, name in enumerate(card.classes)}
    if class_to_idx == expected:
        return
    original = load_card(card.variant_of).display_name if card.variant_of else card.display_name
    missing = [name for name in card.classes if name not in class_to_idx]
    unexpected = sorted(set(class_to_idx) - set(card.classes))
    raise DataNotFoundError(
        f"the class folders in {folder} are {sorted(class_to_idx)} (missing {missing}, "
        f"unexpected {unexpected}): ImageFolder would not number them in the standard "
        f"{original} label order {list(card.classes)}; name the folders exactly as the card's "
        "classes"
    )


def _decode(paths: Sequence[str], loader: Callable[[str], Any], card: DatasetCard) -> torch.Tensor:
    """Decode image files with ``loader`` (ImageFolder's PIL loader: RGB ``PIL.Image``) into
    one uint8 ``[len(paths), C, H, W]`` tensor, in the order of ``paths``.

    Each file is decoded straight into one preallocated array, without per-sample transforms.

    Raises:
        DataNotFoundError: an image does not decode to the card's ``(H, W, C)``.
    """
    import numpy as np

    shape = (*card.image_size, card.channels)
    images = np.empty((len(paths), *shape), dtype=np.uint8)  # NHWC
    for index, path in enumerate(paths):
        image = np.asarray(loader(path))
        if image.shape != shape:
            raise DataNotFoundError(
                f"{path} decodes to shape {list(image.shape)} (HWC), {card.display_name} images "
                f"are {list(shape)}: the copy is not the expected one"
            )
        images[index] = image
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _image_folder(card: DatasetCard, root: Path, train: bool, download: bool):
    """uint8 ``[N, C, H, W]``, int64 ``[N]`` from
    ``torchvision.datasets.ImageFolder(root/<card.folder>/<split>)`` (e.g. the CIFAR-10 JPEG
    copy), with the card's classes as the class folders.

    ImageFolder finds the files and their labels (class folders in sorted order) and its own
    (PIL) loader decodes each file (``_decode``). There is nothing to download: ``download`` is
    ignored.

    Raises:
        DataNotFoundError: the class folders do not number the classes in the card's order, or
            an image does not have the card's shape.
    """
    import torchvision

    folder = root / card.folder / ("train" if train else "test")
    dataset = torchvision.datasets.ImageFolder(
        str(folder), is_valid_file=lambda path: path.lower().endswith((".jpg", ".jpeg"))
    )
    _check_class_order(dataset.class_to_idx, card, folder)
    images = _decode([path for path, _ in dataset.samples], dataset.loader, card)
    return images, torch.tensor(dataset.targets, dtype=torch.int64)


def eurosat_split(
    n: int, seed: int = 42, test_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` into ``n`` samples: one shuffled split, ``test`` the last
    ``int(test_fraction * n)`` entries of ``numpy.random.RandomState(seed).permutation(n)`` and
    ``train`` the rest, both int64 in permutation order (not sorted).

    This is the EuroSAT split of the dataset-distillation reference
    (julius-lautz/imp_dataset_distillation@4b8bf43, ``helper_functions.get_full_dataset``):
    ``DATA_DF.sample(frac=1, random_state=42)``, which draws exactly this permutation, then
    ``[:-int(len * 0.1)]`` / ``[-int(len * 0.1):]``. For ``n = 27000``: 24300 / 2700.

    Raises:
        ValueError: the test part would be empty or everything (where the reference's
            ``[:-0]`` slice would silently give an empty train split).
    """
    import numpy as np

    n_test = int(n * test_fraction)  # the reference's float arithmetic, not round()
    if not 0 < n_test < n:
        raise ValueError(f"a {test_fraction} test fraction of {n} samples is {n_test} samples")
    order = np.random.RandomState(seed).permutation(n).astype(np.int64)
    return order[:-n_test], order[-n_test:]


def _eurosat(card: DatasetCard, root: Path, train: bool, download: bool):
    """uint8 ``[N, 3, 64, 64]``, int64 ``[N]`` in 0..9: one split (``eurosat_split``, seed 42,
    90/10) of the RGB EuroSAT JPEGs that ``torchvision.datasets.EuroSAT(root)`` finds in
    ``root/eurosat/2750/<Class>/*.jpg`` (and downloads there with ``download``).

    torchvision's EuroSAT is an ImageFolder: class folders and, within each, file names in
    sorted (string) order. The permutation is applied to that order; only the split's images are
    decoded, in permutation order, as in the reference.

    Raises:
        RuntimeError: torchvision's "Dataset not found" (no ``root/eurosat/2750``), which
            ``load_real`` turns into its ``DataNotFoundError`` naming the folder and ``--download``.
        DataNotFoundError: a class folder is missing, extra or misnamed, or empty; the number of
            images is not the card's train + test (another copy would give another split); an
            image is not 64x64 RGB.
    """
    import torchvision

    folder = root / card.folder / "2750"  # card.folder is "eurosat", fixed by torchvision
    try:
        dataset = torchvision.datasets.EuroSAT(str(root), download=download)
    except FileNotFoundError as exc:  # ImageFolder: no class folders, or one without images
        raise DataNotFoundError(
            f"{folder} is incomplete ({exc}); delete {root / card.folder} and re-download it "
            "(--download)"
        ) from None
    _check_class_order(dataset.class_to_idx, card, folder)
    n = len(dataset.samples)
    if {"train", "test"} <= card.splits.keys():
        total = card.splits["train"] + card.splits["test"]
        if n != total:
            # the split permutes all n files: any other n gives a different split
            raise DataNotFoundError(
                f"{folder} holds {n} images, the {card.display_name} card says {total} "
                f"(train {card.splits['train']} + test {card.splits['test']}); the copy is "
                f"incomplete or has extra files: delete {root / card.folder} and re-download it"
            )
    train_indices, test_indices = eurosat_split(n)
    indices = train_indices if train else test_indices
    images = _decode([dataset.samples[i][0] for i in indices], dataset.loader, card)
    labels = torch.tensor([dataset.targets[i] for i in indices], dtype=torch.int64)
    return images, labels


# card ``loader`` -> function ``(card, root, train, download)``; the card gives each loader
# its folder, classes and image shape
_LOADERS = {
    "torchvision.datasets.MNIST": _idx,
    "torchvision.datasets.FashionMNIST": _idx,
    "torchvision.datasets.SVHN": _svhn,
    "torchvision.datasets.CIFAR10": _cifar10,
    "torchvision.datasets.ImageFolder": _image_folder,
    "torchvision.datasets.EuroSAT": _eurosat,
}
_NO_DOWNLOAD = {"torchvision.datasets.ImageFolder"}
"""Loaders whose files torchvision cannot download (the card's ``source`` says where they are)."""


def _not_found_message(card: DatasetCard, root: Path, split: str) -> str:
    """What is missing, where it was searched and the flags that fix it."""
    if card.loader in _NO_DOWNLOAD:
        fix = f"this copy cannot be downloaded (source: {card.source})"
        if card.variant_of is not None:
            fix += f"; or use the original: --dataset {card.variant_of} --download"
    else:
        fix = "or add --download on a machine with network"
    message = (
        f"{card.display_name} {split} split not found under {root / card.folder}; "
        f"pass --data-root DIR (the folder that holds {card.folder}/), {fix}"
    )
    for name in known_datasets():
        other = load_card(name)
        if other.variant_of == card.name and (root / other.folder).is_dir():
            message += (
                f". {root / other.folder} holds another copy, {other.display_name!r}: to use it, "
                f"run with --dataset {other.name} (its results are labelled "
                f"{other.display_name!r}, never {card.display_name!r})"
            )
    return message


def smallest_class(real: RealSet) -> int:
    """The number of images of ``real``'s smallest class (0 if a class has none)."""
    counts = torch.bincount(real.labels, minlength=real.card.num_classes)
    return int(counts.min())


def load_real(card: DatasetCard, root: str | Path, split: str, download: bool = False) -> RealSet:
    """Load one split (``"train"`` or ``"test"``) with the card's torchvision loader.

    Raises:
        DataNotFoundError: the files are not under ``root`` (the message names the folder
            searched and the flags that fix it), differ from the card's checksums (checked
            before the loader's own error about a damaged file is reported), or cannot be read.
        EnvironmentFault: the files are there but this user may not read them
            (``bench.core.faults.explain``).
        ConfigError: the card names a loader this suite does not have, or an unknown split.
    """
    if card.loader not in _LOADERS:
        raise ConfigError(f"dataset card {card.name!r} names unsupported loader {card.loader!r}")
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}; choose 'train' or 'test'")
    root = Path(root).expanduser().resolve()
    try:
        images, labels = _LOADERS[card.loader](card, root, split == "train", download)
    except UserError:
        raise
    except Exception as exc:  # torchvision and numpy raise many types for missing/damaged files
        fault = explain(exc)  # unreadable (permissions), not damaged: no re-download helps
        if fault is not None:
            raise fault from None
        # the checksums first: a truncated file fails to parse before torchvision checks it
        verify_checksums(card, root)
        if isinstance(exc, FileNotFoundError) or "not found" in str(exc).lower():
            raise DataNotFoundError(_not_found_message(card, root, split)) from None
        raise DataNotFoundError(
            f"{card.display_name} {split} split under {root / card.folder} cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            f"the copy is damaged or not the original: delete {root / card.folder} and "
            "re-download it (--download)"
        ) from None
    verify_checksums(card, root)
    expected = card.splits.get(split)
    if expected is not None and len(labels) != expected:
        raise DataNotFoundError(
            f"{card.display_name} {split} split under {root / card.folder} has {len(labels)} "
            f"images, the card says {expected}; the copy is incomplete: re-download it"
        )
    return RealSet(normalise(images, card), labels, card)
