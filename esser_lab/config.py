"""Building the frozen config dataclasses from plain dicts (checkpoints store configs as JSON)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

C = TypeVar("C")


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
