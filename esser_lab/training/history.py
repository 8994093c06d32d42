"""``History``: the per-step scalars a system keeps for the chapters' plots, without host syncs.

Turning a GPU tensor into a Python ``float`` waits for every kernel queued before it, so a
training step that calls ``float(loss)`` on ten values stalls the GPU ten times. A system instead
``append``s a dict of tensors (and plain numbers); ``History`` stacks each row's tensors into one
small tensor on their device (one kernel, no sync) and turns all pending rows into floats in one
transfer when the history is read, or every ``flush_every`` rows. Read back, it is a sequence of
dicts of floats, exactly what ``float(value)`` would have stored: ``history[-1]["loss"]``,
``history[-20:]``, ``[h["step"] for h in history]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from numbers import Real
from typing import overload

import torch
from torch import Tensor

__all__ = ["History"]

# one pending row: its keys in order, its plain numbers, and per (device, dtype) the keys it holds
# and their values stacked into one 1-D tensor
_Row = tuple[list[str], dict[str, float], list[tuple[list[str], Tensor]]]


class History(Sequence[dict[str, float]]):
    """A list of per-step dicts of floats, filled with tensors that are read lazily.

    ``flush_every`` bounds how many rows wait on the device (one host transfer per that many
    steps at most, as well as on every read).
    """

    def __init__(self, flush_every: int = 256) -> None:
        if not isinstance(flush_every, int) or flush_every < 1:
            raise ValueError(f"flush_every must be a positive int, got {flush_every!r}")
        self.flush_every = flush_every
        self._rows: list[dict[str, float]] = []
        self._pending: list[_Row] = []

    def append(self, row: Mapping[str, Tensor | float]) -> None:
        """Add one step's scalars: one-element tensors (detached here) or Python numbers."""
        keys, numbers = list(row), {}
        groups: dict[tuple[torch.device, torch.dtype], list[tuple[str, Tensor]]] = {}
        for key, value in row.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise ValueError(
                        f"history values must be scalars, got {key!r} of shape {tuple(value.shape)}"
                    )
                groups.setdefault((value.device, value.dtype), []).append((key, value))
            elif isinstance(value, Real):
                numbers[key] = float(value)
            else:
                got = type(value).__name__
                raise TypeError(f"history values must be tensors or numbers, got {key!r}: {got}")
        with torch.no_grad():  # stacking copies: later in-place updates (buffers) don't leak in
            stacked = [
                ([k for k, _ in items], torch.stack([v.detach().reshape(()) for _, v in items]))
                for items in groups.values()
            ]
        self._pending.append((keys, numbers, stacked))
        if len(self._pending) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        """Turn the pending rows into dicts of floats: one transfer per (device, dtype)."""
        if not self._pending:
            return
        by_group: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for _, _, stacked in self._pending:
            for _, values in stacked:
                by_group.setdefault((values.device, values.dtype), []).append(values)
        floats = {group: iter(torch.cat(parts).tolist()) for group, parts in by_group.items()}
        for keys, numbers, stacked in self._pending:
            values = dict(numbers)
            for names, tensor in stacked:
                column = floats[(tensor.device, tensor.dtype)]
                values.update((name, float(next(column))) for name in names)
            self._rows.append({k: values[k] for k in keys})
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._rows) + len(self._pending)

    @overload
    def __getitem__(self, index: int) -> dict[str, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, float]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, float] | list[dict[str, float]]:
        self._flush()
        return self._rows[index]

    def __iter__(self) -> Iterator[dict[str, float]]:
        self._flush()
        return iter(self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):
            return list(self) == list(other)
        return isinstance(other, list) and list(self) == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"History({len(self)} steps)"
