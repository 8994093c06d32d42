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


def file(tmp_path, ours, lorenz, kmeans, rec, found=None):
    found = levels() if found is None else found
    return file_claims(card(tmp_path), ours, lorenz, kmeans, rec, found, 512, 16, 200, 600)


def test_files_the_claim_and_the_sanity_rows(tmp_path):
    filed = file(tmp_path, 0.3, 0.2, 0.15, 30.0)
    assert tuple(c.key for c in filed.claims) == KEYS
    claim = filed["part-miou-vs-lorenz"]
    assert claim.holds and claim.kind == "claim"
    assert claim.margin == pytest.approx(0.1)
    assert "200 steps (ours 600)" in claim.baseline and "16 px" in claim.metric
    assert filed["part-miou-vs-kmeans"].kind == "sanity" and filed["part-miou-vs-kmeans"].holds
    assert filed["rec-below-pose-free"].kind == "sanity"
    assert filed["rec-below-pose-free"].holds  # 30 is below the pose-free level


def test_lorenz_that_wins_makes_the_claim_fail_whatever_k_means_gives(tmp_path):
    filed = file(tmp_path, 0.2, 0.25, 0.1, 500.0)
    assert not filed["part-miou-vs-lorenz"].holds
    assert filed["part-miou-vs-lorenz"].margin == pytest.approx(-0.05)
    assert filed["part-miou-vs-kmeans"].holds  # the sanity row does not rescue the claim
    assert not filed["rec-below-pose-free"].holds


def test_k_means_that_wins_fails_only_the_sanity_row(tmp_path):
    filed = file(tmp_path, 0.07, 0.05, 0.147, 30.0)
    assert filed["part-miou-vs-lorenz"].holds
    assert not filed["part-miou-vs-kmeans"].holds
    assert filed["part-miou-vs-kmeans"].margin == pytest.approx(-0.077)


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ValueError, match="lorenz_miou"):
        file(tmp_path, 0.5, 1.5, 0.1, 30.0)
    with pytest.raises(ValueError, match="IoU"):
        file(tmp_path, 1.5, 0.1, 0.1, 30.0)
    with pytest.raises(KeyError, match="pose unknown"):
        file(tmp_path, 0.2, 0.1, 0.1, 30.0, found={})
    with pytest.raises(ValueError, match="steps"):
        file_claims(card(tmp_path), 0.2, 0.1, 0.1, 30.0, levels(), 512, 16, 0, 600)
