"""Whole batches from index tensors: the samplers and loaders every data module of the book uses.

A :class:`BatchIndexSampler` yields one index tensor per batch and ``DataLoader(batch_size=None)``
passes it straight to :class:`TensorBatches` (pre-generated tensors), :class:`ItemBatches` (a
dataset of items, collated) or :class:`GeneratedBatches` (drawn when asked for), so there is no
per-item collate cost. :class:`BatchLoader` is the resumable loader: its position (data epoch,
batches served) goes into Lightning's checkpoints (see :mod:`esser_lab.training.resume`), and
under DDP it shards its sampler itself. The Lightning data modules live in
:mod:`esser_lab.data.modules`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
    default_collate,
)

from esser_lab.data._raster import check_positive_int

__all__ = [
    "BatchIndexSampler",
    "BatchLoader",
    "GeneratedBatches",
    "ItemBatches",
    "TensorBatches",
    "batch_loader",
]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


class TensorBatches(Dataset):
    """Pre-generated examples, indexed by a whole batch of indices at once.

    ``batches[index]`` with a long tensor ``index`` returns a dict of the fields at those rows;
    list fields (captions) are indexed element-wise.
    """

    def __init__(self, fields: dict[str, Any]) -> None:
        lengths = {name: len(value) for name, value in fields.items()}
        if not fields or len(set(lengths.values())) != 1:
            raise ValueError(f"fields must be non-empty and of equal length, got {lengths}")
        self.fields = fields
        self.num_items = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: Tensor) -> dict[str, Any]:
        rows = index.tolist()
        return {
            name: value[index] if isinstance(value, Tensor) else [value[i] for i in rows]
            for name, value in self.fields.items()
        }


class BatchIndexSampler(Sampler[Tensor]):
    """Yields one long tensor of indices per batch, in order or shuffled per epoch.

    The shuffled order of epoch ``e`` is ``torch.randperm`` under a generator seeded with
    ``seed + e``. ``set_epoch`` (called by Lightning) sets ``e``; each finished pass also advances
    it, so iterating by hand gives a new order every pass too.

    Stateful: ``state_dict()`` is where the next batch comes from (``{"epoch": e, "position":
    k}``: batch ``k`` of epoch ``e``; ``k = 0`` once an epoch is used up) and
    ``load_state_dict()`` makes the next pass start there, whatever ``set_epoch`` says after it.
    The position counts the batches handed out, so it is exact when the loader has no worker
    processes (which read ahead), as in every loader of this package.

    Sharded (``num_replicas`` processes, this one ``rank``; :meth:`shard`, which a
    :class:`BatchLoader` calls when Lightning hands it its distributed wrapper): every process
    draws the same epoch order, and global step ``s`` takes batches ``s·W … s·W + W − 1`` of it,
    batch ``s·W + r`` on rank ``r`` (an epoch with fewer than a multiple of ``W`` batches is padded
    with its first batches, as ``DistributedSampler`` pads). A config's batch size is per process.
    The position then counts this process's batches (= global steps), the same on every rank, so a
    run on ``W`` processes resumes exactly on ``W`` processes.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.num_items = check_positive_int(num_items, "num_items")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.shuffle = shuffle
        self.seed = _check_seed(seed)
        self.num_replicas = check_positive_int(num_replicas, "num_replicas")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        self.rank = rank
        self.epoch = 0
        self._served: tuple[int, int] | None = None  # (epoch, batches of it handed out)
        self.current_pass: tuple[int, int] = (0, 0)  # (epoch, first batch) of the latest pass
        self._resume: tuple[int, int] | None = None  # where the next pass starts (a resume)

    def shard(self, num_replicas: int, rank: int) -> BatchIndexSampler:
        """This sampler for process ``rank`` of ``num_replicas`` (a new one, at epoch 0)."""
        return BatchIndexSampler(
            self.num_items,
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        batches = -(-self.num_items // self.batch_size)
        return -(-batches // self.num_replicas)

    @property
    def resume_pending(self) -> bool:
        """Whether ``load_state_dict`` set where the next pass starts."""
        return self._resume is not None

    @property
    def resuming_mid_epoch(self) -> bool:
        """Whether the next pass continues an epoch (restored with ``load_state_dict``)."""
        return self._resume is not None and self._resume[1] > 0

    def __iter__(self) -> Iterator[Tensor]:
        epoch, start = (self.epoch, 0) if self._resume is None else self._resume
        self._resume = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_items, generator=generator)
        else:
            order = torch.arange(self.num_items)
        self.epoch = epoch + 1
        batches = order.split(self.batch_size)
        if self.num_replicas > 1:
            padded = [batches[i % len(batches)] for i in range(len(self) * self.num_replicas)]
            batches = padded[self.rank :: self.num_replicas]
        self._served = self.current_pass = (epoch, start)
        for position in range(start, len(batches)):
            self._served = (epoch, position + 1)
            yield batches[position]

    def state_dict(self) -> dict[str, int | bool]:
        """Where the next batch comes from, and what the sampler serves (checked on load)."""
        if self._resume is not None:
            epoch, position = self._resume
        elif self._served is None:
            epoch, position = self.epoch, 0
        else:
            epoch, position = self._served
            if position >= len(self):
                epoch, position = epoch + 1, 0
        return {
            "epoch": epoch,
            "position": position,
            "num_items": self.num_items,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
        }

    def load_state_dict(self, state: dict[str, int | bool]) -> None:
        """Start the next pass at ``state``'s position; the sampler must serve the same data."""
        mine = self.state_dict()
        different = {
            key: (state.get(key), mine[key])
            for key in ("num_items", "batch_size", "shuffle", "seed")
            if state.get(key) != mine[key]
        }
        if different:
            pairs = ", ".join(f"{key} {a!r} vs {b!r}" for key, (a, b) in different.items())
            raise ValueError(f"the saved sampler served other batches than this one: {pairs}")
        epoch, position = state.get("epoch"), state.get("position")
        for name, value in (("epoch", epoch), ("position", position)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"a sampler state's {name} must be an int ≥ 0, got {value!r}")
        saved = state.get("num_replicas", 1)  # states written before sharding: one process
        if saved != self.num_replicas and position > 0:
            raise ValueError(
                f"the run stopped in the middle of a data epoch on {saved} process(es); this one "
                f"has {self.num_replicas}, whose batches are other slices of the epoch: resume on "
                f"{saved} process(es), or from a checkpoint saved at an epoch's end"
            )
        if position >= len(self):
            raise ValueError(f"a sampler state's position must be < {len(self)}, got {position}")
        self._resume = (epoch, position)
        self.epoch = epoch


class BatchLoader(DataLoader):
    """``DataLoader(dataset, sampler=sampler, batch_size=None)`` that Lightning can resume.

    Lightning saves ``state_dict()`` in its checkpoints and calls ``load_state_dict()`` before it
    iterates on resume. The state is the :class:`BatchIndexSampler`'s, with the position counted
    in batches handed to the training loop (worker processes read ahead of it). Creating a
    DataLoader iterator draws a seed from the global torch generator (unless ``generator`` is
    given); a run that never stopped draws it at an epoch's start only, so a pass that continues
    an epoch leaves the global random state as it found it. Under DDP, Lightning rebuilds the
    loader with its distributed wrapper around the sampler; a wrapped :class:`BatchIndexSampler`
    is replaced by its own shard for that rank (:meth:`BatchIndexSampler.shard`), so the loader
    keeps its position and a DDP run resumes exactly. Another sampler in Lightning's wrapper
    has no position (``state_dict()`` is empty).
    """

    def __init__(self, dataset: Dataset, sampler: Sampler, **kwargs: Any) -> None:
        inner = getattr(getattr(sampler, "dataset", None), "_sampler", None)
        if isinstance(sampler, DistributedSampler) and isinstance(inner, BatchIndexSampler):
            # Lightning's DistributedSamplerWrapper(BatchIndexSampler): shard it ourselves
            sampler = inner.shard(sampler.num_replicas, sampler.rank)
        kwargs.setdefault("batch_size", None)
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._position: tuple[int, int] | None = None  # (epoch, batches handed out)

    def __iter__(self):  # noqa: ANN204
        state = torch.get_rng_state()
        resuming = getattr(self.sampler, "resuming_mid_epoch", False)
        iterator = super().__iter__()
        if resuming:
            torch.set_rng_state(state)
        if not isinstance(self.sampler, BatchIndexSampler):
            return iterator
        return self._counted(iterator)

    def _counted(self, iterator: Iterator) -> Iterator:
        for handed, batch in enumerate(iterator, 1):
            epoch, start = self.sampler.current_pass
            self._position = (epoch, start + handed)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.sampler, BatchIndexSampler):
            return {}
        state = self.sampler.state_dict()
        if self._position is not None and not self.sampler.resume_pending:
            epoch, position = self._position
            if position >= len(self.sampler):
                epoch, position = epoch + 1, 0
            state |= {"epoch": epoch, "position": position}
        return {"esser_lab.batches": 1, **state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if not isinstance(self.sampler, BatchIndexSampler):
            raise ValueError(
                "the checkpoint holds a batch sampler's position but this loader's sampler is a "
                f"{type(self.sampler).__name__}, not a BatchIndexSampler"
            )
        self.sampler.load_state_dict({k: v for k, v in state.items() if k != "esser_lab.batches"})
        self._position = None


class ItemBatches(Dataset):
    """A per-item dataset read a whole batch at a time: ``batches[index]`` collates the items at
    the long tensor ``index`` (``torch.utils.data.default_collate``), for a :class:`BatchLoader`."""

    def __init__(self, items: Dataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Tensor) -> Any:
        return default_collate([self.items[i] for i in index.tolist()])


def batch_loader(
    fields: dict[str, Any] | Dataset, batch_size: int, *, shuffle: bool, seed: int = 0
) -> BatchLoader:
    """Whole batches of ``fields`` (a dict of equal-length tensors/lists, or a
    :class:`TensorBatches`), reshuffled every epoch from ``seed``: a resumable loader."""
    dataset = fields if isinstance(fields, Dataset) else TensorBatches(fields)
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed)
    return BatchLoader(dataset, sampler)


class GeneratedBatches(Dataset):
    """A training set drawn when a batch is asked for: nothing is held in memory.

    ``batches[index]`` (a long tensor of indices, as :class:`TensorBatches` takes) calls
    ``generate(len(index), generator)`` with a generator seeded from ``seed`` and the batch's
    first index, so a batch is a function of the seed and the sampler's order: the same run gives
    the same batches, and a resumed sampler serves them again. ``len`` is the nominal set size
    the sampler draws epochs from (each epoch's batches are fresh draws).
    """

    def __init__(
        self, generate: Callable[[int, torch.Generator], Any], num_items: int, seed: int
    ) -> None:
        self.generate = generate
        self.num_items = check_positive_int(num_items, "num_items")
        self.seed = _check_seed(seed)

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: Tensor) -> Any:
        if not isinstance(index, Tensor) or index.dim() != 1 or len(index) == 0:
            shape = tuple(index.shape) if isinstance(index, Tensor) else type(index).__name__
            raise ValueError(f"index must be a non-empty 1-d batch of indices, got {shape}")
        seed = (self.seed * 1_000_003 + int(index[0])) % 2**63
        return self.generate(len(index), torch.Generator().manual_seed(seed))
