"""Strict pydantic models of the suite's TOML files, and one-line errors from their failures.

Recipes (``bench.spec.recipe_schema``) and dataset cards (``bench.data.card_schema``) are read
with models derived from ``TomlModel``: unknown keys are refused, values are not coerced (a
string is not turned into a list, an integer is not a title), and every problem of a file
becomes one line that names the file, the key and the fix (``SchemaError.problems``). The same
models give the JSON schemas editors check the TOML files with (``python -m bench schema``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomllib
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from bench.core.errors import ConfigError

M = TypeVar("M", bound="TomlModel")


class TomlModel(BaseModel):
    """Base of the file models: unknown keys forbidden, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SchemaError(ConfigError):
    """A file that does not fit its model; ``problems`` holds one line per problem (the
    message joins them, so that a command that stops at the first file still prints one
    line)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


def rule(message: str) -> PydanticCustomError:
    """An error a validator raises for a rule across keys; ``message`` is shown as is."""
    return PydanticCustomError("rule", message)


def name_is_file_name(name: str, info: ValidationInfo) -> str:
    """A ``name`` field validator: a file's ``name`` equals its file name (its identity on the
    command line), passed as ``context={"stem": ...}``."""
    stem = (info.context or {}).get("stem")
    if stem is not None and name != stem:
        raise rule(f"'name' must equal the file name {stem!r}, got {name!r}")
    return name


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The table of TOML file ``path``.

    Raises:
        ConfigError: the file is not valid TOML (the message names the line).
    """
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path.name} is not valid TOML: {exc}") from None


def parse(model: type[M], raw: Mapping[str, Any], where: str, context: Any = None) -> M:
    """``raw`` validated as ``model``.

    Args:
        where: the file, as messages name it (e.g. ``"recipe gm-mnist-ipc1.toml"``).
        context: passed to the model's validators (e.g. the file name a ``name`` must equal).

    Raises:
        SchemaError: one line per problem (see ``problem_lines``).
    """
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise SchemaError(problem_lines(exc, model, where)) from None


_EXPECTED = {
    "string_type": "a string in quotes",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list [...]",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _toml(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list)) else repr(value)


def _key(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The model class of the table at ``path`` (None where it is not a model)."""
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def problem_lines(exc: ValidationError, model: type[BaseModel], where: str) -> list[str]:
    """One line per error of ``exc``: ``<where> [<table>]: <problem>; <fix>``.

    An unknown key names the nearest known one (``difflib``); a missing key says what it holds
    (the field's description); a value of the wrong type says what it must be and, for a string
    where a list belongs, how to write the list.
    """
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind, value = error["type"], error.get("input")
        parent, key = loc[:-1], (loc[-1] if loc else "")
        table = f" [{_key(parent)}]" if parent and all(isinstance(p, str) for p in parent) else ""
        if kind == "extra_forbidden":
            known = sorted(getattr(_model_at(model, parent), "model_fields", {}))
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            lines.append(f"{where}{table}: unknown key {key!r}; {fix}")
        elif kind == "missing":
            holder = _model_at(model, parent)
            field = holder.model_fields.get(key) if holder else None
            what = f" ({field.description})" if field and field.description else ""
            lines.append(f"{where}{table}: missing key {key!r}; add it{what}")
        elif kind in _EXPECTED:
            fix = ""
            if kind == "list_type" and isinstance(value, str):
                fix = f"; write {key} = {_toml([value])}"
            elif kind == "string_type" and not isinstance(value, (dict, list)):
                fix = f"; write {key} = {_toml(str(value))}"
            lines.append(f"{where}: {_key(loc)} must be {_EXPECTED[kind]}, got {_toml(value)}{fix}")
        elif kind == "rule":
            table = f" [{_key(loc)}]" if loc and _model_at(model, loc) else ""
            lines.append(f"{where}{table}: {error['msg']}")
        else:  # constraints (greater than, length, one of ...): pydantic says what is allowed
            msg = error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
            lines.append(f"{where}: {_key(loc)} {msg}, got {_toml(value)}")
    return lines


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of ``model``, as committed for editors."""
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}
