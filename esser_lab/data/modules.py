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

The samplers and loaders themselves live in :mod:`esser_lab.data.batches` (re-exported here).
This is the only module of ``esser_lab.data`` that imports Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from esser_lab.data import figures, sprites
from esser_lab.data._raster import check_positive_int
from esser_lab.data.batches import (
    BatchIndexSampler,
    BatchLoader,
    GeneratedBatches,
    ItemBatches,
    TensorBatches,
    _check_seed,
    batch_loader,
)
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
