"""The real torchvision loaders of the dataset cards, on small files written in exactly the
on-disk formats of the originals (SVHN .mat, CIFAR-10 pickles, ImageFolder JPEGs), and on the
real FashionMNIST and CIFAR-10 JPEG copies in ../shared/datasets."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from bench.core.errors import DataNotFoundError
from bench.data.real import _LOADERS, known_datasets, load_card, load_real

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
]  # fmt: skip


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _relaxed(card, sizes: dict[str, int], md5: dict[str, str] | None = None):
    """The card with the fake files' split sizes and md5s (the real ones cannot match)."""
    return dataclasses.replace(card, splits=sizes, md5=md5 or {})


@pytest.fixture
def skip_torchvision_md5(monkeypatch):
    """torchvision checks the md5s of the original SVHN/CIFAR-10 files before reading them; for
    the fake files here, only that they exist."""
    import torchvision.datasets.cifar
    import torchvision.datasets.svhn

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", exists)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)


# --- cards -----------------------------------------------------------------------------------


def test_every_card_loads_and_names_a_loader():
    assert {"cifar10", "cifar10-jpeg", "fashionmnist", "mnist", "svhn"} <= set(known_datasets())
    for name in known_datasets():
        card = load_card(name)
        assert card.name == name and card.loader in _LOADERS
        assert card.num_classes == 10 and len(card.mean) == len(card.std) == card.channels
        assert card.variant_of is None or card.variant_of in known_datasets()


def test_normalisation_is_the_dc_reference_codes():
    # VICO-UoE/DatasetCondensation@53f63a6, utils.get_dataset
    reference = {
        "mnist": ([0.1307], [0.3081]),
        "fashionmnist": ([0.2861], [0.3530]),
        "svhn": ([0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970]),
        "cifar10": ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
        "cifar10-jpeg": ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
    }
    for name, (mean, std) in reference.items():
        card = load_card(name)
        assert (list(card.mean), list(card.std)) == (mean, std), name


def test_the_jpeg_copy_is_labelled_as_a_copy_of_cifar10():
    jpeg, original = load_card("cifar10-jpeg"), load_card("cifar10")
    assert jpeg.display_name == "CIFAR-10 (JPEG copy)" and jpeg.variant_of == "cifar10"
    assert original.variant_of is None and original.display_name == "CIFAR-10"
    assert list(jpeg.classes) == list(original.classes) == CIFAR10_CLASSES
    assert jpeg.splits == original.splits == {"train": 50000, "test": 10000}


# --- SVHN: <root>/SVHN/{train,test}_32x32.mat, X [32, 32, 3, N] uint8, y [N, 1] in 1..10 ------


def _write_svhn(folder, split: str, n: int, seed: int, pixel: tuple | None = None):
    """``{split}_32x32.mat`` with random X and labels 1..10; ``pixel`` = (h, w, c, n, value)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # [H, W, C, N]
    if pixel is not None:
        x[pixel[:4]] = pixel[4]
    y = (np.arange(n, dtype=np.uint8) % 10 + 1).reshape(n, 1)  # 1..10, 10 is digit 0
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


def test_svhn_reads_the_mat_layout_and_maps_label_10_to_0(tmp_path, skip_torchvision_md5):
    # pixel at h=5, w=17 of channel 2 (blue) of image 7
    x, y = _write_svhn(tmp_path / "SVHN", "train", 12, seed=0, pixel=(5, 17, 2, 7, 201))
    images, labels = _LOADERS["torchvision.datasets.SVHN"](load_card("svhn"), tmp_path, True, False)
    assert images.shape == (12, 3, 32, 32) and images.dtype == torch.uint8
    assert images[7, 2, 5, 17].item() == 201
    assert torch.equal(images, torch.from_numpy(x).permute(3, 2, 0, 1))
    assert labels.dtype == torch.int64
    assert labels.tolist() == [int(v) % 10 for v in y[:, 0]]  # 10 -> 0
    assert 10 in y and labels.tolist().count(0) == 1 and 10 not in labels.tolist()


def test_svhn_through_load_real_is_normalised_and_checksummed(tmp_path, skip_torchvision_md5):
    x, _ = _write_svhn(tmp_path / "SVHN", "test", 5, seed=1)
    path = tmp_path / "SVHN" / "test_32x32.mat"
    card = _relaxed(load_card("svhn"), {"train": 73257, "test": 5}, {path.name: _md5(path)})
    real = load_real(card, tmp_path, "test")
    assert real.images.shape == (5, 3, 32, 32) and real.images.dtype == torch.float32
    assert real.labels.dtype == torch.int64
    expected = (x[3, 9, 1, 4] / 255.0 - card.mean[1]) / card.std[1]
    assert real.images[4, 1, 3, 9].item() == pytest.approx(expected, abs=1e-5)
    content = bytearray(path.read_bytes())
    content[1000] ^= 0xFF  # one pixel changed: still a readable .mat, not the file the card lists
    path.write_bytes(bytes(content))
    with pytest.raises(DataNotFoundError, match="test_32x32.mat has md5 .* re-download"):
        load_real(card, tmp_path, "test")


def test_svhn_missing_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_real(load_card("svhn"), tmp_path, "train")
    message = str(info.value)
    assert f"not found under {tmp_path / 'SVHN'}" in message
    assert "--data-root DIR" in message and "--download" in message


# --- CIFAR-10: <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} ------------


class _Python2Pickler(pickle._Pickler):
    """Pickles as the originals were (Python 2 cPickle, protocol 2): byte and text strings as
    Python 2 ``str`` (BINSTRING opcodes, which Python 3 reads back as ``str`` with
    ``encoding='latin1'``), numpy arrays through ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _pickle_py2(path, obj) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def _write_cifar10(root, per_batch: int = 3, test: int = 4):
    """Six batches {b'batch_label', b'labels', b'data' uint8 [n, 3072], b'filenames'} and
    batches.meta; returns the HWC images of the train split, in file order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        n = test if name == "test_batch" else per_batch
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # HWC, RGB
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # rows: R plane, G plane, B plane
        labels = [(index * per_batch + i) % 10 for i in range(n)]
        batch = {
            b"batch_label": f"batch {index + 1} of 6".encode(),
            b"labels": labels,
            b"data": np.ascontiguousarray(data),
            b"filenames": [f"img_{index}_{i}.png".encode() for i in range(n)],
        }
        _pickle_py2(folder / name, batch)
        if name != "test_batch":
            train.append((images, labels))
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    _pickle_py2(folder / "batches.meta", meta)
    return np.concatenate([i for i, _ in train]), sum((lbl for _, lbl in train), [])


def test_cifar10_reads_the_python2_pickles(tmp_path, skip_torchvision_md5):
    images_hwc, labels = _write_cifar10(tmp_path, per_batch=3, test=4)
    images, loaded_labels = _LOADERS["torchvision.datasets.CIFAR10"](
        load_card("cifar10"), tmp_path, True, False
    )
    assert images.shape == (15, 3, 32, 32) and images.dtype == torch.uint8
    assert loaded_labels.dtype == torch.int64 and loaded_labels.tolist() == labels
    assert images[4, 2, 30, 1].item() == images_hwc[4, 30, 1, 2]  # [n, c, h, w] <- [n, h, w, c]
    assert torch.equal(images, torch.from_numpy(images_hwc).permute(0, 3, 1, 2))

    card = _relaxed(load_card("cifar10"), {"train": 15, "test": 4})
    test = load_real(card, tmp_path, "test")
    assert test.images.shape == (4, 3, 32, 32) and test.images.dtype == torch.float32
    assert test.labels.tolist() == [5, 6, 7, 8]  # batch index 5, 3 per train batch


def test_cifar10_files_that_are_not_the_originals_are_refused_by_md5(tmp_path):
    # torchvision's own md5 check refuses the fake files ("not found or corrupted"); the message
    # then names the file that differs from the card instead of calling the data missing
    _write_cifar10(tmp_path)
    with pytest.raises(DataNotFoundError, match="data_batch_1 has md5 .* re-download"):
        load_real(load_card("cifar10"), tmp_path, "train")


def test_cifar10_missing_points_to_the_jpeg_copy_when_there_is_one(tmp_path):
    card = load_card("cifar10")
    with pytest.raises(DataNotFoundError) as info:
        load_real(card, tmp_path, "train")
    message = str(info.value)
    assert f"not found under {tmp_path / 'cifar-10-batches-py'}" in message
    assert "--data-root DIR" in message and "--download" in message
    assert "cifar10-jpeg" not in message

    (tmp_path / "CIFAR-10-images").mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_real(card, tmp_path, "test")
    message = str(info.value)
    assert str(tmp_path / "CIFAR-10-images") in message
    assert "--dataset cifar10-jpeg" in message and "'CIFAR-10 (JPEG copy)'" in message


# --- CIFAR-10 JPEG copy: <root>/CIFAR-10-images/<split>/<class>/NNNN.jpg ------------------------


def _write_jpegs(root, split: str, per_class: int, classes=CIFAR10_CLASSES):
    from PIL import Image

    for label, name in enumerate(classes):
        folder = root / "CIFAR-10-images" / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour = (20 * label + 10, 200 - 10 * i, 128)  # flat colours survive JPEG closely
            Image.new("RGB", (32, 32), colour).save(folder / f"{i:04d}.jpg", quality=95)


def test_the_jpeg_copy_loads_class_folders_in_cifar10_order(tmp_path):
    _write_jpegs(tmp_path, "train", per_class=2)
    images, labels = _LOADERS["torchvision.datasets.ImageFolder"](
        load_card("cifar10-jpeg"), tmp_path, True, False
    )
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [k for k in range(10) for _ in "ab"]
    red = images[:, 0].float().mean(dim=(1, 2))
    assert torch.allclose(red, (20 * labels + 10).float(), atol=3)  # each image in its class

    card = _relaxed(load_card("cifar10-jpeg"), {"train": 20, "test": 10000})
    real = load_real(card, tmp_path, "train")
    assert real.images.dtype == torch.float32 and real.card.display_name == "CIFAR-10 (JPEG copy)"
    with pytest.raises(DataNotFoundError, match="has 20 images, the card says 50000"):
        load_real(load_card("cifar10-jpeg"), tmp_path, "train")


def test_the_jpeg_copy_refuses_class_folders_in_another_order(tmp_path):
    renamed = ["plane" if c == "airplane" else c for c in CIFAR10_CLASSES]  # sorts after others
    _write_jpegs(tmp_path, "test", per_class=1, classes=renamed)
    with pytest.raises(DataNotFoundError, match="standard CIFAR-10 label order"):
        load_real(load_card("cifar10-jpeg"), tmp_path, "test")


def test_the_jpeg_copy_missing_says_it_cannot_be_downloaded(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_real(load_card("cifar10-jpeg"), tmp_path, "test", download=True)
    message = str(info.value)
    assert f"not found under {tmp_path / 'CIFAR-10-images'}" in message
    assert "--data-root DIR" in message and "cannot be downloaded" in message
    assert "--dataset cifar10 --download" in message


# --- real copies in ../shared/datasets ---------------------------------------------------------


def test_real_fashionmnist(data_root):
    card = load_card("fashionmnist")
    train, test = load_real(card, data_root, "train"), load_real(card, data_root, "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    assert abs(train.images.mean().item()) < 0.01  # (0.2861, 0.3530) standardise it
    assert abs(train.images.std().item() - 1.0) < 0.01


def test_real_cifar10_jpeg_copy(data_root):
    card = load_card("cifar10-jpeg")
    train, test = load_real(card, data_root, "train"), load_real(card, data_root, "test")
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert train.labels.bincount().tolist() == [5000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    mean, std = train.images.mean(dim=(0, 2, 3)), train.images.std(dim=(0, 2, 3))
    assert mean.abs().max() < 0.02
    # DC's CIFAR-10 std constants are below the pixel std (about 0.247, 0.243, 0.261)
    assert ((std > 1.15) & (std < 1.35)).all()
