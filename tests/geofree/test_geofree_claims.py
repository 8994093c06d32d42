"""The code that decides chapter 12's claims (esser_lab.geofree.claims)."""

import math

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.geofree.claims import (
    DepthProbe,
    ViewScores,
    composite,
    depth_probe,
    file_claims,
    patch_log_depth,
    psnr,
    raw_patches,
    sample_variance,
)


def test_psnr_known_values_and_masks():
    target = torch.zeros(2, 3, 4, 4)
    prediction = torch.full_like(target, 0.2)  # MSE 0.04 → 10 log10(4 / 0.04) = 20 dB
    assert psnr(prediction, target) == pytest.approx(20.0, abs=1e-4)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 0] = True
    prediction[:, :, 1:] = 1.0  # errors outside the mask do not count
    assert psnr(prediction, target, mask) == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="selects no pixel"):
        psnr(prediction, target, torch.zeros_like(mask))


def test_composite_takes_the_prediction_only_where_disoccluded():
    target, prediction = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    hole = torch.tensor([[[[True, False], [False, False]]]])
    out = composite(prediction, target, hole)
    assert out[0, :, 0, 0].eq(1).all() and out[0, :, 1].eq(0).all()


def test_patch_depth_and_raw_patches_are_row_major():
    depth = torch.arange(16.0).reshape(1, 1, 4, 4).add(1)
    patches = patch_log_depth(depth, (2, 2))
    assert patches.shape == (1, 4)
    assert patches[0, 1] == pytest.approx(depth[0, 0, :2, 2:].log().mean().item())
    images = torch.arange(48.0).reshape(1, 3, 4, 4)
    raw = raw_patches(images, (2, 2))
    assert raw.shape == (1, 4, 12) and raw[0, 1, 0] == images[0, 0, 0, 2]


def test_depth_probe_reads_a_linear_signal_and_not_noise():
    g = torch.Generator().manual_seed(0)
    depth = torch.randn(40, 4, generator=g)
    informative = depth[..., None] * torch.randn(1, 1, 6, generator=g) + 0.01 * torch.randn(
        40, 4, 6, generator=g
    )
    noise = torch.randn(40, 4, 6, generator=g)
    probe = depth_probe([noise, informative, noise], noise, depth,
                        [noise, informative, noise], noise, depth)  # fmt: skip
    assert probe.middle == 1 and probe.middle_r2 > 0.95 and probe.layers[0] < 0.5


def test_sample_variance_separates_disoccluded_from_visible():
    g = torch.Generator().manual_seed(0)
    samples = torch.zeros(4, 2, 3, 4, 4)
    hole = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    hole[:, :, :, :2] = True
    samples[:, :, :, :, :2] = torch.randn(4, 2, 3, 4, 2, generator=g)
    disoccluded, visible = sample_variance(samples, hole)
    assert disoccluded > 0.3 and visible == 0.0
    with pytest.raises(ValueError, match="k ≥ 2"):
        sample_variance(samples[:1], hole)


def test_file_claims_puts_five_decided_claims_on_the_card(tmp_path):
    card = Card("12_geofree", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")
    implicit = ViewScores(10.0, 5.0, 15.0, 12.0)
    explicit = ViewScores(12.0, 4.0, 18.0, 13.0)
    file_claims(card, implicit, explicit, 300, DepthProbe((0.1, 0.5, 0.3), 0.2, 1), (0.2, 0.05))
    assert [c.key for c in card.claims] == [
        "large-motion", "disoccluded", "depth-probe", "depth-probe-blocks", "sample-variance",
    ]  # fmt: skip
    verdicts = {c.key: c.holds for c in card.claims}
    assert verdicts == {
        "large-motion": True, "disoccluded": False, "depth-probe": True,
        "depth-probe-blocks": True, "sample-variance": True,
    }  # fmt: skip
    assert all(math.isfinite(c.margin) for c in card.claims)
