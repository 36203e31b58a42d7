"""The method contract: what the runner may ask of a distillation method or baseline, and the
registry that finds methods by name.

A method is one module that defines its frozen config dataclass (defaults = the paper's), its
``distill`` entry point and one ``Method`` object describing them::

    METHOD = Method(name="gm", config_class=GMConfig, kind=Kind.DISTILLED, distill=distill)

The registry maps names to ``"module:attribute"`` strings and imports a method only when it is
used, so listing recipes imports no torch model code. Every method, built-in or not, registers
through the ``distillbench.methods`` entry-point group (``name = "package.module:METHOD"``; the
built-ins in this project's pyproject.toml), so nothing here names a method; a name registered
twice is an error naming both. Extra subcommands a method brings (MTT's ``experts``) are
registered the same way in the ``distillbench.commands`` group, as ``"module:function"`` taking
the argv after the command.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from bench.data.real import DatasetCard, RealSet
    from bench.data.synthetic import SyntheticSet

METHOD_GROUP = "distillbench.methods"
COMMAND_GROUP = "distillbench.commands"


class Kind(enum.Enum):
    """What a method hands to the evaluation."""

    DISTILLED = "distilled"
    """learns a synthetic set in an outer loop: its config has ``iterations``; the runner shows
    progress, checkpoints every few iterations and resumes"""
    CORESET = "coreset"
    """selects ``ipc`` real images per class in one step (random, herding)"""
    WHOLE = "whole"
    """hands over the whole real training split; its recipes have no ``ipc``"""


class AfterIteration(Protocol):
    """``after_iteration(it, metrics, state)``: called by a distilled method after outer
    iteration ``it`` (0-based) with its metrics (``{"distill/loss": float, ...}``) and a
    callable returning the resumable state (a dict of tensors and numbers with
    ``"iteration": it + 1``). The runner logs, shows progress and checkpoints with it."""

    def __call__(
        self, it: int, metrics: dict[str, float], state: Callable[[], dict[str, Any]]
    ) -> None: ...


class EvaluateDuring(Protocol):
    """``evaluate(it, synset)``: the shared evaluation of an intermediate synthetic set, which
    a method may call while it distils (MTT's ``eval_every``); logged as
    ``distill/eval/<model>/acc`` at step ``it`` and checkpointed by the runner."""

    def __call__(self, it: int, synset: SyntheticSet) -> None: ...


class Distill(Protocol):
    """The entry point of every method.

    Args:
        real: the real training split (``RealSet``: images ``[N, C, H, W]`` float32 in the
            method's preprocessing, labels ``[N]`` int64).
        ipc: images per class; ``None`` for ``Kind.WHOLE``.
        config: the method's config dataclass instance.
        seed: the synthetic set's seed; every random draw is derived from it.
        device: where to compute.
        resume: a state returned by ``after_iteration``'s ``state()``: continue from there
            (``Kind.DISTILLED`` only; others ignore it).
        after_iteration: see ``AfterIteration`` (``Kind.DISTILLED`` only).
        evaluate: see ``EvaluateDuring``; a method may ignore it.

    Returns:
        The ``SyntheticSet`` (images ``[K * ipc, C, H, W]``, labels ``[K * ipc]``).

    Raises:
        DivergedError: a loss became NaN/inf (see ``bench.spec.outer_loop.OuterLoop.check_finite``).
        ConfigError: the config cannot run on this data or ipc.
    """

    def __call__(
        self,
        real: RealSet,
        ipc: int | None,
        config: Any,
        seed: int,
        device: torch.device,
        *,
        resume: dict[str, Any] | None = None,
        after_iteration: AfterIteration | None = None,
        evaluate: EvaluateDuring | None = None,
    ) -> SyntheticSet: ...


PrepareReal = Callable[["RealSet", "RealSet", Any], "tuple[RealSet, RealSet]"]
"""``prepare_real(train, test, config) -> (train, test)``: the view of the real data that the
method and its evaluation both use (point clouds: binarised MNIST; MTT: ZCA whitening fitted on
the training split)"""

Artifacts = Callable[["SyntheticSet", "DatasetCard", Path], "list[Path]"]
"""``artifacts(synset, card, folder) -> paths``: files and pictures the method adds beside the
synthetic set and its grid (point clouds: a render of the clouds; GTN: the generator's weights);
the runner logs each returned path"""

StreamFromSet = Callable[["SyntheticSet", Any, "torch.device"], Callable]
"""``stream(synset, config, device) -> SyntheticStream``: rebuild from a set the generator that
sampled it (its extras) and return the callable drawing one fresh training batch per epoch
(``bench.evaluation.evaluate.SyntheticStream``), for recipes with ``eval.stream = true`` (GTN:
the reference evaluates its generators this way)"""
CheckData = Callable[["RealSet", "int | None", Any], None]
"""``check_data(train, ipc, config) -> None``: checks a config against the prepared training
split before any run is created (DC: its real batch against the smallest class); raises a
``bench.core.errors.UserError`` naming the field and the largest value the data allows"""
Preflight = Callable[[Any], None]
"""``preflight(config) -> None``: checks, before any data is loaded or run created, what this
config needs from the machine beyond the suite's requirements (an optional dependency such as
MinkowskiEngine); raises a ``bench.core.errors.UserError`` (one line naming what is missing and
the fix)"""


@dataclass(frozen=True)
class Method:
    """A method as the runner sees it.

    Attributes:
        name: the registry name recipes use (``"gm"``).
        config_class: its frozen config dataclass; recipe ``[method]`` keys and
            ``--set method.*`` override its fields, unknown keys are errors.
        kind: ``Kind``; for ``Kind.DISTILLED`` the config has an ``iterations`` field.
        distill: the entry point (``Distill``).
        prepare_real: optional ``PrepareReal``.
        artifacts: optional ``Artifacts``.
        stream: optional ``StreamFromSet``; needed by ``eval.stream``.
        preflight: optional ``Preflight``, called by the runner before it creates any run.
        check_data: optional ``CheckData``, called once the data is loaded, before any run.
        speed_benchmark: optional ``"module:function"``, ``function(argv) -> int``, behind
            ``python -m bench speed <name>`` (a string: imported only when asked for).
        description: one line for ``python -m bench methods``.
        long_run_speed: speed-only config fields (marked ``SPEED_ONLY``) and the values that a
            paper-protocol run on a CPU takes by default because they pay off over a long run
            (DC: ``{"compile": True}``); ``--set`` overrides them
            (``bench.spec.recipes.with_long_run_speed``).
    """

    name: str
    config_class: type
    kind: Kind
    distill: Distill
    prepare_real: PrepareReal | None = None
    artifacts: Artifacts | None = None
    stream: StreamFromSet | None = None
    preflight: Preflight | None = None
    check_data: CheckData | None = None
    speed_benchmark: str | None = None
    description: str = ""
    long_run_speed: dict[str, Any] = field(default_factory=dict)


def _resolve(target: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _registry(group: str) -> dict[str, str]:
    """Name -> ``"module:attribute"`` of every entry point in ``group`` (the suite's own
    built-ins are entry points of the ``distillbench`` distribution, pyproject.toml). Imports
    nothing.

    Raises:
        ConfigError: one name registered to two different targets (two packages, or a plugin
            taking a built-in's name), naming both and their packages.
    """
    found: dict[str, tuple[str, str]] = {}
    for point in entry_points(group=group):
        package = point.dist.name if point.dist is not None else "an unknown package"
        if point.name in found and found[point.name][0] != point.value:
            first, first_package = found[point.name]
            raise ConfigError(
                f"{point.name!r} is registered twice in {group}: as {first} by {first_package} "
                f"and as {point.value} by {package}; uninstall one or rename its entry point"
            )
        found.setdefault(point.name, (point.value, package))
    return {name: target for name, (target, _) in found.items()}


def registered_methods() -> dict[str, str]:
    """Every method name -> its ``"module:attribute"``: the entry points of group
    ``distillbench.methods``, the built-in ones (this project's pyproject.toml) and those of
    installed plugins. Imports nothing.

    Raises:
        ConfigError: a name registered twice (``_registry``).
    """
    return _registry(METHOD_GROUP)


def registered_commands() -> dict[str, str]:
    """Extra subcommand name -> ``"module:function"`` (entry-point group
    ``distillbench.commands``, built-in and plugins'). Imports nothing."""
    return _registry(COMMAND_GROUP)


def load_method(name: str) -> Method:
    """Import a registered method.

    Raises:
        ConfigError: unknown name, or its target is not a ``Method`` or cannot be imported.
    """
    known = registered_methods()
    if not known:
        raise ConfigError(
            "no method is registered: install the suite (pip install -e .), whose entry points "
            "register the built-in methods"
        )
    if name not in known:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(known))}")
    try:
        method = _resolve(known[name])
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"method {name!r} is registered as {known[name]!r}, which cannot be imported ({exc})"
        ) from None
    if not isinstance(method, Method) or method.name != name:
        raise ConfigError(
            f"method {name!r}: {known[name]} is not a bench.spec.method.Method named {name!r}"
        )
    return method


def resolve_target(target: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute (commands, speed benchmarks)."""
    return _resolve(target)
