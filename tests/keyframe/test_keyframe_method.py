"""The fill problems, the loss and the metrics, the Lightning system and the claims at tiny
size: exact values, the promised properties and errors."""

from dataclasses import replace

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data.video import flow_between, sample_clips
from esser_lab.keyframe.claims import ArmScores, distance_psnr, file_keyframe_claims, score_arm
from esser_lab.keyframe.method import (
    KeyframeSamples,
    box_masks,
    composite,
    hole_highfreq_error,
    hole_psnr,
    inpainting_loss,
    keyframe_samples,
    laplacian,
)
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.keyframe.training import LitKeyframe

TINY = KeyframeConfig.tiny()


@pytest.fixture(scope="module")
def clips():
    return sample_clips(24, 8, 16, generator=torch.Generator().manual_seed(0))


def test_samples_shapes_flow_and_corruption(clips):
    s = keyframe_samples(clips, torch.Generator().manual_seed(1), noise=0.0)
    assert s.image.shape == (24, 3, 16, 16) and s.keys.shape == (24, 2, 3, 16, 16)
    assert s.flows.shape == (24, 2, 2, 16, 16) and s.flow_errors.shape == (24, 2, 1, 16, 16)
    assert bool(((s.target > 0) & (s.target < 7)).all())
    assert torch.equal(s.distance, torch.minimum(s.target, 7 - s.target))
    assert 0 <= float(s.image.min()) and float(s.image.max()) <= 1
    exact, valid = flow_between(clips, s.target, 0)
    assert torch.equal(s.flows[:, 0], exact)  # noise 0, nothing corrupted: the exact flow
    assert torch.equal(s.flow_errors[:, 0], (~valid).float())  # error = 1 exactly where invalid
    one = keyframe_samples(clips, torch.Generator().manual_seed(1), corrupt_count=1)
    both = keyframe_samples(clips, torch.Generator().manual_seed(1), corrupt_count=2)
    assert torch.equal(one.corrupted.sum(1), torch.ones(24, dtype=torch.long))
    assert bool(both.corrupted.all())
    clean = keyframe_samples(clips, torch.Generator().manual_seed(1))
    assert torch.equal(one.mask, clean.mask) and torch.equal(one.target, clean.target)
    wrong = (both.flows - clean.flows).norm(dim=2)  # (n, f, H, W)
    hole = clean.mask[:, None, 0].expand_as(wrong).bool()
    assert bool((wrong[hole] > 3).all())  # a large wrong flow over the whole hole ...
    assert torch.equal(both.flow_errors, clean.flow_errors)  # ... that the error does not flag
    with pytest.raises(ValueError, match="corrupt_count"):
        keyframe_samples(clips, torch.Generator(), corrupt_count=3)
    with pytest.raises(ValueError, match="keys"):
        keyframe_samples(clips, torch.Generator(), keys=(0, 8))
    single = keyframe_samples(clips, torch.Generator().manual_seed(2), keys=(0,), target=5)
    assert single.keys.shape[1] == 1 and bool((single.distance == 5).all())


def test_box_masks_are_single_boxes_within_bounds():
    m = box_masks(50, 16, 0.25, 0.5, torch.Generator().manual_seed(0))
    rows, cols = m[:, 0].any(dim=2), m[:, 0].any(dim=1)
    area = rows.sum(1) * cols.sum(1)
    assert torch.equal(m[:, 0].sum(dim=(1, 2)).long(), area)  # filled rectangles
    assert bool(((rows.sum(1) >= 4) & (rows.sum(1) <= 8)).all())


def test_loss_and_metrics_by_hand():
    image = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # half the pixels
    prediction = torch.full_like(image, 0.5)
    prediction[..., 2:, :] = 0.1
    assert inpainting_loss(prediction, image, mask).item() == pytest.approx(0.5 + 0.1)
    assert inpainting_loss(prediction, image, mask, known_weight=0).item() == pytest.approx(0.5)
    filled = composite(prediction, image, mask)
    assert torch.equal(filled[..., 2:, :], image[..., 2:, :])
    assert hole_psnr(filled, image, mask) == pytest.approx(10 * torch.log10(torch.tensor(4.0)))
    flat = torch.full((1, 1, 5, 5), 0.3)
    assert torch.equal(laplacian(flat), torch.zeros_like(flat))
    spike = torch.zeros(1, 1, 5, 5)
    spike[..., 2, 2] = 1
    assert laplacian(spike)[0, 0, 2, 2] == -4 and laplacian(spike)[0, 0, 1, 2] == 1
    m = torch.ones(1, 1, 5, 5)
    assert hole_highfreq_error(flat, flat + 0.2, m) == 0  # a constant offset has no HF error
    with pytest.raises(ValueError, match="must match"):
        inpainting_loss(prediction[:, :2], image, mask)


def test_loss_falls_on_one_batch_and_same_seed_same_weights(clips):
    s = keyframe_samples(clips[:8], torch.Generator().manual_seed(1), corrupt=0.5)
    batch = s.as_dict()
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        system = LitKeyframe(KeyframeGenerator(TINY), learning_rate=2e-3)
        optimizer = system.configure_optimizers()
        losses = []
        for _ in range(25):
            optimizer.zero_grad()
            loss = system.training_step(batch, 0)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        weights.append(torch.cat([p.detach().flatten() for p in system.parameters()]))
    assert losses[-1] < 0.7 * losses[0]
    assert torch.equal(weights[0], weights[1])
    assert len(system.history) == 25 and system.history[-1]["loss"] == pytest.approx(losses[-1])
    with pytest.raises(KeyError, match="flows"):
        system.training_step({k: v for k, v in batch.items() if k != "flows"}, 0)
    with pytest.raises(TypeError, match="KeyframeGenerator"):
        LitKeyframe(torch.nn.Linear(2, 2))


def test_scores_and_claims_are_decided_by_the_numbers(clips):
    seed = torch.Generator
    clean = keyframe_samples(clips, seed().manual_seed(1))
    one = keyframe_samples(clips, seed().manual_seed(1), corrupt_count=1)
    every = keyframe_samples(clips, seed().manual_seed(1), corrupt_count=2)
    torch.manual_seed(0)
    net = KeyframeGenerator(TINY).eval()
    scores = score_arm(net, clean, one, every)
    assert scores.psnr_clean == pytest.approx(
        hole_psnr(composite(_raw(net, clean), clean.image, clean.mask), clean.image, clean.mask)
    )
    with pytest.raises(ValueError, match="clean"):
        score_arm(net, one, one, every)
    with pytest.raises(ValueError, match="all_wrong"):
        score_arm(net, clean, one, one)
    distances = distance_psnr(net, clips[:6], seed=3)
    assert sorted(distances) == list(range(1, 8))
    arms = {
        "none": ArmScores(10, 10, 10, 0.5, 0.5, 0.5),
        "global": ArmScores(11, 11, 11, 0.45, 0.45, 0.45),
        "local": ArmScores(13, 10.5, 9, 0.30, 0.35, 0.5),
        "both": ArmScores(13.5, 12, 10.5, 0.31, 0.33, 0.45),
    }
    card = Card("15_keyframe", "tiny", 0, 0.0)
    file_keyframe_claims(card, arms, {1: 14.0, 7: 12.0}, steps=10)
    held = {c.key: c.holds for c in card.claims}
    assert held == {
        "keyframes-help": True,
        "global-vs-none": True,
        "both-vs-global": True,
        "both-vs-local-corrupt": True,
        "local-sharper": True,
        "global-robust": True,
        "both-sharper-than-global": True,
        "distance": True,
    }
    flipped = dict(arms, local=replace(arms["local"], psnr_all_wrong=12.0, highfreq_clean=0.46))
    card = Card("15_keyframe", "tiny", 0, 0.0)
    file_keyframe_claims(card, flipped, {1: 12.0, 7: 12.5}, steps=10)
    held = {c.key: c.holds for c in card.claims}
    assert not held["global-robust"] and not held["local-sharper"] and not held["distance"]
    with pytest.raises(KeyError, match="none"):
        file_keyframe_claims(card, {"both": arms["both"]}, {1: 1.0, 2: 0.0}, steps=1)


@torch.no_grad()
def _raw(net: KeyframeGenerator, s: KeyframeSamples) -> torch.Tensor:
    image, keys = s.inputs()
    return net(image, keys, s.flows, s.flow_errors)
