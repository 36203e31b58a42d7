"""Which torch device a run uses."""

from __future__ import annotations

import torch

from bench.core.errors import UserError


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; raises ``UserError`` for unavailable CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device
