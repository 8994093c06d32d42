"""The code that decides chapter 12's claims (esser_lab.geofree.claims)."""

import math

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import scenes
from esser_lab.geofree.claims import (
    CONTROLS,
    DepthProbe,
    ViewScores,
    box_patches,
    composite,
    depth_probe,
    feature_distance,
    file_claims,
    patch_log_depth,
    psim_style,
    psnr,
    raw_patches,
    sample_variance,
    score_views,
)
from esser_lab.metrics.fid import load_feature_net


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


def test_sample_variance_is_per_code_and_a_code_is_disoccluded_from_half_its_pixels():
    g = torch.Generator().manual_seed(0)
    samples = torch.zeros(4, 2, 3, 8, 8)
    hole = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    hole[:, :, :4, :4] = True  # code (0, 0) fully disoccluded
    hole[:, :, :2, 4:] = True  # code (0, 1) half: counts as disoccluded
    hole[:, :, 4, 4:] = True  # code (1, 1) a quarter: counts as visible
    samples[:, :, :, :4, :] = torch.randn(
        4, 2, 3, 4, 8, generator=g
    )  # codes (0, 0) and (0, 1) vary
    disoccluded, visible = sample_variance(samples, hole, (2, 2))
    assert disoccluded > 0.5 and visible == 0.0
    samples[:, :, :, 4:, 4:] = 5 * torch.randn(4, 2, 3, 4, 4, generator=g)  # code (1, 1) varies
    assert sample_variance(samples, hole, (2, 2))[1] > disoccluded  # visible now varies more
    with pytest.raises(ValueError, match="k ≥ 2"):
        sample_variance(samples[:1], hole, (2, 2))
    with pytest.raises(ValueError, match="both disoccluded and visible"):
        sample_variance(samples, torch.zeros_like(hole), (2, 2))


def test_the_paired_distance_tells_a_right_view_from_a_wrong_one():
    net = load_feature_net()
    pairs = scenes.sample_pairs(32, 16, generator=torch.Generator().manual_seed(0))
    target = pairs.target
    assert feature_distance(target, target, net).abs().max() < 1e-6
    blurred = torch.nn.functional.avg_pool2d(target, 3, 1, 1, count_include_pad=False)
    other = target.roll(1, 0)  # another scene's (sharp, in-distribution) target
    close, wrong = psim_style(blurred, target, net), psim_style(other, target, net)
    assert 0 < close < wrong / 5
    # per pair: another scene scores worse than the blur on (nearly) every pair
    assert (
        feature_distance(other, target, net) > feature_distance(blurred, target, net)
    ).float().mean() > 0.9
    with pytest.raises(ValueError, match="same shape"):
        feature_distance(target, target[:, :, :8], net)
    scores = score_views(blurred, target, pairs.disoccluded, torch.ones(32), net)
    assert scores.psim_large == pytest.approx(close) and scores.psim_disoccluded < close


def test_box_patches_from_the_source_depth():
    depth = torch.full((1, 1, 4, 4), scenes.WALL_DEPTH)
    depth[:, :, :2, :2] = 2.0  # the top-left patch fully on a box
    depth[:, :, 0, 2:] = 2.0  # the top-right patch half on a box
    depth[:, :, 2, 0] = 2.0  # the bottom-left patch a quarter on a box
    assert box_patches(depth, (2, 2)).tolist() == [[True, True, False, False]]


def test_depth_probe_on_box_patches_only():
    g = torch.Generator().manual_seed(0)
    depth = torch.randn(40, 4, generator=g)
    boxes = torch.zeros(40, 4, dtype=torch.bool)
    boxes[:, :2] = True
    noise = torch.randn(40, 4, 6, generator=g)
    informative_on_boxes = noise.clone()
    informative_on_boxes[:, :2] = depth[:, :2, None] * torch.randn(1, 1, 6, generator=g)
    probe = depth_probe([noise, informative_on_boxes, noise], noise, depth,
                        [noise, informative_on_boxes, noise], noise, depth,
                        train_boxes=boxes, test_boxes=boxes)  # fmt: skip
    assert probe.box_middle_r2 > 0.95 and probe.box_layers[0] < 0.5
    assert probe.middle_r2 < probe.box_middle_r2  # on all patches the noise patches dilute it
    with pytest.raises(ValueError, match="both train_boxes and test_boxes"):
        depth_probe([noise], noise, depth, [noise], noise, depth, train_boxes=boxes)


def _scores(psim_large: float, psim_disoccluded: float) -> ViewScores:
    return ViewScores(psim_large, psim_disoccluded, 1.0, 1.0, 15.0, 12.0)


def test_file_claims_puts_five_decided_claims_and_four_controls_on_the_card(tmp_path):
    card = Card("12_geofree", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")
    implicit, explicit = _scores(2.0, 0.5), _scores(2.5, 0.4)
    controls = {"source": _scores(3.0, 0.45), "other-scene": _scores(1.5, 0.9)}
    probe = DepthProbe((0.1, 0.5, 0.3), 0.2, 1, box_layers=(0.3, 0.2, 0.1))
    file_claims(card, implicit, explicit, 300, probe, (0.2, 0.05), controls)
    assert [c.key for c in card.claims if c.kind == "claim"] == [
        "large-motion", "disoccluded", "depth-probe", "depth-probe-blocks", "sample-variance",
    ]  # fmt: skip
    verdicts = {c.key: c.holds for c in card.claims}
    assert verdicts == {
        "large-motion": True, "disoccluded": False, "depth-probe": True,
        "depth-probe-blocks": False, "sample-variance": True,
        "large-motion-vs-source": True, "large-motion-vs-other-scene": False,
        "disoccluded-vs-source": False, "disoccluded-vs-other-scene": True,
    }  # fmt: skip
    assert {c.key for c in card.claims if c.kind == "sanity"} == {
        f"{view}-vs-{control}" for view in ("large-motion", "disoccluded") for control in CONTROLS
    }
    assert all(math.isfinite(c.margin) for c in card.claims)
    with pytest.raises(ValueError, match="controls must have the keys"):
        file_claims(card, implicit, explicit, 300, probe, (0.2, 0.05), {"source": implicit})
