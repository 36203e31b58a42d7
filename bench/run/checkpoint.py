"""Checkpoints of a reproduction, so that nothing already computed is lost.

One file per synthetic set, ``<out>/checkpoints/<run_id>/set<i>.pt`` (``torch.save`` of a dict
of tensors and plain values, read back with ``weights_only=True``):

- ``config_hash``: the run config it belongs to;
- ``distill``: the method's resumable state (for DC: ``iteration`` = next outer iteration,
  ``images [K * ipc, C, H, W]``, ``optimizer`` state dict);
- ``synthetic``: once distillation has finished, the synthetic set (``SyntheticSet.state()``:
  ``images``, ``labels``, its optional tensors and, for GTN, the generator's weights);
- ``accuracies``: ``{model: [accuracy %, ...]}`` of the evaluation networks trained so far.

Writes go to a temporary file that is renamed over the old one, so a kill mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bench.core.errors import CheckpointError


class CheckpointStore:
    """Checkpoints of one run (see module docstring)."""

    def __init__(self, folder: Path, config_hash: str) -> None:
        self.folder = Path(folder)
        self.config_hash = config_hash

    def path(self, set_index: int) -> Path:
        return self.folder / f"set{set_index}.pt"

    def save(self, set_index: int, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(set_index)
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"config_hash": self.config_hash, **state}, tmp)
        os.replace(tmp, path)

    def load(self, set_index: int, image_shape: tuple[int, ...]) -> dict[str, Any] | None:
        """The saved state of synthetic set ``set_index``, or None if there is none.

        Raises:
            CheckpointError: unreadable file, another config, or images of the wrong shape;
                the message says which file and how to recover.
        """
        path = self.path(set_index)
        if not path.exists():
            return None
        fix = f"delete {path} to recompute synthetic set {set_index} from scratch"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for truncated/garbled files
            raise CheckpointError(
                f"checkpoint {path} is corrupt ({type(exc).__name__}); {fix}"
            ) from None
        if not isinstance(state, dict) or "config_hash" not in state:
            raise CheckpointError(f"checkpoint {path} is not a DistillBench checkpoint; {fix}")
        if state["config_hash"] != self.config_hash:
            raise CheckpointError(
                f"checkpoint {path} belongs to config {state['config_hash']}, this run is "
                f"{self.config_hash}; resume with the same recipe, budget, seed and --set options"
            )
        for part in ("distill", "synthetic"):
            images = state.get(part, {}).get("images")
            if images is not None and tuple(images.shape) != tuple(image_shape):
                raise CheckpointError(
                    f"checkpoint {path} holds images of shape {list(images.shape)}, "
                    f"this run needs {list(image_shape)}; {fix}"
                )
        return state
