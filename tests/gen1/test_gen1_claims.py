"""Chapter 16's claim metrics on clips whose answers are known: the real clips score perfectly,
noise and wrong colours score badly, the card files the comparisons the right way round."""

from __future__ import annotations

import time

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data.sprites import COLOURS
from esser_lab.data.video import sample_clips
from esser_lab.gen1.claims import (
    Samples,
    add_paired,
    clip_slopes,
    colour_accuracy,
    content_code,
    file_content_claims,
    file_structure_claims,
    file_temporal_claims,
    frame_consistency_error,
    paired_bootstrap,
    slope,
    structure_iou,
    swap_colours,
)


@pytest.fixture(scope="module")
def clips():
    return sample_clips(8, frames=6, size=16, objects=2, generator=torch.Generator().manual_seed(0))


def test_content_code_is_nearest_first(clips):
    code = content_code(clips.colour, clips.texture, clips.object_depth)
    assert code.shape == clips.content.shape
    nearest = clips.object_depth.argmin(1)
    rows = torch.arange(len(nearest))
    assert torch.equal(code[:, :8].argmax(1), clips.colour[rows, nearest])
    one = sample_clips(4, frames=2, objects=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(content_code(one.colour, one.texture, one.object_depth), one.content)


def test_the_real_clips_score_perfectly_and_noise_does_not(clips):
    real = Samples(clips.video, clips, clips.colour)
    assert structure_iou(real) > 0.9
    # another clip's masks: what a model that ignores the structure scores
    assert structure_iou(real, clips.mask.roll(1, dims=0)) < 0.5 * structure_iou(real)
    assert colour_accuracy(real) == pytest.approx(1.0)
    # relative to the clip's variance: bilinear warping only for the real clips; up to 2 for
    # independent noise frames (twice the variance; sub-pixel warping averages some away)
    assert frame_consistency_error(clips.video, clips) < 0.15
    noise = torch.rand(clips.video.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert 1.0 < frame_consistency_error(noise, clips) < 2.0
    grey = Samples(torch.zeros_like(clips.video), clips, clips.colour)
    # no saturated pixel: no object was drawn, so no colour is right (not a tie at chance)
    assert structure_iou(grey) < 0.05 and colour_accuracy(grey) == 0.0
    # structure is measured apart from content: the objects repainted grey lose it
    dull = clips.video.mean(dim=2, keepdim=True).expand_as(clips.video)
    assert structure_iou(Samples(dull, clips, clips.colour)) < 0.05
    # a still video (the first frame repeated) ignores the motion: more error than the clip
    still = clips.video[:, :1].expand_as(clips.video)
    assert frame_consistency_error(still, clips) > 2 * frame_consistency_error(clips.video, clips)
    # shrinking the contrast cannot lower the (relative) frame error
    for video in (noise, still):
        assert frame_consistency_error(0.1 * video, clips) == pytest.approx(
            frame_consistency_error(video, clips), rel=1e-4
        )


def test_colour_is_read_from_the_generated_object_not_the_conditioning_mask(clips):
    one = sample_clips(4, frames=3, size=16, objects=1, generator=torch.Generator().manual_seed(5))
    moved = one.video.roll(5, dims=-1)  # the object drawn 5 px away from the conditioning mask
    assert colour_accuracy(Samples(moved, one, one.colour)) == pytest.approx(1.0, abs=0.05)
    per = colour_accuracy(Samples(one.video, one, one.colour), per_clip=True)
    assert per.shape == (4,)


def test_paired_bootstrap_by_hand():
    base = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert paired_bootstrap(base + 0.1, base, "higher") == pytest.approx((0.35, 0.25, 0.1))
    assert paired_bootstrap(base - 0.1, base, "lower")[2] == pytest.approx(0.1)
    # one clip carries the whole mean gain: the lower bound is not above zero
    lucky = base + torch.tensor([0.0, 0.0, 0.0, 1.0])
    ours, _, lower = paired_bootstrap(lucky, base, "higher")
    assert ours > base.mean() and lower <= 0
    nan = torch.tensor([float("nan"), 0.2, 0.3, 0.4])
    assert paired_bootstrap(nan, base, "higher")[1] == pytest.approx(0.3)  # NaN pairs left out


def test_add_paired_holds_exactly_on_the_lower_bound_and_gates(tmp_path):
    card = Card("16_gen1", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")
    base = torch.tensor([0.1, 0.2, 0.3, 0.4])
    common = dict(metric="m", baseline_name="b", why="w", better="higher")
    out = add_paired(card, "sure", "c", ours=base + 0.1, baseline=base, **common)
    assert card["sure"].holds and card["sure"].margin == pytest.approx(out["lower"], abs=1e-4)
    lucky = base + torch.tensor([0.0, 0.0, 0.0, 1.0])
    add_paired(card, "lucky", "c", ours=lucky, baseline=base, **common)
    assert not card["lucky"].holds  # a higher mean that one clip carries
    add_paired(card, "gated", "c", ours=base + 0.1, baseline=base, gate="no", **common)
    assert not card["gated"].holds and "gated off" in card["gated"].baseline


def test_swapped_colours_differ_and_score_zero_against_the_clip(clips):
    new = swap_colours(clips.colour, torch.Generator().manual_seed(3))
    assert not (new == clips.colour).any() and not (new == list(COLOURS).index("white")).any()
    real = Samples(clips.video, clips, clips.colour)
    assert colour_accuracy(real, new) == pytest.approx(0.0)


def test_slopes_by_hand():
    assert slope([0, 1, 2, 3], [1.0, 0.8, 0.6, 0.4]) == pytest.approx(-0.2)
    assert slope([0, 2], [0.5, 0.5]) == pytest.approx(0.0)
    ys = [torch.tensor([1.0, 0.5]), torch.tensor([0.8, 0.5]), torch.tensor([0.6, 0.5])]
    assert clip_slopes([0, 1, 2], ys).tolist() == pytest.approx([-0.2, 0.0])


def _repainted(clips, colour):
    palette = torch.tensor(list(COLOURS.values()))
    video = clips.video.clone()
    for k in range(colour.shape[1]):
        rgb = palette[colour[:, k]].view(-1, 1, 3, 1, 1)
        video = torch.where(clips.mask[:, :, k, None], rgb, video)
    return video


def test_the_card_files_each_claim_the_right_way_round_and_gates(clips, tmp_path):
    def fresh():
        return Card("16_gen1", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")

    card = fresh()
    b = len(clips.video)
    falling = {t: torch.linspace(0.9, 0.5, b) - 0.05 * t for t in (0, 1, 3, 5)}
    flat = {t: torch.full((b,), 0.2) for t in (0, 1, 3, 5)}
    file_structure_claims(card, falling, flat)
    assert card["structure-followed"].holds and card["structure-followed"].kind == "sanity"
    assert card["structure-slope"].holds and card["structure-ends"].holds
    ignored = fresh()  # samples that match any clip's masks equally: everything gated off
    file_structure_claims(ignored, falling, falling)
    assert not any(c.holds for c in ignored.claims)

    real = Samples(clips.video, clips, clips.colour)
    grey = Samples(torch.zeros_like(clips.video), clips, clips.colour)  # content-free: nothing
    new = swap_colours(clips.colour, torch.Generator().manual_seed(3))
    unchanged = Samples(clips.video, clips, new)  # a "swap" that changed nothing
    file_content_claims(card, real, unchanged, new, grey)
    assert card["content-above-chance"].holds and not card["content-swap"].holds
    assert not card["content-keeps-structure"].holds  # gated: the swap did not work
    again = fresh()
    file_content_claims(again, real, Samples(_repainted(clips, new), clips, new), new, grey)
    assert again["content-swap"].holds and again["content-keeps-structure"].holds
    at_chance = fresh()  # the original colour no better than the content-free run: gated
    file_content_claims(at_chance, grey, Samples(_repainted(clips, new), clips, new), new, grey)
    assert not at_chance["content-above-chance"].holds and not at_chance["content-swap"].holds

    down = {0.0: torch.linspace(0.3, 0.4, b), 1.0: torch.linspace(0.2, 0.3, b)}
    down[2.0] = down[1.0] - 0.1
    accuracy = {w: torch.full((b,), 0.9) for w in down}
    file_temporal_claims(card, down, accuracy, content_learned=True)
    assert card["temporal-video-vs-frame"].holds and card["temporal-guidance"].holds
    assert card["temporal-content-cost"].holds and card["temporal-guidance"].paper is None
    up = fresh()
    file_temporal_claims(
        up, {w: v.flip(0) + w for w, v in down.items()}, accuracy, content_learned=False
    )
    assert not any(c.holds for c in up.claims)  # worse with ω_t, and the cost gated off
