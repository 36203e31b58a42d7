"""Typed overrides of frozen config dataclasses.

Recipes, budgets and ``--set KEY=VALUE`` only override fields that exist; an unknown key is an
error that names the nearest known key. Values are checked (and, for strings from the command
line, parsed) against the field's type annotation.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from bench.core.errors import ConfigError

T = TypeVar("T")
_UNIONS = (Union, types.UnionType)  # Optional[int] and int | None

BUDGETS = ("smoke", "reduced", "paper")
"""the budgets every recipe defines, cheapest first; ``paper`` is the published protocol"""

SPEED_ONLY = {"speed_only": True}
"""field metadata of config fields that change how fast a result is computed, not the result;
overriding them does not take a run off the paper's protocol (``RunConfig.off_protocol``)"""


HASHED_IF_CHANGED = {"hashed_if_changed": True}
"""field metadata of config fields added after runs were recorded: at its default such a field is
left out of the config and protocol hashes, so the designs recorded before it keep their hashes
(and the ledger keeps pooling their sets with new ones)"""


def unhashed_defaults(config: Any) -> dict[str, Any]:
    """Defaults of the fields of config dataclass ``config`` marked ``HASHED_IF_CHANGED``."""
    return {
        f.name: f.default for f in dataclasses.fields(config) if f.metadata.get("hashed_if_changed")
    }


def speed_only_fields(config: Any) -> set[str]:
    """Names of the fields of a config dataclass (class or instance) marked ``SPEED_ONLY``."""
    return {f.name for f in dataclasses.fields(config) if f.metadata.get("speed_only")}


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a dataclass's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class FieldHelp:
    """One config field as help shows it."""

    name: str
    type: str
    """the annotation as written (``int | None``, ``Literal['noise', 'real']``)"""
    default: str
    description: str
    """the attribute docstring below the field, whitespace collapsed ("" if none)"""
    speed_only: bool


def field_help(cls: type) -> list[FieldHelp]:
    """The fields of config dataclass ``cls`` in order, with the attribute docstring written
    under each (read from the source with ``ast``; the convention of the suite's configs)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's docstring wins
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (a compiled or dynamic class)
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, [*body[1:], None], strict=True):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                annotations[node.target.id] = ast.unparse(node.annotation)
                if (
                    isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                ):
                    docs[node.target.id] = " ".join(after.value.value.split())
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append(
            FieldHelp(
                f.name,
                annotations.get(f.name, str(f.type)),
                default,
                docs.get(f.name, ""),
                bool(f.metadata.get("speed_only")),
            )
        )
    return rows


def unknown_key_error(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown key {key!r} in {where}{hint} (known: {', '.join(sorted(known))})")


def _from_command_line(text: str, typ: Any) -> Any:
    """What pydantic has no syntax for in a ``--set`` string: ``a,b`` for a tuple field and
    ``none``/``null`` for an optional one; everything else is left to pydantic's lax mode."""
    args = get_args(typ)
    if get_origin(typ) in _UNIONS:
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        typ = next(a for a in args if a is not type(None))
    if get_origin(typ) is tuple:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


@functools.cache
def _adapter(typ: Any) -> TypeAdapter:
    return TypeAdapter(typ)


def coerce(value: Any, typ: Any, key: str) -> Any:
    """Validate ``value`` against the field type ``typ`` with pydantic: strictly for typed
    values (a recipe's TOML: no bool for an int, no float for an int; an int for a float is
    widened), in lax mode for a command-line string (``"7"`` for an int, ``"true"``/``"no"``
    for a bool, ``"a,b"`` for a tuple, ``"none"`` for an optional field).

    Raises:
        ConfigError: ``bad value for 'key': <pydantic's reason>, got <value>``.
    """
    from_command_line = isinstance(value, str) and typ is not str
    if from_command_line:
        value = _from_command_line(value, typ)
    elif isinstance(value, list):
        value = tuple(value)  # a TOML array for a tuple field
    try:
        return _adapter(typ).validate_python(value, strict=not from_command_line)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ConfigError(f"bad value for {key!r}: {reason}, got {value!r}") from None


def apply_overrides(config: T, overrides: Mapping[str, Any], where: str) -> T:
    """Return a copy of the frozen dataclass ``config`` with ``overrides`` applied.

    Args:
        config: a dataclass instance.
        overrides: field name -> value (typed, or a string to parse).
        where: what the overrides came from, for error messages (e.g. ``"--set method.*"``).

    Raises:
        ConfigError: unknown key or a value of the wrong type.
    """
    types = field_types(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in types:
            raise unknown_key_error(key, list(types), where)
        changes[key] = coerce(value, types[key], key)
    return dataclasses.replace(config, **changes)


def add_config_arguments(parser: Any, cls: type, required: tuple[str, ...] = ()) -> None:
    """One ``--kebab-case VALUE`` option per field of config dataclass ``cls`` on the argparse
    ``parser``, its help the field's attribute docstring, type and default (``field_help``), so
    a command's options cannot drift from the dataclass. Values stay strings until
    ``config_from_arguments`` validates them; fields in ``required`` must be given."""
    for row in field_help(cls):
        default = "required" if row.name in required else f"default: {row.default}"
        parser.add_argument(
            "--" + row.name.replace("_", "-"),
            dest=row.name,
            required=row.name in required,
            default=argparse.SUPPRESS,
            metavar=row.name.upper(),
            help=f"{row.description} ({row.type}; {default})".replace("%", "%%").lstrip(" "),
        )


def config_from_arguments(cls: type[T], args: Any) -> T:
    """``cls`` at its defaults with the options ``add_config_arguments`` parsed into ``args``
    applied (``apply_overrides``: pydantic's lax parsing of each string).

    Raises:
        ConfigError: a value that does not fit its field, or that ``cls`` refuses.
    """
    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return apply_overrides(cls(), given, "the command line")


MAX_COUNT = 10_000_000
"""the largest count (iterations, epochs, batch sizes, ...) a config accepts: a run asked for
more could not finish, and is refused rather than estimated"""


def require_positive(config: Any, names: tuple[str, ...], section: str) -> None:
    """Raise ``ConfigError`` unless every named field of ``config`` is finite, at least 1 and at
    most ``MAX_COUNT`` (or None)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value >= 1):
            raise ConfigError(f"{section}.{name} must be at least 1, got {value}")
        if value is not None and value > MAX_COUNT:
            raise ConfigError(
                f"{section}.{name}={value:g} could not finish: at most {MAX_COUNT:,} is accepted"
            )


def require_in_range(
    config: Any,
    names: tuple[str, ...],
    section: str,
    low: float = 0.0,
    high: float = math.inf,
    *,
    low_included: bool = False,
    high_included: bool = False,
) -> None:
    """Raise ``ConfigError`` unless every named field of ``config`` is a finite number in the
    interval from ``low`` to ``high`` (open ends unless ``*_included``); the defaults ask for
    a finite number > 0 (learning rates, clipping norms, tolerances). NaN and infinities are
    always refused: a NaN learning rate diverges at the first step, silently in places."""
    for name in names:
        value = getattr(config, name)
        above = value >= low if low_included else value > low
        below = value <= high if high_included else value < high
        if not (math.isfinite(value) and above and below):
            interval = (
                f"{'>=' if low_included else '>'} {low:g}"
                if math.isinf(high)
                else f"in {'[' if low_included else '('}{low:g}, {high:g}"
                f"{']' if high_included else ')'}"
            )
            raise ConfigError(f"{section}.{name} must be a finite number {interval}, got {value}")


def require_learning_rates(config: Any, section: str) -> None:
    """``require_in_range`` for the common numeric fields of optimiser configs: every field named
    ``lr`` or ``lr_*`` / ``*_lr`` finite and > 0, every ``momentum``/``momentum_*`` in [0, 1)
    and ``weight_decay`` finite and >= 0."""
    names = [
        f.name
        for f in dataclasses.fields(config)
        if isinstance(getattr(config, f.name), int | float)
        and not isinstance(getattr(config, f.name), bool)  # eval.lr_from_set
    ]
    rates = tuple(n for n in names if n == "lr" or n.startswith("lr_") or n.endswith("_lr"))
    require_in_range(config, rates, section)
    momenta = tuple(n for n in names if n == "momentum" or n.startswith("momentum_"))
    require_in_range(config, momenta, section, 0.0, 1.0, low_included=True)
    if "weight_decay" in names:
        require_in_range(config, ("weight_decay",), section, low_included=True)


def parse_set_options(items: list[str]) -> dict[str, dict[str, str]]:
    """Split ``--set section.key=value`` items into ``{section: {key: value}}``.

    Raises:
        ConfigError: an item without ``=`` or without a ``section.`` prefix.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set method.lr_img=0.1")
        key, value = item.split("=", 1)
        if "." not in key:
            raise ConfigError(
                f"--set {item!r}: prefix the key with its section, 'method.' or 'eval.' "
                f"(e.g. method.{key}={value})"
            )
        section, name = key.split(".", 1)
        out.setdefault(section.strip(), {})[name.strip()] = value.strip()
    return out


def as_flat_dict(config: Any, prefix: str) -> dict[str, Any]:
    """``{prefix.field: value}`` for every field of a dataclass (for logging)."""
    return {f"{prefix}.{k}": v for k, v in dataclasses.asdict(config).items()}
