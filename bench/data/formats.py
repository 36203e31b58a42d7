"""Synthetic sets made elsewhere: readers for the files other code saves, and the checks every
set passes before ``python -m bench evaluate`` trains anything on it.

Formats (``read_set_file`` picks one by the path):
  - ``*.safetensors``: this suite's ``synthetic_set.safetensors`` (``SyntheticSet.load``);
  - ``res_*.pt`` written by the DC reference code (VICO-UoE/DatasetCondensation@53f63a6,
    ``main.py``): ``torch.save({'data': data_save, 'accs_all_exps': accs_all_exps}, ...)`` with
    ``data`` a list of ``[image_syn, label_syn]`` CPU tensors, one pair per experiment (images
    ``[N, C, H, W]`` float32 normalised with the dataset's mean/std, labels ``[N]`` int64), and
    ``accs_all_exps`` ``{model: [accuracy in [0, 1], ...]}`` of numpy float64 scalars;
  - ``images_<it>.pt`` (or ``images_best.pt``) beside ``labels_<it>.pt``, saved by MTT's
    ``distill.py`` (GeorgeCazenavette/mtt-distillation@50dccea): bare tensors, the images in the
    space the run trained in, ZCA-whitened with ``--zca`` and mean/std-normalised otherwise;
    nothing in the files says which, and the learned learning rate is not saved (only logged
    to wandb as ``Synthetic_LR``), so both are given by the user;
  - a folder with one sub-folder of PNG/JPEG images per class (torchvision's ``ImageFolder``
    layout, folders named as the dataset card's classes): pixels, normalised with the card.

Any ``.pt`` is read with ``torch.load(weights_only=True)``, allowing only numpy's float64
scalar reconstruction (DC's accuracies); a file that needs any other pickled object is refused
with the objects it names, never unpickled.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bench.core.errors import ShapeError, UserError
from bench.core.paths import not_a_file
from bench.data.real import DatasetCard, _check_class_order, _decode, normalise
from bench.data.synthetic import SyntheticSet

PREPROCESSINGS = ("normalise", "zca")
"""``kind`` of ``SyntheticSet.preprocessing`` a user can state for files that do not record it"""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SetFileError(UserError):
    """A synthetic-set file cannot be read, or would need arbitrary pickle to be read."""


class PreprocessingError(UserError):
    """A synthetic set's preprocessing is unknown or differs from the protocol's."""


@dataclass(frozen=True)
class ReadSet:
    """One synthetic set read from a file, with where it came from.

    Attributes:
        synset: the set (images float32 ``[N, C, H, W]``, labels int64 ``[N]``).
        path: the file (or ImageFolder folder) it was read from.
        sha256: SHA-256 of the file's bytes (of a folder: of its image files' relative paths
            and bytes, in sorted order).
        format: ``safetensors``, ``dc-result``, ``mtt`` or ``image-folder``.
        index: position of the set within the file (DC result files hold one per experiment).
        recorded: accuracies the file records for this set (DC: the reference's own
            evaluation, in %), shown beside the suite's; empty where none.
    """

    synset: SyntheticSet
    path: Path
    sha256: str
    format: str
    index: int = 0
    recorded: dict[str, float] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """MLflow tags of the set's child run."""
        return {
            "set_file": self.path.name,
            "set_sha256": self.sha256,
            "set_format": self.format,
            "set_index_in_file": str(self.index),
        }


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, or of a folder's files (relative path and bytes, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _numpy_scalar_globals() -> list:
    """Exactly what unpickling a numpy float64 scalar needs (``numpy.core.multiarray.scalar``
    under numpy 1 and 2 names, ``numpy.dtype``, ``numpy.dtypes.Float64DType``)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    allowed: list = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    if hasattr(np, "dtypes"):
        allowed.append(np.dtypes.Float64DType)
    return allowed


def load_pt(path: Path):
    """``torch.load(path, weights_only=True)`` on the CPU, with numpy float64 scalars allowed.

    Raises:
        SetFileError: the file is missing or unreadable, or needs other pickled objects (the
            message names them); it is never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise SetFileError(f"{path} {not_a_file(path)}")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # noqa: BLE001 - only to name the objects; the refusal stands
            unsafe = []
        allowed = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype"}
        named = [g for g in unsafe if g not in allowed and not g.startswith("numpy.dtypes.")]
        raise SetFileError(
            f"{path} needs arbitrary pickle to load ({', '.join(named) or 'unknown objects'}), "
            "which this suite never runs: re-save its tensors as plain tensors, lists and dicts "
            "(torch.save) or as safetensors"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise SetFileError(f"{path} is not a readable torch file ({exc})") from None


def read_safetensors(path: Path) -> list[SyntheticSet]:
    """This suite's ``synthetic_set.safetensors`` (``SyntheticSet.load``), one set."""
    return [SyntheticSet.load(path)]


def _normalised(card: DatasetCard) -> dict:
    return {"kind": "normalise", "mean": list(card.mean), "std": list(card.std)}


def read_dc_result(path: Path, card: DatasetCard) -> tuple[list[SyntheticSet], list[dict]]:
    """DC reference ``res_<dataset>_<model>_<ipc>ipc.pt``: one set per ``data`` pair, images
    normalised with the card's mean/std (the reference's ``get_dataset``). Returns the sets and
    the accuracies the file records (``accs_all_exps``: ``num_eval`` per model and experiment,
    fractions in the file, % here) per set, empty where the file does not split them.

    Raises:
        SetFileError: not a dict with ``data``, or a ``data`` entry that is not a pair.
    """
    content = load_pt(path)
    if not isinstance(content, dict) or not isinstance(content.get("data"), list | tuple):
        raise SetFileError(
            f"{path} is not a DC result file: expected a dict with 'data' "
            "(a list of [image_syn, label_syn]) as the reference's main.py saves"
        )
    sets = []
    for index, pair in enumerate(content["data"]):
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(t, torch.Tensor) for t in pair)
        ):
            raise SetFileError(
                f"{path}: data[{index}] is not an [image_syn, label_syn] pair of tensors"
            )
        sets.append(_external(pair[0], pair[1], "dc-reference", card, _normalised(card)))
    recorded: list[dict] = [{} for _ in sets]
    accs = content.get("accs_all_exps")
    if isinstance(accs, dict) and sets:
        for model, values in accs.items():
            values = list(values) if isinstance(values, list | tuple) else []
            if values and len(values) % len(sets) == 0:  # num_eval per experiment, in order
                per = len(values) // len(sets)
                for i in range(len(sets)):
                    chunk = [100.0 * float(v) for v in values[i * per : (i + 1) * per]]
                    recorded[i][str(model)] = sum(chunk) / len(chunk)
    return sets, recorded


MTT_IMAGES = re.compile(r"^images_(best|\d+)\.pt$")


def read_mtt_pair(
    path: Path, card: DatasetCard, preprocessing: str | None, learned_lr: float | None
) -> list[SyntheticSet]:
    """MTT's ``images_<it>.pt`` and the ``labels_<it>.pt`` beside it, one set.

    Args:
        preprocessing: what the images are in, ``"zca"`` or ``"normalise"`` (the files do not
            say: ``--zca`` runs save whitened images).
        learned_lr: the learned learning rate (wandb's ``Synthetic_LR``), kept as the extra
            ``lr``; None: the set has none.

    Raises:
        SetFileError: another file name, a missing labels file, or not tensors.
        PreprocessingError: ``preprocessing`` not given.
    """
    path = Path(path)
    if path.name.startswith("images_zca_"):
        raise SetFileError(
            f"{path} holds MTT's un-whitened pictures, not the set it trained on; "
            f"pass {path.name.replace('images_zca_', 'images_')} instead"
        )
    match = MTT_IMAGES.match(path.name)
    if match is None:
        raise SetFileError(
            f"{path}: MTT saves images_<iteration>.pt or images_best.pt beside labels_*.pt; "
            "pass the images file"
        )
    labels_path = path.with_name(f"labels_{match.group(1)}.pt")
    if not labels_path.is_file():
        raise SetFileError(f"{path}: no {labels_path.name} beside it (MTT saves both)")
    if preprocessing is None:
        raise PreprocessingError(
            f"{path}: MTT's image files do not record whether the run used --zca; pass "
            "--preprocessing zca (ZCA-whitened) or --preprocessing normalise (mean/std)"
        )
    images, labels = load_pt(path), load_pt(labels_path)
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise SetFileError(f"{path} and {labels_path.name} must each hold one tensor, as MTT saves")
    kind = _normalised(card) if preprocessing == "normalise" else {"kind": preprocessing}
    synset = _external(images, labels, "mtt-reference", card, kind)
    if learned_lr is not None:
        synset.extras["lr"] = torch.tensor(float(learned_lr), dtype=torch.float32)
    return [synset]


def read_image_folder(folder: Path, card: DatasetCard) -> list[SyntheticSet]:
    """One PNG/JPEG per synthetic image in ``folder/<class>/``, class folders named as the
    card's classes; pixels decoded as the card's channels and normalised with its mean/std.

    Raises:
        DataNotFoundError: class folders not the card's, or an image of another size.
        SetFileError: no images.
    """
    import numpy as np
    import torchvision
    from PIL import Image

    mode = "L" if card.channels == 1 else "RGB"
    try:
        dataset = torchvision.datasets.ImageFolder(
            str(folder), is_valid_file=lambda p: p.lower().endswith(IMAGE_SUFFIXES)
        )
    except FileNotFoundError as exc:
        raise SetFileError(f"{folder}: no PNG/JPEG images in class folders ({exc})") from None
    _check_class_order(dataset.class_to_idx, card, folder)

    def load(path: str):  # HWC, grey images with their channel axis
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode))
        return pixels[..., None] if pixels.ndim == 2 else pixels

    pixels = _decode([p for p, _ in dataset.samples], load, card)
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return [_external(normalise(pixels, card), labels, "image-folder", card, _normalised(card))]


def _external(
    images: torch.Tensor, labels: torch.Tensor, method: str, card: DatasetCard, pre: dict
) -> SyntheticSet:
    return SyntheticSet(
        images=images.detach().cpu(),
        labels=labels.detach().cpu(),
        method=method,
        dataset=card.name,
        ipc=None,
        seed=-1,
        extras={},
        preprocessing=pre,
    )


def read_set_file(
    path: Path,
    card: DatasetCard,
    preprocessing: str | None = None,
    learned_lr: float | None = None,
) -> list[ReadSet]:
    """Every synthetic set in ``path``, by format (module docstring): a folder is an
    ImageFolder, ``.safetensors`` this suite's file, a ``.pt`` holding a dict DC's result file
    and ``images_*.pt`` MTT's pair.

    Raises:
        SetFileError, PreprocessingError: see the readers; unknown file types.
    """
    path = Path(path)
    if not (path.is_dir() or path.is_file()):
        raise SetFileError(f"{path} {not_a_file(path)}")
    recorded: list[dict] = []
    if path.is_dir():
        fmt, sets = "image-folder", read_image_folder(path, card)
    elif path.suffix == ".safetensors":
        fmt, sets = "safetensors", read_safetensors(path)
    elif path.suffix == ".pt" and path.name.startswith("images_"):
        fmt, sets = "mtt", read_mtt_pair(path, card, preprocessing, learned_lr)
    elif path.suffix == ".pt" and path.name.startswith("labels_"):
        raise SetFileError(f"{path}: pass MTT's images_*.pt file; its labels are read beside it")
    elif path.suffix == ".pt":
        fmt = "dc-result"
        sets, recorded = read_dc_result(path, card)
    else:
        raise SetFileError(
            f"{path}: unknown kind of file; evaluate reads synthetic_set.safetensors, DC's "
            "res_*.pt, MTT's images_*.pt or a folder of class folders of PNG/JPEG images"
        )
    if not sets:
        raise SetFileError(f"{path} holds no synthetic set")
    digest = sha256_of(path)
    recorded += [{}] * (len(sets) - len(recorded))
    pairs = enumerate(zip(sets, recorded, strict=True))
    return [ReadSet(s, path, digest, fmt, i, r) for i, (s, r) in pairs]


def check_set(read: ReadSet, card: DatasetCard, ipc: int, expected: dict) -> SyntheticSet:
    """Check a read set against the protocol before any training; returns it as float32
    images and int64 labels with the protocol's full preprocessing description.

    Args:
        card: the dataset the protocol trains and tests on.
        ipc: the protocol's images per class (every class must have exactly that many).
        expected: the protocol's preprocessing (``RealSet.preprocessing_description()``).

    Raises:
        ShapeError: not floating-point images or integer labels, the wrong image shape, labels
            outside the classes, a class count other than ``ipc`` per class, NaN or infinite
            values, or values that look like unnormalised pixels.
        PreprocessingError: the set's preprocessing differs from ``expected``.
    """
    synset, where = read.synset, f"{read.path}" + (f" (set {read.index})" if read.index else "")
    images, labels = synset.images, synset.labels
    if not images.is_floating_point():
        raise ShapeError(
            f"{where}: images are {images.dtype} (raw pixels?); save float images in the "
            "dataset's preprocessing, or PNG files in class folders"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ShapeError(
            f"{where}: labels are {labels.dtype} (soft labels?); this protocol trains on hard "
            "labels: save int64 class indices [N]"
        )
    synset = replace(synset, images=images.float(), labels=labels.long())
    try:
        synset.validate(card)
    except ShapeError as exc:
        raise ShapeError(f"{where}: {exc}") from None
    counts = torch.bincount(synset.labels, minlength=card.num_classes).tolist()
    if any(c != ipc for c in counts):
        raise ShapeError(
            f"{where}: {counts} images per class, the recipe evaluates {ipc} per class; pick "
            f"the recipe of this set's ipc (python -m bench list)"
        )
    low, high = float(synset.images.min()), float(synset.images.max())
    if high > 50.0 or low < -50.0:
        raise ShapeError(
            f"{where}: values range over [{low:.3g}, {high:.3g}], like 0..255 pixels; save them "
            "in the dataset's preprocessing (x / 255 - mean) / std"
        )
    if 0.0 <= low and high <= 1.0:
        raise ShapeError(
            f"{where}: values lie in [0, 1] like unnormalised pixels; normalise them with the "
            f"{card.display_name} mean/std or save them as PNG files in class folders"
        )
    stated = synset.preprocessing or _normalised(card)
    if not _same_preprocessing(stated, expected):
        raise PreprocessingError(
            f"{where}: images are in preprocessing {_describe(stated)}, the recipe trains and "
            f"tests on {_describe(expected)}; evaluate it with a recipe of that preprocessing, "
            "or state the right one with --preprocessing where the file does not record it"
        )
    return replace(synset, preprocessing=expected)


def _same_preprocessing(stated: dict, expected: dict) -> bool:
    """Same kind; a normalisation with the same mean/std; a ZCA with the same fields where the
    set states them (sets read from MTT files state only the kind)."""
    if stated.get("kind") != expected.get("kind"):
        return False
    if stated["kind"] == "normalise":
        return all(
            len(stated.get(k, ())) == len(expected[k])
            and all(
                math.isclose(a, b, abs_tol=1e-6)
                for a, b in zip(stated[k], expected[k], strict=True)
            )
            for k in ("mean", "std")
        )
    return all(expected.get(k) == v for k, v in stated.items())


def _describe(pre: dict) -> str:
    if pre.get("kind") == "normalise":
        return f"normalise(mean={pre.get('mean')}, std={pre.get('std')})"
    return str(pre.get("kind", "unknown"))
