"""The two-part relation sprites of chapter 19 (esser_lab.data.relations)."""

from __future__ import annotations

import pytest
import torch

from esser_lab.data.relations import GLYPHS, judge_shapes, relation_batch, templates


def test_batch_obeys_the_rule_and_is_seeded() -> None:
    batch = relation_batch(400, torch.Generator().manual_seed(0))
    assert batch.image.shape == (400, 3, 16, 16)
    assert batch.image.min() == -1 and batch.image.max() == 1
    same = batch.same_colour.float().mean()
    assert 0.4 < same < 0.6
    assert set(batch.shape.tolist()) == set(range(len(GLYPHS)))
    again = relation_batch(400, torch.Generator().manual_seed(0))
    assert torch.equal(batch.image, again.image)
    # each half holds exactly one glyph's pixels of its colour
    area = templates().sum((1, 2))[batch.shape]
    for start in (0, 8):
        lit = (batch.image[:, :, :, start : start + 8].amax(1) > -1).sum((1, 2))
        assert torch.equal(lit.float(), area)


def test_judge_recovers_the_glyphs_and_detects_a_broken_rule() -> None:
    batch = relation_batch(300, torch.Generator().manual_seed(1))
    left, right = judge_shapes(batch.image)
    assert torch.equal(left, batch.shape) and torch.equal(right, batch.shape)
    swapped = batch.image.clone()
    swapped[:, :, :, 8:] = batch.image.roll(1, dims=0)[:, :, :, 8:]  # another image's right half
    left, right = judge_shapes(swapped)
    assert torch.equal(right, batch.shape.roll(1))
    with pytest.raises(ValueError, match="16"):
        judge_shapes(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="n must be"):
        relation_batch(0)


def test_judge_refuses_blobs() -> None:
    blob = torch.full((1, 3, 16, 16), -1.0)
    blob[:, 0, 2:10, 1:7] = 1.0  # a filled 8×6 rectangle in each half
    blob[:, 0, 2:10, 9:15] = 1.0
    left, right = judge_shapes(blob)
    assert left.item() == -1 and right.item() == -1
