"""Recipes: one declarative TOML file per published result, in ``reproduce/`` (or in a folder
added with ``--include-path``).

A recipe names the method, dataset and ipc, overrides of the method's config and of the
evaluation protocol (the method's defaults are the paper's), the published result with its
source, the statistical test, the ``smoke`` and ``reduced`` budgets, and a ``version`` raised
whenever its protocol changes; ``variant = "<reason>"`` marks a labelled variant of a
published cell (a fix beside the faithful recipe). A group recipe (``members = [...]``) runs
several recipes. The file schemas are the pydantic models of ``bench.spec.recipe_schema``.

Loading and listing recipes imports no torch code; ``resolve`` (used by ``validate`` and
``reproduce``) imports the method to check every override against its config dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import BUDGETS, apply_overrides, speed_only_fields, unhashed_defaults
from bench.core.errors import ConfigError
from bench.core.paths import RECIPES_DIR as RECIPES_DIR  # re-exported for older callers
from bench.core.paths import find_toml, recipe_dirs, toml_files
from bench.core.schema import parse, read_toml
from bench.evaluation.stats import Published, Quote
from bench.spec.recipe_schema import STATISTICS as STATISTICS  # re-exported
from bench.spec.recipe_schema import GroupModel, RecipeModel


@dataclass(frozen=True)
class Budget:
    """Overrides that shrink the paper protocol, with a one-line statement of what they do."""

    description: str
    method: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """One published result to reproduce (see module docstring)."""

    name: str
    version: int
    title: str
    method: str
    dataset: str
    ipc: int | None
    """images per class; ``None`` for the whole training set (``whole-*`` recipes)"""
    method_overrides: dict[str, Any]
    eval: dict[str, Any]
    published: Published | None
    """``None`` where the published number could not be found (``published_note`` says so)"""
    published_note: str
    published_checked: bool
    """whether every published figure was checked against the paper's own table"""
    margin: float
    alpha: float
    budgets: dict[str, Budget]
    path: Path
    leaderboard: str
    """the leaderboard table this recipe's row belongs to (e.g. ``dc-table1``)"""
    statistic: str = "final"
    """what the published number measures (``STATISTICS``); the verdict tests the same one"""
    leaderboard_row: int = 2
    """position among the rows of the same dataset and ipc, smaller first: baselines first as in
    DC's Table 1 (random 0, herding 1, distilled sets 2 and up, the whole set 5)"""
    baselines: tuple[str, ...] = ()
    """recipes measured under the same protocol this one is compared with (e.g. where nothing
    was published: ``random-eurosat-ipc1``, ``whole-eurosat``)"""
    variant: str | None = None
    """why this recipe is a labelled variant of a published cell (a fix or an improvement
    beside the faithful recipe); None: the faithful recipe"""
    distilled_since: int = 0
    """the oldest recipe version whose synthetic sets this version distils the same (kept sets
    from it on can be evaluated again: ``reproduce --distilled-from``); 0: ``version``"""


@dataclass(frozen=True)
class RecipeGroup:
    """Several recipes run one after another under one name (e.g. a row of a paper table)."""

    name: str
    version: int
    title: str
    members: tuple[str, ...]
    note: str
    path: Path


def recipe_names() -> list[str]:
    """All recipe names (file stems in ``reproduce/`` and in the ``--include-path`` folders),
    sorted."""
    return sorted(toml_files(recipe_dirs()))


def _published(model: Any) -> Published | None:
    """``Published`` from the ``[published]`` model; ``n`` is ``num_exp x num_eval`` where the
    design is given."""
    if model.mean is None:
        return None
    shared = {f.name for f in dataclasses.fields(Published)}
    values = {key: value for key, value in model if key in shared}
    values["alternatives"] = tuple(Quote(q.mean, q.std, q.source) for q in model.alternatives)
    if model.num_exp and model.num_eval:
        values["n"] = model.num_exp * model.num_eval
    return Published(**values)


def _parse(name: str, raw: dict, path: Path) -> Recipe | RecipeGroup:
    where = f"recipe {path.name}"
    if "members" in raw:
        group = parse(GroupModel, raw, where, {"stem": name})
        return RecipeGroup(
            name, group.version, group.title or name, tuple(group.members), group.note, path
        )
    model = parse(RecipeModel, raw, where, {"stem": name})
    pub = model.published
    return Recipe(
        name=name,
        version=model.version,
        distilled_since=model.distilled_since or model.version,
        title=model.title or name,
        method=model.method,
        dataset=model.dataset,
        ipc=model.ipc,
        method_overrides=dict(model.method_overrides),
        eval=dict(model.eval),
        published=_published(pub),
        published_note=pub.note,
        published_checked=pub.checked,
        margin=model.test.margin,
        alpha=model.test.alpha,
        budgets={
            budget: Budget(table.description, dict(table.method), dict(table.eval))
            for budget, table in model.budgets
        },
        path=path,
        leaderboard=model.leaderboard or model.method,
        statistic=pub.statistic,
        leaderboard_row=model.leaderboard_row,
        baselines=tuple(model.baselines),
        variant=model.variant,
    )


def ipc_label(ipc: int | None) -> str:
    """``"10"`` for 10 images per class, ``"whole"`` for the whole training set."""
    return "whole" if ipc is None else str(ipc)


def format_source(recipe: Recipe) -> str:
    """Where the published number comes from, or the first sentence of the note that says why
    none was found."""
    return recipe.published.source if recipe.published else recipe.published_note.split(". ")[0]


def format_published(recipe: Recipe) -> str:
    """``91.7 ± 0.5 (n=100)``, marked ``[unchecked]`` when not read from the paper's own table,
    or ``not found`` (the recipe's note says why)."""
    pub = recipe.published
    if pub is None:
        return "not found"
    std = f" ± {pub.std}" if pub.std is not None else " (no std)"
    n = f" (n={pub.n})" if pub.n else ""
    return f"{pub.mean}{std}{n}" + ("" if recipe.published_checked else " [unchecked]")


def variant_label(recipe: Recipe, width: int = 40) -> str:
    """``faithful``, or ``variant: <reason>`` shortened to about ``width`` characters."""
    if recipe.variant is None:
        return "faithful"
    reason = recipe.variant
    if len(reason) > width:
        reason = reason[: width - 1].rstrip() + "…"
    return f"variant: {reason}"


def load_recipe(name: str) -> Recipe | RecipeGroup:
    """Read ``<name>.toml`` from ``reproduce/`` or an ``--include-path`` folder.

    Raises:
        ConfigError: unknown recipe (the message names the nearest ones), a name defined in two
            folders, or unreadable TOML.
        SchemaError: the file does not fit ``RecipeModel``/``GroupModel``; one line per problem
            in ``problems`` (unknown/missing key, wrong type, a rule across keys).
    """
    path = find_toml(name, recipe_dirs(), "recipe")
    if path is None:
        close = difflib.get_close_matches(name, recipe_names(), n=3, cutoff=0.4)
        hint = f"; nearest: {', '.join(close)}" if close else ""
        raise ConfigError(f"unknown recipe {name!r}{hint} (see: python -m bench list)")
    return _parse(name, read_toml(path, "recipe"), path)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result, resolved from recipe, budget and ``--set``.

    ``method_config`` is the method's frozen config dataclass; ``eval`` an ``EvalProtocol``.
    """

    recipe: str
    recipe_version: int
    method: str
    dataset: str
    """the dataset card used: the recipe's, or a copy of it chosen with ``--dataset``"""
    ipc: int | None
    budget: str
    seed: int
    method_config: Any
    eval: Any
    overrides: tuple[str, ...]
    recipe_dataset: str
    """the dataset the published result was measured on"""

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "recipe_version": self.recipe_version,
            "method": self.method,
            "dataset": self.dataset,
            "ipc": self.ipc,
            "budget": self.budget,
            "seed": self.seed,
            "method_config": dataclasses.asdict(self.method_config),
            "eval": dataclasses.asdict(self.eval),
            "overrides": list(self.overrides),
            "recipe_dataset": self.recipe_dataset,
        }

    def protocol_overrides(self) -> list[str]:
        """The ``--set`` overrides that can change results (speed-only ones left out)."""
        return [o for o in self.overrides if not self._speed_only(o.split("=", 1)[0])]

    def _speed_only(self, key: str) -> bool:
        """Whether ``section.field`` is marked ``metadata={"speed_only": True}``: it changes how
        fast a result is computed, not the result (e.g. ``eval.networks_per_batch``)."""
        section, name = key.split(".", 1)
        return name in speed_only_fields(self.method_config if section == "method" else self.eval)

    def off_protocol(self) -> list[str]:
        """Why this run does not follow the paper's protocol (empty: it does). Such a run is
        never compared with the published number."""
        reasons = []
        if self.budget != "paper":
            reasons.append(f"budget={self.budget}")
        changed = self.protocol_overrides()
        if changed:
            reasons.append("overrides: " + ", ".join(changed))
        if self.dataset != self.recipe_dataset:
            reasons.append(f"data: {self.dataset}, not the original {self.recipe_dataset}")
        return reasons

    def config_hash(self) -> str:
        """Short hash of the resolved config (same config -> same hash)."""
        return _short_hash(_hashed(self.as_dict()))

    def protocol_hash(self) -> str:
        """``protocol_hash`` of this config: what makes two runs' set ``i`` the same set."""
        return protocol_hash(self.as_dict())


def _hashed(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config without the ``HASHED_IF_CHANGED`` fields that are at their defaults (or
    absent: recorded before the field existed)."""
    from bench.evaluation.evaluate import EvalProtocol
    from bench.spec.method import load_method

    kept = dict(config)
    for section, cls in (
        ("method_config", load_method(config["method"]).config_class),
        ("eval", EvalProtocol),
    ):
        defaults = unhashed_defaults(cls)
        kept[section] = {
            k: v for k, v in config[section].items() if k not in defaults or v != defaults[k]
        }
    return kept


def _short_hash(content: dict[str, Any]) -> str:
    blob = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def protocol_hash(config: dict[str, Any]) -> str:
    """Short hash of a resolved config (``RunConfig.as_dict()``, e.g. a run's ``config.json``)
    without what cannot change its synthetic sets' results: the base seed (a design's other
    key), speed-only fields (``SPEED_ONLY``) and the ``--set`` overrides of them. Runs with the
    same protocol hash and seed compute the same design, so the ledger pools their shards.

    Raises:
        ConfigError: the config names a method that is not registered.
    """
    from bench.evaluation.evaluate import EvalProtocol
    from bench.spec.method import load_method

    speed = {
        "method_config": speed_only_fields(load_method(config["method"]).config_class),
        "eval": speed_only_fields(EvalProtocol),
    }
    section_of = {"method": "method_config", "eval": "eval"}
    kept = {k: v for k, v in _hashed(config).items() if k != "seed"}
    for section, names in speed.items():
        kept[section] = {k: v for k, v in kept[section].items() if k not in names}
    kept["overrides"] = [
        o
        for o in config["overrides"]
        if o.split(".", 1)[1].split("=", 1)[0] not in speed[section_of[o.split(".", 1)[0]]]
    ]
    return _short_hash(kept)


def with_long_run_speed(config: RunConfig, long_run_speed: dict[str, Any]) -> RunConfig:
    """``config`` with the speed-only settings that pay off in a paper-protocol run on a CPU:
    the method's ``long_run_speed`` fields (e.g. DC's compiled matching) and the compiled test
    pass (``eval.compile_test``), except where ``--set`` chose otherwise. Their results are the
    same up to floating-point summation order (``python -m bench speed <method>`` measures the
    difference), so the run stays on the paper's protocol.

    Raises:
        ConfigError: a ``long_run_speed`` field that is not marked speed-only.
    """
    chosen = {o.split("=", 1)[0] for o in config.overrides}
    fields = speed_only_fields(config.method_config)
    bad = sorted(set(long_run_speed) - fields)
    if bad:
        raise ConfigError(f"method {config.method}: long_run_speed {bad} are not speed-only fields")
    method = {k: v for k, v in long_run_speed.items() if f"method.{k}" not in chosen}
    evaluation = {} if "eval.compile_test" in chosen else {"compile_test": True}
    return dataclasses.replace(
        config,
        method_config=dataclasses.replace(config.method_config, **method),
        eval=dataclasses.replace(config.eval, **evaluation),
    )


def resolve(
    recipe: Recipe,
    budget: str,
    seed: int,
    set_options: dict[str, dict[str, str]] | None = None,
    dataset: str | None = None,
    eval_models: tuple[str, ...] = (),
) -> RunConfig:
    """Resolve paper defaults <- recipe overrides <- budget <- ``--set`` into a ``RunConfig``.

    Args:
        dataset: another copy of the recipe's dataset (a card with ``variant_of`` equal to the
            recipe's dataset, e.g. ``cifar10-jpeg``); its runs are never compared with the paper.
        eval_models: architectures evaluated besides the recipe's (``--eval-models``, DC Table
            2); the recipe's own model stays first, so its results and seeds are unchanged.

    Raises:
        ConfigError: unknown budget, unknown ``--set`` section, an unknown/ill-typed key, or a
            dataset that is not a copy of the recipe's.
    """
    from bench.data.real import load_card
    from bench.evaluation.evaluate import EvalProtocol
    from bench.spec.method import Kind, load_method

    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    set_options = set_options or {}
    unknown = set(set_options) - {"method", "eval"}
    if unknown:
        raise ConfigError(f"--set sections are 'method' and 'eval', got {sorted(unknown)}")
    method = load_method(recipe.method)
    if (recipe.ipc is None) != (method.kind is Kind.WHOLE):
        raise ConfigError(
            f"recipe {recipe.path.name}: 'ipc' is required, except for methods that train on the "
            f"whole training set (kind 'whole'), which must not set it"
        )
    method_config = apply_overrides(
        method.config_class(), recipe.method_overrides, f"recipe {recipe.name} [method_overrides]"
    )
    eval_protocol = apply_overrides(EvalProtocol(), recipe.eval, f"recipe {recipe.name} [eval]")
    if budget != "paper":
        b = recipe.budgets[budget]
        method_config = apply_overrides(
            method_config, b.method, f"recipe {recipe.name} [budgets.{budget}.method]"
        )
        eval_protocol = apply_overrides(
            eval_protocol, b.eval, f"recipe {recipe.name} [budgets.{budget}.eval]"
        )
    method_config = apply_overrides(method_config, set_options.get("method", {}), "--set method.*")
    eval_protocol = apply_overrides(eval_protocol, set_options.get("eval", {}), "--set eval.*")
    extra = tuple(m for m in dict.fromkeys(eval_models) if m not in eval_protocol.models)
    if extra:
        eval_protocol = dataclasses.replace(eval_protocol, models=eval_protocol.models + extra)
    if dataset is not None and dataset != recipe.dataset:
        if load_card(dataset).variant_of != recipe.dataset:
            raise ConfigError(
                f"--dataset {dataset}: not a copy of {recipe.name}'s dataset {recipe.dataset!r}"
            )
    overrides = tuple(
        f"{section}.{key}={value}"
        for section, kv in sorted(set_options.items())
        for key, value in sorted(kv.items())
    )
    return RunConfig(
        recipe.name,
        recipe.version,
        recipe.method,
        dataset or recipe.dataset,
        recipe.ipc,
        budget,
        seed,
        method_config,
        eval_protocol,
        overrides,
        recipe.dataset,
    )
