"""Recipes: one declarative TOML file per published result, in ``reproduce/``.

A recipe names the method, dataset and ipc, overrides of the method's config and of the
evaluation protocol (the method's defaults are the paper's), the published result with its
source, the statistical test, the ``smoke`` and ``reduced`` budgets, and a ``version`` raised
whenever its protocol changes. A group recipe (``members = [...]``) runs several recipes.

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

import tomllib

from bench.core.config import apply_overrides, speed_only_fields
from bench.core.errors import ConfigError
from bench.core.paths import RECIPES_DIR
from bench.evaluation.stats import Published

BUDGETS = ("smoke", "reduced", "paper")

_RECIPE_KEYS = {
    "name",
    "version",
    "title",
    "method",
    "dataset",
    "ipc",
    "method_overrides",
    "eval",
    "published",
    "test",
    "budgets",
    "leaderboard",
    "leaderboard_row",
    "baselines",
    "variant",
}
_GROUP_KEYS = {"name", "version", "title", "members", "note"}
_PUBLISHED_KEYS = {"mean", "std", "n", "source", "note", "checked", "statistic"}
STATISTICS = ("final", "max_over_evaluations")
"""What a published number measures: ``final``, the accuracy of networks trained on the final
synthetic set; ``max_over_evaluations``, the best mean over the evaluations made during
distillation (MTT's, a selection on the test set)."""
_TEST_KEYS = {"margin", "alpha"}
_BUDGET_KEYS = {"description", "method", "eval"}


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


@dataclass(frozen=True)
class RecipeGroup:
    """Several recipes run one after another under one name (e.g. a row of a paper table)."""

    name: str
    version: int
    title: str
    members: tuple[str, ...]
    note: str
    path: Path


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def recipe_names() -> list[str]:
    """All recipe names (file stems in ``reproduce/``), sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def _parse(name: str, raw: dict, path: Path) -> Recipe | RecipeGroup:
    where = f"recipe {path.name}"
    if raw.get("name") != name:
        raise ConfigError(f"{where}: 'name' must equal the file name {name!r}")
    if "members" in raw:
        _check_keys(raw, _GROUP_KEYS, where)
        return RecipeGroup(
            name,
            int(raw["version"]),
            raw.get("title", name),
            tuple(raw["members"]),
            raw.get("note", ""),
            path,
        )
    _check_keys(raw, _RECIPE_KEYS, where)
    missing = {"version", "method", "dataset", "published", "test", "budgets"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")
    pub = raw["published"]
    _check_keys(pub, _PUBLISHED_KEYS, f"{where} [published]")
    _check_keys(raw["test"], _TEST_KEYS, f"{where} [test]")
    if "margin" not in raw["test"]:
        raise ConfigError(f"{where} [test]: missing the equivalence 'margin' (percentage points)")
    budgets = {}
    for budget_name, table in raw["budgets"].items():
        if budget_name not in BUDGETS or budget_name == "paper":
            raise ConfigError(
                f"{where}: budgets are 'smoke' and 'reduced' ('paper' is the "
                f"recipe itself), got [budgets.{budget_name}]"
            )
        _check_keys(table, _BUDGET_KEYS, f"{where} [budgets.{budget_name}]")
        budgets[budget_name] = Budget(
            table.get("description", ""), dict(table.get("method", {})), dict(table.get("eval", {}))
        )
    margin, alpha = float(raw["test"]["margin"]), float(raw["test"].get("alpha", 0.05))
    if margin <= 0 or not 0 < alpha < 1:
        raise ConfigError(
            f"{where} [test]: need margin > 0 and 0 < alpha < 1, got margin={margin}, alpha={alpha}"
        )
    for needed in ("smoke", "reduced"):
        if needed not in budgets:
            raise ConfigError(f"{where}: missing [budgets.{needed}]")
    if "mean" not in pub and not pub.get("note"):
        raise ConfigError(f"{where} [published]: no 'mean'; say in 'note' why it is missing")
    statistic = pub.get("statistic", "final")
    if statistic not in STATISTICS:
        raise ConfigError(
            f"{where} [published]: statistic must be one of {', '.join(STATISTICS)}, "
            f"got {statistic!r}"
        )
    return Recipe(
        name=name,
        version=int(raw["version"]),
        title=raw.get("title", name),
        method=raw["method"],
        dataset=raw["dataset"],
        ipc=int(raw["ipc"]) if "ipc" in raw else None,
        method_overrides=dict(raw.get("method_overrides", {})),
        eval=dict(raw.get("eval", {})),
        published=Published(
            float(pub["mean"]),
            float(pub["std"]) if "std" in pub else None,
            int(pub["n"]) if "n" in pub else None,
            pub["source"],
        )
        if "mean" in pub
        else None,
        published_note=pub.get("note", ""),
        published_checked=bool(pub.get("checked", False)),
        margin=margin,
        alpha=alpha,
        budgets=budgets,
        path=path,
        leaderboard=raw.get("leaderboard", raw["method"]),
        statistic=statistic,
        leaderboard_row=int(raw.get("leaderboard_row", 2)),
        baselines=tuple(raw.get("baselines", ())),
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


def load_recipe(name: str) -> Recipe | RecipeGroup:
    """Read ``reproduce/<name>.toml``.

    Raises:
        ConfigError: unknown recipe (the message names the nearest ones), unreadable TOML, or
            an unknown/missing key.
    """
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        close = difflib.get_close_matches(name, recipe_names(), n=3, cutoff=0.4)
        hint = f"; nearest: {', '.join(close)}" if close else ""
        raise ConfigError(f"unknown recipe {name!r}{hint} (see: python -m bench list)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path.name} is not valid TOML: {exc}") from None
    return _parse(name, raw, path)


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
        changed = [o for o in self.overrides if not self._speed_only(o.split("=", 1)[0])]
        if changed:
            reasons.append("overrides: " + ", ".join(changed))
        if self.dataset != self.recipe_dataset:
            reasons.append(f"data: {self.dataset}, not the original {self.recipe_dataset}")
        return reasons

    def config_hash(self) -> str:
        """Short hash of the resolved config (same config -> same hash)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


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
