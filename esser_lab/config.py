"""The frozen config dataclasses: built from plain dicts (checkpoints store configs as JSON) and
checked field by field against their annotations (:func:`check_fields`, called first thing in
every config's ``__post_init__``; the ranges follow there, config by config)."""

from __future__ import annotations

import functools
import numbers
import types
import typing
from collections.abc import Iterable
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
