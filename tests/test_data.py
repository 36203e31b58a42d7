"""Real MNIST through torchvision, normalised as the dataset card says."""

import torch

from bench.data.real import denormalise


def test_mnist_splits_shapes_and_normalisation(mnist):
    train, test = mnist
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.float32
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.dtype == torch.int64
    assert set(train.labels.unique().tolist()) == set(range(10))
    # the card's mean/std (0.1307, 0.3081) standardise the training split
    assert abs(train.images.mean().item()) < 0.01
    assert abs(train.images.std().item() - 1.0) < 0.01
    pixels = denormalise(train.images[:100], train.card)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.99


def test_a_corrupt_file_is_refused_by_its_checksum(data_root, tmp_path):
    import pytest

    from bench.core.errors import DataNotFoundError
    from bench.data.real import load_card, load_real

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root / "MNIST" / "raw").iterdir():
        (raw / source.name).symlink_to(source)
    labels = raw / "t10k-labels-idx1-ubyte"
    content = bytearray(labels.read_bytes())
    content[-1] = (content[-1] + 1) % 10  # one wrong label
    labels.unlink()
    labels.write_bytes(bytes(content))
    # the card's md5 keys are paths under <data-root>/MNIST
    assert "raw/t10k-labels-idx1-ubyte" in load_card("mnist").md5
    with pytest.raises(DataNotFoundError, match="MNIST/raw/t10k-labels-idx1-ubyte has md5 .* re-d"):
        load_real(load_card("mnist"), tmp_path, "test")
