"""DataModules: fixed, disjoint, reproducible train/val sets served as whole-batch dicts."""

from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from esser_lab.data.modules import (
    BatchIndexSampler,
    FiguresDataModule,
    ImageFolderDataModule,
    SpritesDataModule,
)


def images_of(loader) -> torch.Tensor:
    return torch.cat([batch["image"] for batch in loader])


def test_figures_module_serves_whole_batches() -> None:
    module = FiguresDataModule(16, batch_size=32, num_train=100, num_val=40, seed=3)
    module.setup("fit")
    batches = list(module.train_dataloader())
    assert [len(batch["image"]) for batch in batches] == [32, 32, 32, 4]
    assert set(batches[0]) == {
        "image", "stickman", "part_masks", "keypoints", "colours", "background", "texture"
    }  # fmt: skip
    assert batches[0]["image"].shape == (32, 3, 16, 16)
    assert len(images_of(module.val_dataloader())) == 40
    assert len(module.train_dataloader()) == 4


def test_train_and_val_are_disjoint_and_fixed_by_the_seed() -> None:
    module = FiguresDataModule(16, batch_size=50, num_train=200, num_val=50, seed=0)
    module.setup()
    train = module.train_set.fields["image"]
    val = images_of(module.val_dataloader())
    assert not (torch.cdist(train.flatten(1), val.flatten(1)) == 0).any()
    again = FiguresDataModule(16, batch_size=50, num_train=200, num_val=50, seed=0)
    again.setup()
    assert torch.equal(again.train_set.fields["image"], module.train_set.fields["image"])
    other = FiguresDataModule(16, batch_size=50, num_train=200, num_val=50, seed=1)
    other.setup()
    assert not torch.equal(other.train_set.fields["image"], module.train_set.fields["image"])
    # seed 1's train set is not seed 0's val set either (streams 2 * seed and 2 * seed + 1)
    assert not torch.equal(other.train_set.fields["image"][:50], val)


def test_train_order_is_reshuffled_per_epoch_and_reproducible() -> None:
    sampler = BatchIndexSampler(10, 4, shuffle=True, seed=5)
    first, second = torch.cat(list(sampler)), torch.cat(list(sampler))
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(sampler)), first)
    ordered = BatchIndexSampler(10, 4, shuffle=False)
    assert [batch.tolist() for batch in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_sprites_module_carries_captions() -> None:
    module = SpritesDataModule(16, batch_size=8, num_train=20, num_val=8, num_objects=2)
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (8, 3, 16, 16) and batch["mask"].shape == (8, 2, 16, 16)
    assert isinstance(batch["caption"], list) and len(batch["caption"]) == 8
    assert len(images_of(module.test_dataloader())) == 8


class _Probe(L.LightningModule):
    """Records the first keypoints of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch["keypoints"][0].clone())
        return (self.weight - batch["image"].mean()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated")
def test_trainer_reshuffles_between_epochs() -> None:
    module = FiguresDataModule(8, batch_size=16, num_train=32, num_val=16)
    probe = _Probe()
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(probe, datamodule=module)
    assert len(probe.seen) == 4
    assert not torch.equal(torch.stack(probe.seen[:2]), torch.stack(probe.seen[2:]))


def test_image_folder_module(tmp_path: Path) -> None:
    for i in range(10):
        Image.new("RGB", (12, 10), (25 * i, 0, 0)).save(tmp_path / f"{i}.png")
    module = ImageFolderDataModule(tmp_path, 8, batch_size=4, val_fraction=0.2, seed=1)
    module.setup()
    assert len(module.train_set) == 8 and len(module.val_set) == 2
    assert not set(module.train_set.indices) & set(module.val_set.indices)
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8) and batch["label"].tolist() == [0, 0, 0, 0]
    assert len(images_of(module.val_dataloader())) == 2


def test_clear_errors_for_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train must be a positive int"):
        FiguresDataModule(16, batch_size=4, num_train=0, num_val=4)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        SpritesDataModule(16, batch_size=4, num_train=4, num_val=4, seed=-1)
    with pytest.raises(ValueError, match="num_objects must be 1 or 2"):
        SpritesDataModule(16, batch_size=4, num_train=4, num_val=4, num_objects=0)
    with pytest.raises(ValueError, match=r"val_fraction must lie in \(0, 1\)"):
        ImageFolderDataModule(tmp_path, 8, batch_size=4, val_fraction=1.0)
    with pytest.raises(RuntimeError, match="setup"):
        FiguresDataModule(16, batch_size=4, num_train=4, num_val=4).train_dataloader()
    with pytest.raises(FileNotFoundError, match="never downloads"):
        ImageFolderDataModule(tmp_path / "missing", 8, batch_size=4).setup()
