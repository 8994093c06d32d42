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
    colour_accuracy,
    content_code,
    file_content_claims,
    file_structure_claims,
    file_temporal_claims,
    frame_consistency_error,
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
    assert colour_accuracy(real) == pytest.approx(1.0)
    assert frame_consistency_error(clips.video, clips) < 0.02
    noise = torch.rand(clips.video.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert frame_consistency_error(noise, clips) > 0.3
    grey = Samples(torch.zeros_like(clips.video), clips, clips.colour)
    assert structure_iou(grey) < 0.05 and colour_accuracy(grey) < 0.2  # ties: mostly wrong
    # structure is measured apart from content: the objects repainted grey lose it
    dull = clips.video.mean(dim=2, keepdim=True).expand_as(clips.video)
    assert structure_iou(Samples(dull, clips, clips.colour)) < 0.05
    # a still video (the first frame repeated) ignores the motion: more error than the clip
    still = clips.video[:, :1].expand_as(clips.video)
    assert frame_consistency_error(still, clips) > 2 * frame_consistency_error(clips.video, clips)


def test_swapped_colours_differ_and_score_zero_against_the_clip(clips):
    new = swap_colours(clips.colour, torch.Generator().manual_seed(3))
    assert not (new == clips.colour).any() and not (new == list(COLOURS).index("white")).any()
    real = Samples(clips.video, clips, clips.colour)
    assert colour_accuracy(real, new) == pytest.approx(0.0)


def test_slope_by_hand():
    assert slope([0, 1, 2, 3], [1.0, 0.8, 0.6, 0.4]) == pytest.approx(-0.2)
    assert slope([0, 2], [0.5, 0.5]) == pytest.approx(0.0)


def test_the_card_files_each_claim_the_right_way_round(clips, tmp_path):
    card = Card("16_gen1", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")
    file_structure_claims(card, {0: 0.8, 1: 0.7, 3: 0.5, 5: 0.4})
    assert card["structure-slope"].holds and card["structure-ends"].holds
    real = Samples(clips.video, clips, clips.colour)
    grey = Samples(torch.zeros_like(clips.video), clips, clips.colour)
    new = swap_colours(clips.colour, torch.Generator().manual_seed(3))
    unchanged = Samples(clips.video, clips, new)  # a "swap" that changed nothing: no content
    file_content_claims(card, real, unchanged, new)  # change, the structure kept
    assert not card["content-swap"].holds and card["content-keeps-structure"].holds
    palette = torch.tensor(list(COLOURS.values()))
    video = clips.video.clone()
    for k in range(new.shape[1]):  # the objects repainted in their new colours: both hold
        rgb = palette[new[:, k]].view(-1, 1, 3, 1, 1)
        video = torch.where(clips.mask[:, :, k, None], rgb, video)
    again = Card("16_gen1", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")
    file_content_claims(again, real, Samples(video, clips, new), new)
    assert again["content-swap"].holds and again["content-keeps-structure"].holds
    assert again["content-above-chance"].holds and again["content-above-chance"].kind == "sanity"
    file_temporal_claims(card, {0.0: 0.3, 1.0: 0.2, 2.0: 0.1}, {0.0: 0.9, 1.0: 0.9, 2.0: 0.85})
    assert card["temporal-video-vs-frame"].holds and card["temporal-guidance"].holds
    assert card["temporal-content-cost"].holds
    flat = Card("16_gen1", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")
    file_temporal_claims(flat, {0.0: 0.2, 1.0: 0.3, 2.0: 0.3}, {0.0: 0.9, 1.0: 0.5, 2.0: 0.5})
    assert not flat["temporal-video-vs-frame"].holds and not flat["temporal-content-cost"].holds
    assert grey.video.abs().max() == 0
