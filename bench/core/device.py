"""Which torch device a run uses."""

from __future__ import annotations

import torch

from bench.core.errors import EnvironmentFault


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given.

    Raises:
        EnvironmentFault: a name torch does not know (``tpu``), a device type this suite does
            not run on, or a CUDA device that is not there.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EnvironmentFault(
            f"--device {name}: not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise EnvironmentFault(
            f"--device {name}: the suite runs on cpu or cuda only; use auto, cpu, cuda or cuda:N"
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EnvironmentFault(
                f"--device {name}: no CUDA device is available here; use --device cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise EnvironmentFault(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    return device
