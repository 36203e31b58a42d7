"""The gradient distances of DC (paper Eq. 11; reference utils.match_loss)."""

import pytest
import torch

from methods.gm import gradient_distance


def _grads(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(128, 1, 3, 3), (128,), (128, 128, 3, 3), (10, 2048), (10,)]
    return [torch.randn(s, generator=g) for s in shapes]


def test_layerwise_is_zero_for_equal_gradients():
    g = _grads(0)
    assert gradient_distance(g, g, "layerwise").item() == pytest.approx(0.0, abs=1e-4)


def test_layerwise_is_invariant_to_scaling_one_side():
    a, b = _grads(0), _grads(1)
    base = gradient_distance(a, b, "layerwise")
    scaled = gradient_distance([3.7 * t for t in a], b, "layerwise")
    assert base.item() > 1.0
    assert scaled.item() == pytest.approx(base.item(), rel=1e-5)


def test_layerwise_sums_one_minus_cosine_per_output_unit_and_skips_biases():
    a = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([5.0, -5.0])]
    b = [torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([-5.0, 5.0])]
    # row 0 orthogonal (1 - 0), row 1 parallel (1 - 1); the 1-D bias is skipped
    assert gradient_distance(a, b, "layerwise").item() == pytest.approx(1.0, abs=1e-5)


def test_mse_and_cos_on_concatenated_gradients():
    a = [torch.tensor([[3.0, 0.0]]), torch.tensor([0.0])]
    b = [torch.tensor([[0.0, 4.0]]), torch.tensor([0.0])]
    assert gradient_distance(a, b, "mse").item() == pytest.approx(25.0)
    assert gradient_distance(a, b, "cos").item() == pytest.approx(1.0, abs=1e-6)
    assert gradient_distance(a, a, "cos").item() == pytest.approx(0.0, abs=1e-6)


def test_mismatched_gradients_are_rejected():
    a, b = _grads(0), _grads(1)
    with pytest.raises(ValueError, match="same shapes"):
        gradient_distance(a[:-1], b)
    with pytest.raises(ValueError, match="unknown gradient distance"):
        gradient_distance(a, b, "l1")
