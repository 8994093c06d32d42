"""Chapter 17's claims: each compares the paper's pair in the stated direction and can fail."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.sd3.claims import (
    OURS,
    BackboneRun,
    SampleScores,
    StabilityRun,
    file_backbone_claims,
    file_formulation_claims,
    file_qk_norm_claims,
    file_sanity,
    file_shift_claims,
    log_slope,
    loss_spike,
    relative_drop,
    sample_latents,
    score_samples,
)


def S(fid: float, accuracy: float, seconds: float = 1.0) -> SampleScores:  # noqa: N802
    """Scores whose attribute accuracy is the caption accuracy (what the claims compare)."""
    return SampleScores(fid, accuracy, seconds, attributes=accuracy)


def _card() -> Card:
    return Card("17_sd3", "tiny", 0, 0.0, seeds_file=None)


def _runs(ours_fid=(20.0, 10.0), eps_fid=(40.0, 12.0), rf_fid=(30.0, 11.0), accuracy=0.5):
    """fid pairs are (5 steps, 25 steps)."""

    def run(fids, acc):
        return {5: S(fids[0], acc, 1.0), 25: S(fids[1], acc + 0.1, 2.0)}

    return {OURS: run(ours_fid, accuracy), "rf": run(rf_fid, 0.3), "eps/linear": run(eps_fid, 0.2)}


def test_formulation_claims_hold_in_the_papers_direction_and_fail_otherwise():
    card = _card()
    file_formulation_claims(card, _runs(), train_steps=100)
    assert {c.key for c in card.claims} == {
        f"lognorm-vs-{b}-{m}-{s}"
        for b in ("rf", "eps")
        for m in ("fid", "accuracy")
        for s in ("few", "many")
    } | {"rf-degrades-least"}
    assert all(c.holds for c in card.claims)
    # relative drop 25 -> 5: ours (20 - 10) / 10 = 1.0, eps/linear (40 - 12) / 12
    assert card["rf-degrades-least"].our_value == pytest.approx(1.0)
    assert card["rf-degrades-least"].baseline_value == pytest.approx(28 / 12, rel=1e-3)
    assert card["lognorm-vs-eps-fid-many"].paper.value == 45.78
    assert card["lognorm-vs-eps-fid-many"].paper.baseline == 48.42
    assert card["lognorm-vs-rf-fid-many"].paper.baseline == 49.70
    assert card["lognorm-vs-rf-fid-few"].paper.baseline == 6.50  # Table 1, 5-step rank
    worse = _card()
    file_formulation_claims(worse, _runs(ours_fid=(60.0, 15.0), accuracy=0.05), train_steps=100)
    held = {c.key: c.holds for c in worse.claims}
    assert not held["lognorm-vs-eps-fid-many"] and not held["lognorm-vs-rf-fid-few"]
    assert not held["lognorm-vs-eps-accuracy-few"] and not held["rf-degrades-least"]


def test_formulation_claims_name_what_is_missing():
    runs = _runs()
    del runs["rf"]
    with pytest.raises(ValueError, match="'rf'"):
        file_formulation_claims(_card(), runs, train_steps=1)
    runs = _runs()
    del runs[OURS][25]
    with pytest.raises(ValueError, match=r"\[25\] steps"):
        file_formulation_claims(_card(), runs, train_steps=1)
    with pytest.raises(ValueError, match="fewer steps"):
        file_formulation_claims(_card(), _runs(), train_steps=1, few=25, many=5)


def test_backbone_shift_qk_and_sanity_claims():
    card = _card()
    mmdit = BackboneRun("mmdit", 1000, 0.50, S(10.0, 0.4, 1.0))
    cross = BackboneRun("crossdit", 990, 0.55, S(11.0, 0.3, 1.0))
    file_backbone_claims(card, mmdit, cross, train_steps=10, steps=25)
    assert card["mmdit-vs-crossdit-accuracy"].holds and card["mmdit-vs-crossdit-val-loss"].holds
    assert "0.99×" in card["mmdit-vs-crossdit-val-loss"].baseline
    concat = BackboneRun("dit", 1010, 0.45, S(12.0, 0.5, 1.0))  # better loss and accuracy
    file_backbone_claims(card, mmdit, concat, train_steps=10, steps=25)
    assert not card["mmdit-vs-dit-val-loss"].holds and not card["mmdit-vs-dit-accuracy"].holds
    assert "DiT (concat)" in card["mmdit-vs-dit-accuracy"].baseline
    with pytest.raises(ValueError, match="crossdit"):
        file_backbone_claims(card, mmdit, replace(concat, name="uvit"), train_steps=1, steps=1)
    file_shift_claims(card, {16: 3.0, 64: 6.0, 4096: 48.0})  # α = 0.75·√n: slope 0.5
    assert card["shift-alpha-exponent"].our_value == pytest.approx(0.5)
    assert card["shift-alpha-exponent"].baseline_value == 0.0
    assert card["shift-alpha-exponent"].holds
    assert "shifted-sampling-few-steps" not in [c.key for c in card.claims]
    on = StabilityRun(True, max_logit=3.0, entropy=2.0, spike=1.2, final_loss=0.5, start_logit=2.0)
    off = StabilityRun(False, max_logit=30.0, entropy=0.1, spike=5.0, final_loss=0.9,
                       start_logit=1.5)  # fmt: skip
    file_qk_norm_claims(card, on, off, learning_rate=1e-2)
    assert card["qk-norm-logit-growth"].our_value == pytest.approx(1.5)
    assert card["qk-norm-logit-growth"].baseline_value == pytest.approx(20.0)
    keys = ("qk-norm-logit-growth", "qk-norm-entropy", "qk-norm-loss-spike", "qk-norm-final-loss")
    assert all(card[k].holds and card[k].kind == "claim" for k in keys)
    assert card["qk-norm-max-logit"].kind == "sanity"  # bounded by construction with QK-norm
    # the same end logits but a network that started higher without QK-norm: no growth claim
    flat_start = replace(off, start_logit=40.0)
    grown = _card()
    file_qk_norm_claims(grown, on, flat_start, learning_rate=1e-2)
    assert not grown["qk-norm-logit-growth"].holds and grown["qk-norm-max-logit"].holds
    with pytest.raises(ValueError, match="start_logit"):
        _ = replace(on, start_logit=float("nan")).logit_growth
    with pytest.raises(ValueError, match="with_norm"):
        file_qk_norm_claims(_card(), off, on, learning_rate=1e-2)
    file_sanity(card, S(10.0, 0.4, 1.0), S(20.0, 0.05, 1.0))
    assert card["captions-used"].kind == "sanity" and card["captions-used"].holds
    flat = _card()
    file_shift_claims(flat, {16: 4.0, 4096: 4.0})
    assert flat["shift-alpha-exponent"].our_value == 0.0
    assert not flat["shift-alpha-exponent"].holds
    with pytest.raises(ValueError, match="two pixel counts"):
        file_shift_claims(_card(), {16: 3.0})
    with pytest.raises(ValueError, match="must be > 0"):
        log_slope({16: 3.0, 64: 0.0})


def test_relative_drop_and_loss_spike_by_hand():
    assert relative_drop(S(15.0, 0, 0), S(10.0, 0, 0)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must be > 0"):
        relative_drop(S(1.0, 0, 0), S(0.0, 0, 0))
    losses = [1.0] * 30
    assert loss_spike(losses, window=5) == pytest.approx(1.0)
    losses[20] = 7.0  # 7 / median(1, 1, 1, 1, 1)
    assert loss_spike(losses, window=5) == pytest.approx(7.0)
    falling = [2.0**-i for i in range(12)]  # each loss half the previous: no spike
    assert loss_spike(falling, window=3) < 1.0
    assert loss_spike([*losses, math.nan], window=5) == math.inf
    with pytest.raises(ValueError, match="more than window"):
        loss_spike([1.0] * 5, window=5)


def test_score_samples_checks_labels_and_is_zero_for_the_reference_itself():
    from esser_lab.metrics.fid import FeatureNet
    from esser_lab.sd3.adherence import AttributeClassifier
    from esser_lab.sd3.data import captioned_batch

    data = captioned_batch(24, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    scores = score_samples(data.image, data.labels, AttributeClassifier(16), data.image,
                           FeatureNet(), 3.0)  # fmt: skip
    assert scores.fid == pytest.approx(0.0, abs=1e-3)
    assert 0.0 <= scores.accuracy <= scores.attributes <= 1.0 and scores.seconds == 3.0
    short = {k: v[:5] for k, v in data.labels.items()}
    with pytest.raises(ValueError, match="one label per image"):
        score_samples(data.image, short, AttributeClassifier(16), data.image, FeatureNet(), 1.0)


def test_sample_latents_is_seeded_and_guidance_needs_the_unconditional_input():
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder, null_condition

    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.tiny())
    encoder = ToyTextEncoder(32, 32)
    cond = encoder.encode(["a red circle", "a blue square"])
    rf = formulation(OURS)
    a = sample_latents(model, rf, cond, None, (4, 8, 8), steps=3, seed=1)
    b = sample_latents(model, rf, cond, None, (4, 8, 8), steps=3, seed=1)
    c = sample_latents(model, rf, cond, None, (4, 8, 8), steps=3, seed=2)
    assert a.shape == (2, 4, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="unconditional"):
        sample_latents(model, rf, cond, None, (4, 8, 8), steps=3, guidance=3.0)
    guided = sample_latents(
        model, rf, cond, null_condition(encoder, 1), (4, 8, 8), steps=3, guidance=1.0, seed=1
    )
    assert torch.equal(guided, a)  # s = 1 is the conditional model itself


def test_trained_shift_claim_is_the_slope_of_the_best_alpha_and_ties_fail():
    from esser_lab.sd3.claims import best_on_grid, file_trained_shift_claim

    assert best_on_grid({1.0: 3.0, 4.0: 2.0, 8.0: 2.0, 16.0: 5.0}) == 4.0  # first of equals
    with pytest.raises(ValueError, match="finite"):
        best_on_grid({1.0: float("nan")})
    grows = {16: {1.0: 9.0, 4.0: 5.0, 16.0: 7.0}, 64: {1.0: 9.0, 4.0: 6.0, 16.0: 4.0}}
    card = _card()
    file_trained_shift_claim(card, grows, steps=5, fine_tune_steps=100)
    claim = card["shift-trained-exponent"]
    assert claim.holds and claim.our_value == pytest.approx(1.0)  # 4 -> 16 over 16 -> 64 tokens
    tie = {16: {1.0: 9.0, 4.0: 5.0}, 64: {1.0: 9.0, 4.0: 5.0}}
    card = _card()
    file_trained_shift_claim(card, tie, steps=5, fine_tune_steps=100)
    assert not card["shift-trained-exponent"].holds
    with pytest.raises(ValueError, match="two resolutions"):
        file_trained_shift_claim(_card(), {16: {1.0: 1.0}}, steps=5, fine_tune_steps=1)
