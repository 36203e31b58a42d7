"""The schema of recipe files (``reproduce/<name>.toml``) and group files (``members = [...]``).

Pydantic models, strict (no coercion) and closed (unknown keys refused); ``bench.spec.recipes``
converts them into the ``Recipe`` and ``RecipeGroup`` dataclasses the rest of the suite uses.
Rules across keys are validators here, so that ``python -m bench validate`` reports all of a
file's problems at once. ``python -m bench schema`` writes their JSON schemas for editors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bench.core.errors import ConfigError
from bench.core.hashing import write_atomic
from bench.core.paths import CHECKOUT
from bench.core.schema import TomlModel, json_schema, name_is_file_name, rule

STATISTICS = ("final", "max_over_evaluations", "stream")
"""What a published number measures: ``final``, the accuracy of networks trained on the final
synthetic set; ``max_over_evaluations``, the best mean over the evaluations made during
distillation (MTT's, a selection on the test set); ``stream``, the accuracy of networks trained
on a fresh generator batch every epoch (GTN's, with ``eval.stream = true``)."""


class QuoteModel(TomlModel):
    """``[[published.alternatives]]``: another quote of the same cell (other digits printed by
    a secondary source); the verdict reports whether it would change."""

    mean: float = Field(description="the quoted mean accuracy in percent")
    std: float | None = Field(None, ge=0, description="the quoted std in percentage points")
    source: str = Field(description="where this quote is printed")


class PublishedModel(TomlModel):
    """``[published]``: the published result and where it is from. To add a key, add a field
    here (and to ``bench.evaluation.stats.Published`` if the verdict needs it): fields that
    ``Published`` shares are copied by name."""

    mean: float | None = Field(None, description="published mean accuracy in percent")
    std: float | None = Field(None, ge=0, description="published std in percentage points")
    n: int | None = Field(None, ge=1, description="how many models the mean and std are over")
    source: str | None = Field(
        None, description='where the number is published, e.g. "DC, ICLR 2021, Table 1"'
    )
    note: str = Field("", description="how the number was read, or why none was found")
    checked: bool = Field(False, description="whether it was checked against the paper's table")
    statistic: Literal[STATISTICS] = Field(  # type: ignore[valid-type]
        "final", description="what the number measures: " + ", ".join(STATISTICS)
    )
    num_exp: int | None = Field(
        None, ge=1, description="synthetic sets behind the published number (its design)"
    )
    num_eval: int | None = Field(
        None, ge=1, description="networks trained per synthetic set (n = num_exp x num_eval)"
    )
    std_ddof: Literal[0, 1] = Field(
        1, description="0: the reference printed the population std (np.std); 1: a sample std"
    )
    alternatives: list[QuoteModel] = Field(
        default_factory=list, description="other quotes of the same cell, with their sources"
    )

    @model_validator(mode="after")
    def _mean_has_a_source_or_a_note_says_why_none(self) -> PublishedModel:
        if self.mean is not None and not self.source:
            raise rule("'mean' without 'source'; add source = \"<paper, venue, table>\"")
        if self.mean is None and not self.note:
            raise rule("no 'mean'; say in 'note' why it is missing")
        if self.num_exp and self.num_eval:
            product = self.num_exp * self.num_eval
            if self.n is not None and self.n != product:
                raise rule(f"n={self.n} but num_exp x num_eval = {product}; fix one")
        return self


class TestModel(TomlModel):
    """``[test]``: the equivalence test of a reproduction against the published mean."""

    margin: float = Field(description="the equivalence margin in percentage points, > 0")
    alpha: float = Field(0.05, description="significance level, 0 < alpha < 1")

    @model_validator(mode="after")
    def _usable(self) -> TestModel:
        if not 0 < self.margin < math.inf or not 0 < self.alpha < 1:  # NaN fails both
            raise rule(
                f"need margin > 0 and 0 < alpha < 1, got margin={self.margin}, alpha={self.alpha}"
            )
        return self


class BudgetModel(TomlModel):
    """``[budgets.<name>]``: overrides that shrink the paper's protocol."""

    description: str = Field("", description="one line saying what the budget runs")
    method: dict[str, Any] = Field({}, description="overrides of the method's config")
    eval: dict[str, Any] = Field({}, description="overrides of the evaluation protocol")


class BudgetsModel(TomlModel):
    """``[budgets]``: ``smoke`` and ``reduced`` (``paper`` is the recipe itself)."""

    smoke: BudgetModel = Field(description="a minutes-long run that exercises every step")
    reduced: BudgetModel = Field(description="a shorter run that still says something")

    @model_validator(mode="before")
    @classmethod
    def _no_paper_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and "paper" in data:
            raise rule("budgets are 'smoke' and 'reduced' ('paper' is the recipe itself)")
        return data


class RecipeModel(TomlModel):
    """A recipe file: one published result to reproduce."""

    name: str = Field(description="equal to the file name")
    version: int = Field(ge=1, description="raised whenever the recipe's protocol changes")
    distilled_since: int | None = Field(
        None,
        ge=1,
        description="the oldest version whose synthetic sets this version would distil the same "
        "(raised with the version only where the distillation changed); kept sets of versions "
        "from it on are evaluated again with reproduce --distilled-from (default: the version)",
    )
    title: str | None = Field(None, description="one line for tables (default: the name)")
    method: str = Field(description="a registered method (python -m bench methods)")
    dataset: str = Field(description="a dataset card (datasets/<name>.toml)")
    ipc: int | None = Field(
        None, ge=1, description="images per class; absent for the whole training set"
    )
    variant: str | None = Field(
        None,
        min_length=1,
        description="why this recipe differs from the published cell it reproduces (a fix or "
        "an improvement beside the faithful recipe); absent: the faithful recipe",
    )
    method_overrides: dict[str, Any] = Field({}, description="the method's config fields")
    eval: dict[str, Any] = Field({}, description="the evaluation protocol's fields")
    published: PublishedModel = Field(description="the [published] table")
    test: TestModel = Field(description="the [test] table with the equivalence 'margin'")
    budgets: BudgetsModel = Field(description="[budgets.smoke] and [budgets.reduced]")
    leaderboard: str | None = Field(None, description="leaderboard table (default: the method)")
    leaderboard_row: int = Field(
        2, description="order among rows of one dataset and ipc (random 0, herding 1, ...)"
    )
    baselines: list[str] = Field(
        [], description="recipes measured under the same protocol to compare with"
    )

    _name = field_validator("name")(name_is_file_name)

    @model_validator(mode="after")
    def _distilled_no_later(self) -> RecipeModel:
        if self.distilled_since is not None and self.distilled_since > self.version:
            raise rule(
                f"distilled_since={self.distilled_since} is later than version={self.version}"
            )
        return self


class GroupModel(TomlModel):
    """A group file: several recipes run one after another under one name."""

    name: str = Field(description="equal to the file name")
    version: int = Field(ge=1, description="raised whenever the group changes")
    title: str | None = Field(None, description="one line for tables (default: the name)")
    members: list[str] = Field(min_length=1, description="the recipes the group runs")
    note: str = Field("", description="anything a reader of the group should know")

    _name = field_validator("name")(name_is_file_name)


def config_table_schema(cls: type) -> dict[str, Any]:
    """The JSON schema of a TOML table that sets some fields of config dataclass ``cls`` (a
    method's config, ``EvalProtocol``): each field's type (pydantic) and attribute docstring,
    none required, no other key."""
    from pydantic import TypeAdapter

    from bench.core.config import field_help

    schema = TypeAdapter(cls).json_schema()
    schema.pop("required", None)
    described = {row.name: row.description for row in field_help(cls)}
    for name, field_schema in schema["properties"].items():
        field_schema.pop("title", None)
        if described.get(name):
            field_schema["description"] = described[name]
    return {**schema, "additionalProperties": False}


def recipe_schema() -> dict[str, Any]:
    """``RecipeModel``'s JSON schema with the ``[eval]`` tables typed by ``EvalProtocol`` and,
    per registered method, its ``[method_overrides]`` and budget ``method`` tables by its config
    (``if method == name then ...``), so an editor completes and checks their keys."""
    from bench.evaluation.evaluate import EvalProtocol
    from bench.spec.method import load_method, registered_methods

    schema = json_schema(RecipeModel, "DistillBench recipe")
    evaluation = config_table_schema(EvalProtocol)
    for properties in (schema["properties"], schema["$defs"]["BudgetModel"]["properties"]):
        properties["eval"] = {**evaluation, "description": properties["eval"]["description"]}
    schema["allOf"] = []
    for name in sorted(registered_methods()):
        config = config_table_schema(load_method(name).config_class)
        budget = {"properties": {"method": config}}
        schema["allOf"].append(
            {
                "if": {"properties": {"method": {"const": name}}, "required": ["method"]},
                "then": {
                    "properties": {
                        "method_overrides": config,
                        "budgets": {"properties": {"smoke": budget, "reduced": budget}},
                    }
                },
            }
        )
    return schema


def schema_files() -> dict[str, dict[str, Any]]:
    """Path in the repository -> JSON schema, for the files committed beside the TOML files
    they describe (``*.schema.json``: never taken for a recipe or a card)."""
    from bench.data.card_schema import CardModel

    return {
        "reproduce/recipe.schema.json": recipe_schema(),
        "reproduce/group.schema.json": json_schema(GroupModel, "DistillBench recipe group"),
        "datasets/card.schema.json": json_schema(CardModel, "DistillBench dataset card"),
    }


def write_schemas(out: Path | None = None) -> list[Path]:
    """Write ``schema_files()``: into ``out`` (file names only), or where they are committed
    in the source checkout.

    Raises:
        ConfigError: no ``out`` and no source checkout to write into.
    """
    if out is None and CHECKOUT is None:
        raise ConfigError("not running from a source checkout: pass --out DIR")
    written = []
    for relative, schema in schema_files().items():
        path = out / Path(relative).name if out is not None else CHECKOUT / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(schema, indent=2) + "\n")
        written.append(path)
    return written
