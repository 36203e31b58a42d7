"""Readers of synthetic sets made elsewhere (``bench.data.formats``), each on a file written in
exactly its producer's format, and the checks every set passes before training."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import DataNotFoundError, ShapeError
from bench.data.formats import (
    PreprocessingError,
    SetFileError,
    check_set,
    read_set_file,
)
from bench.data.real import load_card, normalise
from bench.data.synthetic import SyntheticSet

MNIST = load_card("mnist")
NORMALISE = {"kind": "normalise", "mean": list(MNIST.mean), "std": list(MNIST.std)}
ZCA = {"kind": "zca", "library": "kornia.enhance.ZCAWhitening", "eps": 0.1}


def _images(n: int = 10, seed: int = 0) -> torch.Tensor:
    """Normalised-looking images (negative background as MNIST's)."""
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) - 0.4


def write_dc_result(path: Path, sets: list[torch.Tensor], ipc: int = 1) -> None:
    """What VICO-UoE/DatasetCondensation@53f63a6 main.py saves after its experiments."""
    data_save, accs_all_exps = [], {"ConvNet": []}
    for exp, image_syn in enumerate(sets):
        label_syn = torch.tensor(
            np.array([np.ones(ipc) * i for i in range(10)]), dtype=torch.long
        ).view(-1)  # main.py: [0,0,0, 1,1,1, ..., 9,9,9]
        data_save.append([image_syn.detach().cpu(), label_syn.detach().cpu()])
        # evaluate_synset's accuracies: numpy float64 fractions, num_eval per experiment
        accs_all_exps["ConvNet"] += [np.float64(0.5 + 0.1 * exp), np.float64(0.6 + 0.1 * exp)]
        torch.save({"data": data_save, "accs_all_exps": accs_all_exps}, path)


def test_suite_file_round_trips_with_its_hash(tmp_path):
    synset = SyntheticSet(
        images=_images(),
        labels=torch.arange(10),
        method="gm",
        dataset="mnist",
        ipc=1,
        seed=3,
        config_hash="abc",
    )
    path = synset.save(tmp_path / "synthetic_set.safetensors", MNIST)
    (read,) = read_set_file(path, MNIST)
    assert read.format == "safetensors" and read.path == path
    assert read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(read.synset.images, synset.images) and read.synset.method == "gm"
    assert torch.equal(check_set(read, MNIST, 1, NORMALISE).images, synset.images)


def test_dc_result_file_gives_one_set_per_experiment_and_its_accuracies(tmp_path):
    path = tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt"
    sets = [_images(seed=1), _images(seed=2)]
    write_dc_result(path, sets)
    read = read_set_file(path, MNIST)
    assert [r.index for r in read] == [0, 1] and {r.format for r in read} == {"dc-result"}
    for r, images in zip(read, sets, strict=True):
        assert torch.equal(r.synset.images, images)
        assert r.synset.labels.tolist() == list(range(10))
        checked = check_set(r, MNIST, 1, NORMALISE)
        assert checked.labels.dtype == torch.int64
    assert read[0].recorded["ConvNet"] == pytest.approx(55.0)
    assert read[1].recorded["ConvNet"] == pytest.approx(65.0)


class Payload:
    """An object whose unpickling would leave a trace."""

    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "UNPICKLED",))


def test_a_file_needing_arbitrary_pickle_is_refused_and_never_unpickled(tmp_path):
    path = tmp_path / "res_evil.pt"
    torch.save({"data": [[_images(), torch.arange(10)]], "extra": Payload()}, path)
    with pytest.raises(SetFileError, match=r"arbitrary pickle.*Path\.touch|pathlib"):
        read_set_file(path, MNIST)
    assert not (Path(__file__).parent / "UNPICKLED").exists()


def _write_mtt(folder: Path, images: torch.Tensor, it: str = "best") -> Path:
    """distill.py (GeorgeCazenavette/mtt-distillation@50dccea): bare tensors on the CPU."""
    torch.save(images.cpu(), folder / f"images_{it}.pt")
    torch.save(torch.arange(10).cpu(), folder / f"labels_{it}.pt")
    return folder / f"images_{it}.pt"


def test_mtt_pair_needs_the_preprocessing_stated_and_keeps_the_learned_lr(tmp_path):
    path = _write_mtt(tmp_path, _images())
    with pytest.raises(PreprocessingError, match="--preprocessing zca"):
        read_set_file(path, MNIST)
    (read,) = read_set_file(path, MNIST, preprocessing="zca", learned_lr=0.0123)
    assert read.format == "mtt" and float(read.synset.extras["lr"]) == pytest.approx(0.0123)
    assert check_set(read, MNIST, 1, ZCA).preprocessing == ZCA
    with pytest.raises(PreprocessingError, match="recipe trains and tests on normalise"):
        check_set(read, MNIST, 1, NORMALISE)
    (plain,) = read_set_file(path, MNIST, preprocessing="normalise")
    assert "lr" not in plain.synset.extras
    with pytest.raises(PreprocessingError):
        check_set(plain, MNIST, 1, ZCA)


def test_mtt_files_other_than_an_images_file_with_its_labels_are_refused(tmp_path):
    torch.save(_images(), tmp_path / "images_zca_100.pt")
    with pytest.raises(SetFileError, match="pass images_100.pt"):
        read_set_file(tmp_path / "images_zca_100.pt", MNIST, preprocessing="zca")
    torch.save(_images(), tmp_path / "images_200.pt")
    with pytest.raises(SetFileError, match="no labels_200.pt"):
        read_set_file(tmp_path / "images_200.pt", MNIST, preprocessing="zca")
    _write_mtt(tmp_path, _images(), "300")
    with pytest.raises(SetFileError, match="pass MTT's images"):
        read_set_file(tmp_path / "labels_300.pt", MNIST)


def test_image_folder_is_decoded_and_normalised_with_the_card(tmp_path):
    from PIL import Image

    pixels = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    for c, name in enumerate(MNIST.classes):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels[c, 0].numpy(), mode="L").save(tmp_path / name / "0.png")
    (read,) = read_set_file(tmp_path, MNIST)
    assert read.format == "image-folder" and read.synset.labels.tolist() == list(range(10))
    assert torch.equal(read.synset.images, normalise(pixels, MNIST))
    check_set(read, MNIST, 1, NORMALISE)
    (tmp_path / MNIST.classes[0]).rename(tmp_path / "zero")
    with pytest.raises(DataNotFoundError, match="class folders"):
        read_set_file(tmp_path, MNIST)


def _read(tmp_path, images, labels):
    synset = SyntheticSet(images=images, labels=labels, method="x", dataset="mnist", ipc=1, seed=0)
    path = synset.save(tmp_path / "s.safetensors", MNIST)
    return read_set_file(path, MNIST)[0]


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (_images(10)[:, :, :14], torch.arange(10), r"shape \[10, 1, 14, 28\]"),
        (_images(10), torch.arange(10) + 5, r"labels must lie in \[0, 10\)"),
        (_images(10).index_fill(0, torch.tensor([3]), float("nan")), torch.arange(10), "NaN"),
        (_images(20), torch.arange(20) % 10, r"\[2, 2, .*\] images per class.*1 per class"),
        (torch.rand(10, 1, 28, 28), torch.arange(10), r"lie in \[0, 1\] like unnormalised"),
        (torch.rand(10, 1, 28, 28) * 255, torch.arange(10), "like 0..255 pixels"),
        (_images(10), torch.arange(10).float(), "soft labels"),
        ((torch.rand(10, 1, 28, 28) * 255).to(torch.uint8), torch.arange(10), "raw pixels"),
    ],
    ids=["shape", "labels", "nan", "ipc", "pixels01", "pixels255", "float-labels", "uint8"],
)
def test_bad_sets_get_a_one_line_error_naming_the_problem(tmp_path, images, labels, message):
    with pytest.raises(ShapeError, match=message) as info:
        check_set(_read(tmp_path, images, labels), MNIST, 1, NORMALISE)
    assert "\n" not in str(info.value)
