"""The frozen config dataclasses: built from plain dicts (checkpoints store configs as JSON) and
checked field by field against their annotations (:func:`check_fields`, called first thing in
every config's ``__post_init__``; the ranges follow there, config by config)."""

from __future__ import annotations

import functools
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Literal, TypeVar, Union

C = TypeVar("C")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: object, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (the forms the configs use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _matches(v, a) for v, a in zip(value, args, strict=True)
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _show(hint: Any) -> str:
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        return hint.__name__
    return str(hint).replace("typing.", "")


def check_fields(config: object) -> None:
    """A ``TypeError`` naming the first field whose value does not fit its annotation.

    ``int`` fields take integers (not ``bool``), ``float`` fields any real number, ``bool``
    fields only ``True``/``False``, ``Literal`` fields one of their values (a ``ValueError`` when
    the type is right but the value is not one of them), ``tuple`` fields a
    tuple of the stated length and element types (a list is refused: frozen configs stay
    hashable; :func:`config_from_dict` turns JSON lists back into tuples).
    """
    cls = type(config)
    hints = _field_types(cls)
    for f in fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        hint = hints[f.name]
        if not _matches(value, hint):
            if typing.get_origin(hint) is Literal and type(value) in map(
                type, typing.get_args(hint)
            ):
                raise ValueError(
                    f"{cls.__name__}.{f.name} must be one of {list(typing.get_args(hint))}, "
                    f"got {value!r}"
                )
            raise TypeError(
                f"{cls.__name__}.{f.name} must be {_show(hints[f.name])}, "
                f"got {value!r} ({type(value).__name__})"
            )


def check_positive(config: object, names: Iterable[str], minimum: float = 1) -> None:
    """A ``ValueError`` naming the first of ``names`` whose value is below ``minimum``."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{type(config).__name__}.{name} must be ≥ {minimum}, got {value!r}")


def check_rates(config: object, names: Iterable[str]) -> None:
    """A ``ValueError`` naming the first of ``names`` (learning rates, …) that is not > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ValueError(f"{type(config).__name__}.{name} must be > 0, got {value!r}")


def check_betas(config: object, name: str = "betas") -> None:
    """Adam's ``(β₁, β₂)``: a ``ValueError`` unless both lie in [0, 1)."""
    betas = getattr(config, name)
    if not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{type(config).__name__}.{name} must lie in [0, 1), got {betas}")


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """``cls(**values)`` that names unknown fields instead of raising a bare ``TypeError``.

    JSON turns tuples into lists; lists come back as tuples, so the frozen configs stay hashable
    and compare equal to the originals.
    """
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s) {unknown}; expected some of {sorted(known)}"
        )
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_rows(paper: object, ours: object, paper_label: str = "paper") -> list[str]:
    """A Markdown table, as a list of rows, comparing two configs of one class field by field.

    The chapters show the paper's configuration beside the one they run; fields that differ are
    bold. Returned as rows so that a chapter can append its own (e.g. the learning rate).
    """
    if not (is_dataclass(paper) and type(paper) is type(ours)):
        raise TypeError(
            f"need two configs of the same dataclass, got {type(paper).__name__} and "
            f"{type(ours).__name__}"
        )
    rows = [f"| field | {paper_label} | this run |", "|---|---|---|"]
    for field in fields(paper):  # type: ignore[arg-type]
        value, mine = getattr(paper, field.name), getattr(ours, field.name)
        bold = "**" if mine != value else ""
        rows.append(f"| `{field.name}` | {value} | {bold}{mine}{bold} |")
    return rows


# --- typed values from a command line or YAML (python -m esser_lab) -----------------------------


def describe(annotation: Any) -> str:
    """An annotation in words: ``int``, ``float or None``, ``one of 'a', 'b'``, ``a list of …``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if is_dataclass(annotation):
        return f"a mapping of {annotation.__name__} fields"
    return getattr(annotation, "__name__", str(annotation))


def check_value(annotation: Any, value: Any) -> Any:
    """``value`` as the type ``annotation`` says (ints may stand for floats, lists for tuples).

    Raises:
        TypeError: the value does not fit; the message is the expected type in words.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    expected = describe(annotation)
    if annotation is Any:
        return value
    if origin is typing.Literal:
        if value in args and all(type(value) is type(a) for a in args if a == value):
            return value
        raise TypeError(expected)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return check_value(option, value)
            except TypeError:
                continue
        raise TypeError(expected)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(expected)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(args[0], item) for item in value)
        if args and len(args) != len(value):
            raise TypeError(expected)
        return tuple(check_value(a, item) for a, item in zip(args, value, strict=False))
    if is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(expected)
        return build_config(annotation, dict(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(expected)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(expected)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(expected)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeError(expected)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise TypeError(expected)
    return value


class ConfigError(ValueError):
    """A config value that does not fit its field (unknown field, wrong type or range)."""


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """``cls`` from ``values`` with every value checked against its field's type.

    Raises:
        ConfigError: naming the unknown field(s), or the field, the expected type and the value.
    """
    hints = _field_types(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} field(s) {', '.join(unknown)}; expected one of: "
            + ", ".join(known)
        )
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = check_value(hints[name], value)
        except TypeError as error:
            raise ConfigError(
                f"{cls.__name__}.{name} expects {error}, got {value!r} ({type(value).__name__})"
            ) from None
    try:
        return cls.from_dict(checked) if hasattr(cls, "from_dict") else cls(**checked)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{cls.__name__}: {error}") from None


def _as_dict(config: Any) -> dict[str, Any]:
    """A config's fields one level deep (nested configs stay objects until overridden)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _merge(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``values[key]``; a dotted key (``schedule.start``) sets a field of a nested config."""
    head, _, rest = key.partition(".")
    if not rest:
        values[head] = value
        return
    inner = values.get(head)
    if is_dataclass(inner):
        inner = _as_dict(inner)
    elif not isinstance(inner, dict):
        inner = {}
    values[head] = inner
    _merge(inner, rest, value)


def _parse_scalar(raw: str) -> Any:
    """A command-line value read as YAML (``512`` → int, ``[1, 2]`` → list, ``null`` → None)."""
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
