"""LightningDataModules over the procedural data sets and local image folders.

The procedural modules generate a fixed train set and a fixed val set in ``setup()``, from the
seeds ``2 * seed`` and ``2 * seed + 1`` (so no two streams ever share a seed), and serve whole
batches by slicing the pre-generated tensors: a :class:`BatchIndexSampler` yields one index tensor
per batch and ``DataLoader(batch_size=None)`` passes it straight to :class:`TensorBatches`, so there
is no per-item collate cost. The train order is reshuffled every epoch from ``seed + epoch``
(Lightning calls ``set_epoch``), so a run is reproducible from its seed. The train loader is a
:class:`BatchLoader`, whose position (data epoch, batches served) Lightning saves in its
checkpoints, so a resumed run continues with the batch the uninterrupted run would have drawn
(see :mod:`esser_lab.training.resume`). Batches are dicts:
``Figures.to_dict()`` keys for figures, ``Sprites.to_dict()`` keys for sprites (with ``caption`` a
list of strings). ``test_dataloader`` serves the val set.

This is the only module of ``esser_lab.data`` that imports Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
    Subset,
    default_collate,
)

from esser_lab.data import figures, sprites
from esser_lab.data._raster import check_positive_int
from esser_lab.data.folder import ImageFolder

__all__ = [
    "ArtPairsDataModule",
    "BatchIndexSampler",
    "BatchLoader",
    "batch_loader",
    "FiguresDataModule",
    "GeneratedBatches",
    "ImageFolderDataModule",
    "ItemBatches",
    "SpritesDataModule",
    "TensorBatches",
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


class _ProceduralDataModule(L.LightningDataModule):
    """Train/val sets made in ``setup()``; subclasses say how to generate them.

    ``on_the_fly=False`` (tiny) generates the training set once and holds it; ``True`` (small,
    full: 50k figures at 64 px are 6.6 GB) draws each batch when it is asked for
    (:class:`GeneratedBatches`), so host memory does not grow with ``num_train``. The validation
    set is small and made once either way.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        seed: int,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__()
        self.size = check_positive_int(size, "size")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.num_train = check_positive_int(num_train, "num_train")
        self.num_val = check_positive_int(num_val, "num_val")
        self.seed = _check_seed(seed)
        if not isinstance(on_the_fly, bool):
            raise TypeError(f"on_the_fly must be a bool, got {on_the_fly!r}")
        self.on_the_fly = on_the_fly
        self.train_set: TensorBatches | GeneratedBatches | None = None
        self.val_set: TensorBatches | None = None

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            if self.on_the_fly:
                self.train_set = GeneratedBatches(self._generate, self.num_train, 2 * self.seed)
            else:
                generator = torch.Generator().manual_seed(2 * self.seed)
                self.train_set = TensorBatches(self._generate(self.num_train, generator))
            generator = torch.Generator().manual_seed(2 * self.seed + 1)
            self.val_set = TensorBatches(self._generate(self.num_val, generator))

    def _loader(self, dataset: TensorBatches | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"call {type(self).__name__}.setup() before asking for data")
        return batch_loader(dataset, self.batch_size, shuffle=shuffle, seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


class FiguresDataModule(_ProceduralDataModule):
    """Stick figures (``figures.sample``); batches carry every ``Figures`` field."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        seed: int = 0,
        textured: bool = False,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(size, batch_size, num_train, num_val, seed, on_the_fly)
        self.textured = textured
        self.save_hyperparameters()

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        return figures.sample(n, self.size, generator=generator, textured=self.textured).to_dict()


class SpritesDataModule(_ProceduralDataModule):
    """Sprites (``sprites.sample``); batches carry every ``Sprites`` field, captions as a list."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        seed: int = 0,
        num_objects: int = 1,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(size, batch_size, num_train, num_val, seed, on_the_fly)
        if num_objects not in (1, 2):
            raise ValueError(f"num_objects must be 1 or 2, got {num_objects!r}")
        self.num_objects = num_objects
        self.save_hyperparameters()

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        batch = sprites.sample(n, self.size, generator=generator, num_objects=self.num_objects)
        return batch.to_dict()


class ArtPairsDataModule(_ProceduralDataModule):
    """Chapter 3's training rows (``art.sample_pairs``): two photos, two paintings, labels."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        seed: int = 0,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(size, batch_size, num_train, num_val, seed, on_the_fly)
        self.save_hyperparameters()

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        from esser_lab.data import art

        return art.sample_pairs(n, self.size, "train", generator=generator)


class ImageFolderDataModule(L.LightningDataModule):
    """Images from a local folder (:class:`ImageFolder`), split once into train and val.

    The split is a random permutation under ``seed``; val gets ``round(val_fraction * n)`` images
    but at least one, and train at least one. Batches are ``{"image": (b, 3, size, size),
    "label": (b,)}``; the train order is reshuffled every epoch from ``seed + epoch``
    (:class:`BatchIndexSampler`, resumable like the procedural modules'). Nothing is ever
    downloaded.
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        batch_size: int,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.size = check_positive_int(size, "size")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
        self.val_fraction = val_fraction
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}")
        self.num_workers = num_workers
        self.seed = _check_seed(seed)
        self.train_set: Subset | None = None
        self.val_set: Subset | None = None
        # ``root`` as a string: a Path would make Lightning's checkpoints need unpickling
        self.save_hyperparameters(
            {"root": str(self.root), "size": size, "batch_size": batch_size}
            | {"val_fraction": val_fraction, "num_workers": num_workers, "seed": seed}
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        dataset = ImageFolder(self.root, self.size)
        if len(dataset) < 2:
            raise ValueError(
                f"{self.root} holds {len(dataset)} image; a train/val split needs at least 2"
            )
        num_val = min(max(1, round(self.val_fraction * len(dataset))), len(dataset) - 1)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        self.val_set = Subset(dataset, order[:num_val].tolist())
        self.train_set = Subset(dataset, order[num_val:].tolist())

    def _loader(self, dataset: Subset | None, shuffle: bool) -> BatchLoader:
        if dataset is None:
            raise RuntimeError("call ImageFolderDataModule.setup() before asking for data")
        sampler = BatchIndexSampler(len(dataset), self.batch_size, shuffle=shuffle, seed=self.seed)
        return BatchLoader(
            ItemBatches(dataset),
            sampler,
            # the workers' seeds come from here, not from the global generator
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
