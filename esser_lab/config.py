"""Building the frozen config dataclasses from plain dicts (checkpoints store configs as JSON)."""

from __future__ import annotations

from dataclasses import fields
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
