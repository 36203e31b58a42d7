"""EuroSAT (RGB) through ``torchvision.datasets.EuroSAT``, on small JPEGs written in exactly
torchvision's layout (``<root>/eurosat/2750/<Class>/<Class>_<k>.jpg``, 64x64 RGB), and the
seed-42 90/10 split of the reference (julius-lautz/imp_dataset_distillation@4b8bf43)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from bench.core.errors import DataNotFoundError
from bench.data.real import _LOADERS, eurosat_split, load_card, load_real

CLASSES = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
]  # fmt: skip
PER_CLASS = 10
N = PER_CLASS * len(CLASSES)


def _write_eurosat(root, classes=CLASSES, per_class: int = PER_CLASS) -> list:
    """``<Class>_1.jpg .. <Class>_<per_class>.jpg`` (1-based, as the originals) of random pixels;
    returns the paths in torchvision's order (class folders sorted, then file names sorted as
    strings: ``_1, _10, _2, ...``)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for name in classes:
        folder = root / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for k in range(1, per_class + 1):
            pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{k}.jpg", quality=90)
            paths.append(folder / f"{name}_{k}.jpg")
    return sorted(paths, key=lambda p: (sorted(classes).index(p.parent.name), p.name))


def _decoded(path) -> torch.Tensor:
    """uint8 ``[3, 64, 64]`` of one file, decoded with PIL as torchvision's loader does."""
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def _small(card):
    """The card with the small set's split sizes (the real 24300/2700 cannot match)."""
    return dataclasses.replace(card, splits={"train": N - N // 10, "test": N // 10})


@pytest.fixture
def eurosat_root(tmp_path):
    return tmp_path, _write_eurosat(tmp_path)


# --- the card ---------------------------------------------------------------------------------


def test_card_classes_are_torchvisions_sorted_order_and_the_references():
    card = load_card("eurosat")
    assert list(card.classes) == CLASSES == sorted(CLASSES)
    assert card.display_name == "EuroSAT (RGB)" and card.loader == "torchvision.datasets.EuroSAT"
    assert card.folder == "eurosat" and card.channels == 3 and card.image_size == (64, 64)
    # helper_functions.get_full_dataset, the EuroSAT branch
    assert list(card.mean) == [0.344, 0.380, 0.407] and list(card.std) == [0.202, 0.136, 0.115]
    assert card.splits == {"train": 24300, "test": 2700} and card.md5 == {}
    assert card.variant_of is None and card.loader in _LOADERS


# --- the split --------------------------------------------------------------------------------


def test_split_of_the_real_card_is_24300_2700():
    card = load_card("eurosat")
    train, test = eurosat_split(27000)
    assert (len(train), len(test)) == (card.splits["train"], card.splits["test"])
    order = np.random.RandomState(42).permutation(27000)
    assert np.array_equal(np.concatenate([train, test]), order)  # permutation order, not sorted
    assert train.dtype == test.dtype == np.int64


def test_split_is_the_pandas_sample_of_the_reference():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"i": np.arange(N)})
    shuffled = frame.sample(frac=1, random_state=42)  # the reference's DATA_DF.sample
    train, test = eurosat_split(N)
    assert np.array_equal(train, shuffled[: -int(N * 0.1)]["i"].to_numpy())
    assert np.array_equal(test, shuffled[-int(N * 0.1) :]["i"].to_numpy())


def test_split_refuses_an_empty_part():
    with pytest.raises(ValueError, match="is 0 samples"):
        eurosat_split(9)  # int(0.9) == 0: the reference's [:-0] would give an empty train split


# --- the loader on torchvision's layout ---------------------------------------------------------


def test_loader_reads_the_split_in_permutation_order(eurosat_root):
    root, paths = eurosat_root
    assert paths[0].name == "AnnualCrop_1.jpg" and paths[1].name == "AnnualCrop_10.jpg"
    card, loader = _small(load_card("eurosat")), _LOADERS["torchvision.datasets.EuroSAT"]
    train_images, train_labels = loader(card, root, True, False)
    test_images, test_labels = loader(card, root, False, False)
    assert train_images.shape == (90, 3, 64, 64) and test_images.shape == (10, 3, 64, 64)
    assert train_images.dtype == test_images.dtype == torch.uint8
    assert train_labels.dtype == test_labels.dtype == torch.int64

    order = np.random.RandomState(42).permutation(N)
    for images, labels, indices in (
        (train_images, train_labels, order[:-10]),
        (test_images, test_labels, order[-10:]),
    ):
        for row, index in enumerate(indices):
            path = paths[index]
            assert labels[row].item() == CLASSES.index(path.parent.name)  # its folder's class
            assert torch.equal(images[row], _decoded(path))
    # disjoint, and together every image once
    train, test = eurosat_split(N)
    assert not set(train) & set(test) and sorted([*train, *test]) == list(range(N))


def test_load_real_normalises_with_the_cards_mean_and_std(eurosat_root):
    root, paths = eurosat_root
    card = _small(load_card("eurosat"))
    real = load_real(card, root, "test")
    assert real.images.shape == (10, 3, 64, 64) and real.images.dtype == torch.float32
    first = paths[np.random.RandomState(42).permutation(N)[-10]]  # test row 0
    mean, std = torch.tensor(card.mean).view(3, 1, 1), torch.tensor(card.std).view(3, 1, 1)
    expected = (_decoded(first).float() / 255.0 - mean) / std
    assert torch.allclose(real.images[0], expected, atol=1e-5)
    assert real.labels[0].item() == CLASSES.index(first.parent.name)


def test_a_copy_with_another_image_count_is_refused(eurosat_root):
    root, _ = eurosat_root
    with pytest.raises(DataNotFoundError, match="holds 100 images, .* says 27000"):
        load_real(load_card("eurosat"), root, "test")


def test_an_image_of_another_size_is_refused(eurosat_root):
    from PIL import Image

    root, paths = eurosat_root
    Image.new("RGB", (32, 32)).save(paths[np.random.RandomState(42).permutation(N)[-1]])
    with pytest.raises(DataNotFoundError, match=r"decodes to shape \[32, 32, 3\]"):
        load_real(_small(load_card("eurosat")), root, "test")


# --- errors -------------------------------------------------------------------------------------


def test_missing_folder_names_it_and_the_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_real(load_card("eurosat"), tmp_path, "train")
    message = str(info.value)
    assert f"not found under {tmp_path / 'eurosat'}" in message
    assert "--data-root DIR" in message and "--download" in message


def test_a_misnamed_class_folder_is_refused(eurosat_root):
    root, _ = eurosat_root
    folder = root / "eurosat" / "2750"
    (folder / "SeaLake").rename(folder / "Sea_Lake")
    with pytest.raises(DataNotFoundError) as info:
        load_real(_small(load_card("eurosat")), root, "train")
    message = str(info.value)
    assert str(folder) in message and "label order" in message
    assert "missing ['SeaLake']" in message and "unexpected ['Sea_Lake']" in message


def test_a_missing_class_folder_is_refused(eurosat_root):
    root, _ = eurosat_root
    shutil.rmtree(root / "eurosat" / "2750" / "Forest")
    with pytest.raises(DataNotFoundError, match=r"missing \['Forest'\], unexpected \[\]"):
        load_real(_small(load_card("eurosat")), root, "test")


def test_an_empty_class_folder_is_refused(eurosat_root):
    root, _ = eurosat_root
    for path in (root / "eurosat" / "2750" / "River").iterdir():
        path.unlink()
    with pytest.raises(DataNotFoundError, match="is incomplete .*River.* re-download"):
        load_real(_small(load_card("eurosat")), root, "test")
