"""Distillation methods and the baselines they are compared with: one module per method, each
with a frozen config dataclass whose defaults are the paper's and one entry point with the
signature of ``methods.gm.distill`` that turns a real set into a ``SyntheticSet`` (coreset
baselines select real images; ``whole`` hands over the whole training split).

The registry maps names to import paths as strings, so listing recipes imports no torch code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bench.errors import ConfigError

# name -> (module, config class, entry point)
METHODS: dict[str, tuple[str, str, str]] = {
    "gm": ("methods.gm", "GMConfig", "distill"),
    "random": ("methods.coreset", "RandomConfig", "select_random"),
    "herding": ("methods.coreset", "HerdingConfig", "select_herding"),
    "whole": ("methods.whole", "WholeConfig", "whole_training_set"),
    "pc-gm": ("methods.pc_gm", "PCGMConfig", "distill"),
    "mtt": ("methods.mtt", "MTTConfig", "distill"),
    "gtn-gm": ("methods.gtn", "GTNGMConfig", "distill"),
    "gtn-ift": ("methods.gtn", "GTNIFTConfig", "distill"),
    "gtn-unrolled": ("methods.gtn", "GTNUnrolledConfig", "distill"),
}

# Methods that train on the whole real training split: their recipes have no ipc, and there is
# no synthetic set to checkpoint or log.
WHOLE_SET_METHODS = ("whole",)


@dataclass(frozen=True)
class Method:
    """A loaded method: its config class, its ``distill`` function and, where the method
    defines one in its module, ``prepare_real(train, test, config) -> (train, test)``: the view
    of the real data the method and its evaluation use (``pc-gm``: binarised MNIST; ``mtt``:
    ZCA whitening fitted on the training split)."""

    name: str
    config_class: type
    distill: Any
    prepare_real: Any = None


def load_method(name: str) -> Method:
    """Import a registered method.

    Raises:
        ConfigError: unknown method name.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    module_name, config_name, entry = METHODS[name]
    module = importlib.import_module(module_name)
    return Method(
        name,
        getattr(module, config_name),
        getattr(module, entry),
        getattr(module, "prepare_real", None),
    )
