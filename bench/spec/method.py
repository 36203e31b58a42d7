"""The method contract: what the runner may ask of a distillation method or baseline, and the
registry that finds methods by name.

A method is one module that defines its frozen config dataclass (defaults = the paper's), its
``distill`` entry point and one ``Method`` object describing them::

    METHOD = Method(name="gm", config_class=GMConfig, kind=Kind.DISTILLED, distill=distill)

The registry maps names to ``"module:attribute"`` strings and imports a method only when it is
used, so listing recipes imports no torch model code. Built-in methods are listed in
``BUILTIN``; packages outside this repository register theirs through the
``distillbench.methods`` entry-point group (``name = "package.module:METHOD"``). Extra
subcommands a method brings (MTT's ``experts``) are registered the same way in ``COMMANDS`` /
the ``distillbench.commands`` group, as ``"module:function"`` taking the argv after the command.
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

BUILTIN: dict[str, str] = {
    "gm": "methods.gm:METHOD",
    "random": "methods.coreset:RANDOM",
    "herding": "methods.coreset:HERDING",
    "whole": "methods.whole:METHOD",
    "pc-gm": "methods.pc_gm:METHOD",
    "mtt": "methods.mtt:METHOD",
    "gtn-gm": "methods.gtn:GTN_GM",
    "gtn-ift": "methods.gtn:GTN_IFT",
    "gtn-unrolled": "methods.gtn:GTN_UNROLLED",
}
"""name -> ``"module:attribute"`` of its ``Method``"""

COMMANDS: dict[str, str] = {"experts": "methods.experts_command:main"}
"""extra ``python -m bench`` subcommand -> ``"module:function"``, ``function(argv) -> int``"""


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
        DivergedError: a loss became NaN/inf (see ``bench.spec.divergence.check_finite``).
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
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def registered_methods() -> dict[str, str]:
    """Every method name -> its ``"module:attribute"``: the built-in ones and those of
    installed packages (entry-point group ``distillbench.methods``). Imports nothing."""
    found = dict(BUILTIN)
    for point in entry_points(group=METHOD_GROUP):
        found.setdefault(point.name, point.value)
    return found


def registered_commands() -> dict[str, str]:
    """Extra subcommand name -> ``"module:function"`` (built-in and entry-point group
    ``distillbench.commands``). Imports nothing."""
    found = dict(COMMANDS)
    for point in entry_points(group=COMMAND_GROUP):
        found.setdefault(point.name, point.value)
    return found


def load_method(name: str) -> Method:
    """Import a registered method.

    Raises:
        ConfigError: unknown name, or its target is not a ``Method`` or cannot be imported.
    """
    known = registered_methods()
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
