"""Checkpoints of a reproduction, so that nothing already computed is lost.

One file per synthetic set, ``<out>/checkpoints/<run_id>/set<i>.pt``: one line
``distillbench-checkpoint sha256=<hex>`` followed by the ``torch.save`` bytes of a dict of tensors
and plain values (read back with ``weights_only=True``), whose SHA-256 the line records and
``load`` checks. The dict holds:

- ``config_hash``: the run config it belongs to;
- ``distill``: the method's resumable state (for DC: ``iteration`` = next outer iteration,
  ``images [K * ipc, C, H, W]``, ``optimizer`` state dict);
- ``synthetic``: once distillation has finished, the synthetic set (``SyntheticSet.state()``:
  ``images``, ``labels``, its optional tensors and, for GTN, the generator's weights);
- ``accuracies``: ``{model: [accuracy %, ...]}`` of the evaluation networks trained so far.

Writes go to a temporary file that is renamed over the old one, so a kill mid-write leaves the
previous checkpoint intact. Files without the hash line (plain ``torch.save`` zip files, from
before it was written) are read unchecked.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from bench.core.errors import CheckpointError
from bench.core.hashing import sha256_bytes, write_atomic

MAGIC = b"distillbench-checkpoint sha256="


class CheckpointStore:
    """Checkpoints of one run (see module docstring)."""

    def __init__(self, folder: Path, config_hash: str) -> None:
        self.folder = Path(folder)
        self.config_hash = config_hash

    def path(self, set_index: int) -> Path:
        return self.folder / f"set{set_index}.pt"

    def save(self, set_index: int, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"config_hash": self.config_hash, **state}, buffer)
        payload = buffer.getvalue()
        write_atomic(self.path(set_index), MAGIC + sha256_bytes(payload).encode() + b"\n" + payload)

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
            data = path.read_bytes()
            if data.startswith(MAGIC):
                line, _, data = data.partition(b"\n")
                if sha256_bytes(data) != line[len(MAGIC) :].decode(errors="replace"):
                    raise CheckpointError(
                        f"checkpoint {path} is corrupt (its SHA-256 differs from the one "
                        f"recorded when it was written); {fix}"
                    )
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except CheckpointError:
            raise
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
