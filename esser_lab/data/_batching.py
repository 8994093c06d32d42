"""Sub-batching for the frozen result dataclasses of the procedural data sets."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

Index = int | slice | Tensor | list[int]


def _normalise(index: Index, length: int) -> slice | Tensor:
    """An int becomes a batch of one; lists become index tensors; slices and tensors pass."""
    if isinstance(index, bool):
        raise TypeError("cannot index a batch with a bool")
    if isinstance(index, int):
        if not -length <= index < length:
            raise IndexError(f"index {index} is out of range for a batch of {length}")
        index = index % length
        return slice(index, index + 1)
    if isinstance(index, slice):
        return index
    if isinstance(index, list):
        return torch.tensor(index, dtype=torch.long)
    if isinstance(index, Tensor) and (index.dtype == torch.bool or not index.is_floating_point()):
        return index
    raise TypeError(
        f"batches are indexed by an int, a slice, a list of ints or an integer/bool tensor, "
        f"got {type(index).__name__}"
    )


class Indexable:
    """Mixin for frozen dataclasses whose fields are batched along the first axis.

    Tensor fields are indexed directly; tuple fields (e.g. captions) are indexed per element.
    ``batch[i]`` with an int keeps the batch axis (a batch of one).
    """

    def _fields(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def __len__(self) -> int:
        for value in self._fields().values():
            return len(value)
        return 0

    def __getitem__(self, index: Index) -> Any:
        length = len(self)
        index = _normalise(index, length)
        if isinstance(index, slice):
            positions = list(range(length))[index]
        else:
            positions = torch.arange(length)[index.cpu()].tolist()
        updates = {}
        for name, value in self._fields().items():
            if isinstance(value, Tensor):
                updates[name] = value[
                    index.to(value.device) if isinstance(index, Tensor) else index
                ]
            else:
                updates[name] = tuple(value[i] for i in positions)
        return dataclasses.replace(self, **updates)

    def to(self, device: torch.device | str) -> Any:
        """The same batch with every tensor field on ``device`` (tuple fields unchanged)."""
        updates = {
            name: value.to(device)
            for name, value in self._fields().items()
            if isinstance(value, Tensor)
        }
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name; tuple fields (captions) become lists."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self._fields().items()
        }
