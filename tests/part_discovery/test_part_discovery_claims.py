"""Chapter 8's card and the reference levels of the reconstruction loss."""

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import figures
from esser_lab.part_discovery.claims import (
    KEYS,
    POSE_FREE,
    file_claims,
    half_sse,
    reconstruction_levels,
)


def card(tmp_path) -> Card:
    return Card("08_part_discovery", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")


def levels() -> dict[str, float]:
    test = figures.sample(64, 16, generator=torch.Generator().manual_seed(0))
    return reconstruction_levels(test.image, test.part_masks, test.colours, test.background)


def test_levels_are_ordered_by_what_the_oracle_knows():
    found = levels()
    silhouette = found["silhouette known, one colour"]
    placed = found["silhouette known, part guessed from position"]
    assert found[POSE_FREE] > silhouette > placed > 0


def test_levels_reproduce_the_image_when_the_oracle_knows_everything():
    test = figures.sample(1, 16, generator=torch.Generator().manual_seed(1))
    found = reconstruction_levels(test.image, test.part_masks, test.colours, test.background)
    assert found[POSE_FREE] < half_sse(test.image, torch.zeros_like(test.image))
    with pytest.raises(ValueError, match="part_masks"):
        reconstruction_levels(test.image, test.part_masks[0], test.colours, test.background)


def test_files_the_claim_and_the_sanity_row(tmp_path):
    filed = file_claims(card(tmp_path), 0.3, 0.15, 30.0, levels(), 512)
    assert tuple(c.key for c in filed.claims) == KEYS
    assert filed["part-miou"].holds and filed["part-miou"].kind == "claim"
    assert filed["rec-below-pose-free"].kind == "sanity"
    assert filed["rec-below-pose-free"].holds  # 30 is below the pose-free level


def test_k_means_that_wins_makes_the_claim_fail(tmp_path):
    filed = file_claims(card(tmp_path), 0.07, 0.147, 500.0, levels(), 512)
    assert not filed["part-miou"].holds
    assert filed["part-miou"].margin == pytest.approx(-0.077)
    assert not filed["rec-below-pose-free"].holds


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ValueError, match="IoU"):
        file_claims(card(tmp_path), 1.5, 0.1, 30.0, levels(), 512)
    with pytest.raises(KeyError, match="pose unknown"):
        file_claims(card(tmp_path), 0.2, 0.1, 30.0, {}, 512)
