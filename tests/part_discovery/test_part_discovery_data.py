"""PartPairsDataModule: a fixed set at tiny, batches drawn when asked for at small/full."""

import pytest
import torch

from esser_lab.data import figures
from esser_lab.data.modules import FiguresDataModule, GeneratedBatches
from esser_lab.part_discovery.training import PartPairsDataModule


def _batches(data: PartPairsDataModule, n: int) -> list[dict]:
    data.setup("fit")
    loader = iter(data.train_dataloader())
    return [next(loader) for _ in range(n)]


def test_fixed_set_is_the_same_pairs_as_before():
    data = PartPairsDataModule(8, 4, 12, num_val=4, seed=3)
    data.setup("fit")
    view0, view1 = figures.same_appearance_pairs(12, 8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(data.train_set.fields["view0"], view0.image)
    assert torch.equal(data.train_set.fields["view1"], view1.image)


def test_on_the_fly_draws_batches_without_holding_the_set():
    data = PartPairsDataModule(8, 4, 100_000, num_val=4, seed=3, on_the_fly=True)
    first = _batches(data, 3)
    assert isinstance(data.train_set, GeneratedBatches) and len(data.train_set) == 100_000
    assert first[0]["view0"].shape == (4, 3, 8, 8) and first[0]["view1"].shape == (4, 3, 8, 8)
    assert not torch.equal(first[0]["view0"], first[1]["view0"])  # fresh pairs every batch
    again = _batches(PartPairsDataModule(8, 4, 100_000, num_val=4, seed=3, on_the_fly=True), 3)
    assert all(torch.equal(a["view0"], b["view0"]) for a, b in zip(first, again, strict=True))
    other = _batches(PartPairsDataModule(8, 4, 100_000, num_val=4, seed=4, on_the_fly=True), 1)
    assert not torch.equal(first[0]["view0"], other[0]["view0"])
    assert data.val_set.fields["view0"].shape == (4, 3, 8, 8)  # validation: made once


def test_generated_batches_reject_a_bad_index():
    data = PartPairsDataModule(8, 4, 10, num_val=4, seed=0, on_the_fly=True)
    data.setup("fit")
    with pytest.raises(ValueError, match="non-empty 1-d batch of indices"):
        data.train_set[torch.tensor([], dtype=torch.long)]


def test_every_procedural_module_can_draw_on_the_fly():
    """Figures too (chapters 1-2 at small): same fields as the held set, nothing held."""
    held = FiguresDataModule(8, 4, 12, num_val=4, seed=1)
    fly = FiguresDataModule(8, 4, 100_000, num_val=4, seed=1, on_the_fly=True)
    held.setup("fit")
    fly.setup("fit")
    batch = next(iter(fly.train_dataloader()))
    assert set(batch) == set(held.train_set.fields) and batch["image"].shape == (4, 3, 8, 8)
    assert torch.equal(fly.val_set.fields["image"], held.val_set.fields["image"])
    with pytest.raises(TypeError, match="on_the_fly must be a bool"):
        FiguresDataModule(8, 4, 12, num_val=4, on_the_fly="yes")
