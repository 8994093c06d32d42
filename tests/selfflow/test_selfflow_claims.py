"""Chapter 19's measurements (esser_lab.selfflow.claims) and helpers (selfflow.chapter)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data.relations import relation_batch
from esser_lab.diffusion.flow import rf_sample
from esser_lab.selfflow.chapter import mixed_views, probe_figure
from esser_lab.selfflow.claims import (
    ArmResult,
    SampleScores,
    alignment_curve,
    file_selfflow_claims,
    plateau_change,
    probe_table,
    sample_scores,
)
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT

CONFIG = replace(SelfFlowConfig.tiny(), hidden=32, depth=2, heads=2)


def test_probe_table_covers_blocks_and_times() -> None:
    torch.manual_seed(0)
    model = SelfFlowDiT(CONFIG)
    train = relation_batch(96, torch.Generator().manual_seed(0))
    test = relation_batch(48, torch.Generator().manual_seed(1))
    table = probe_table(model, train, test, (0.0, 0.5), label="shape")
    assert set(table) == {(1, 0.0), (2, 0.0), (1, 0.5), (2, 0.5)}
    # at t = 0 even the untrained embedding (adaLN-Zero blocks are the identity) reads the
    # class above chance (0.25); at t = 0.5 the noise takes most of it
    assert table[(1, 0.0)] == table[(2, 0.0)] > 0.4
    assert all(0.0 <= v <= 1.0 for v in table.values())
    assert model.training  # restored
    with pytest.raises(ValueError, match="label"):
        probe_table(model, train, test, label="colour")


def test_untrained_model_samples_are_noise_and_break_the_rule() -> None:
    model = SelfFlowDiT(CONFIG)  # adaLN-Zero: velocity 0, samples = the starting noise
    reference = relation_batch(32, torch.Generator().manual_seed(2)).image
    scores = sample_scores(model, reference, 32, 2)
    assert scores.images.shape == (32, 3, 16, 16)
    assert scores.rule < 0.2 and scores.fid > 0


def test_alignment_curve_is_a_running_mean() -> None:
    curve = alignment_curve([0.0, 1.0, 2.0, 3.0], window=2)
    assert curve.tolist() == [0.5, 1.5, 2.5]


def _arm(probe: float, rule: float, fid: float, cosines=()) -> ArmResult:  # noqa: ANN001
    table = {(1, 0.5): probe, (2, 0.5): probe - 0.1}
    samples = SampleScores(rule=rule, fid=fid, images=torch.zeros(1, 3, 16, 16))
    return ArmResult(table, {(1, 0.25): 0.5}, samples, seconds=1.0, cosines=cosines)


def test_claims_filed_with_their_directions() -> None:
    rising = [1 - math.exp(-i / 10) for i in range(200)]
    arms = {
        "vanilla": _arm(0.5, 0.2, 9.0, [math.nan] * 200),
        "dts": _arm(0.6, 0.3, 8.0),
        "selfflow": _arm(0.7, 0.4, 7.0, rising),
    }
    card = Card("19_self_flow", "tiny", 0, 0.0, seeds_file=None)
    file_selfflow_claims(card, arms, steps=200)
    for key in ("probe-vs-vanilla", "probe-vs-dts", "rule-vs-vanilla", "fid-vs-vanilla",
                "dts-vs-vanilla", "alignment-plateaus"):  # fmt: skip
        assert card[key].holds, key
    assert card["probe-vs-vanilla"].our_value == pytest.approx(0.7)
    assert not card["relation-probe-vs-vanilla"].holds  # equal numbers never hold


def test_mixed_views_teacher_is_homogeneous_at_tau_min() -> None:
    images = relation_batch(3, torch.Generator().manual_seed(3)).image
    mixed, clean = mixed_views(images, 0.8, 0.3, 0.25, 4, seed=5)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(images.shape, generator=generator)
    torch.testing.assert_close(clean, rf_sample(images, noise, 0.3).clamp(-1, 1))
    differs = (mixed != clean).flatten(2).any(1).float().mean(1)  # share of changed pixels
    # the 75 % of the patches at t = 0.8 (a few pixels clamp to ±1 in both views)
    assert (differs <= 0.75).all() and (differs > 0.7).all()


def _plateau_card(cosines: list[float]) -> Card:
    arms = {
        "vanilla": _arm(0.5, 0.2, 9.0, [math.nan] * len(cosines)),
        "dts": _arm(0.6, 0.3, 8.0),
        "selfflow": _arm(0.7, 0.4, 7.0, cosines),
    }
    card = Card("19_self_flow", "tiny", 0, 0.0, seeds_file=None)
    file_selfflow_claims(card, arms, steps=len(cosines))
    return card


def test_plateau_fails_when_the_cosine_falls_back() -> None:
    rise = [min(i / 50, 1.0) for i in range(100)]  # rises to 1 by step 50, then flat
    assert _plateau_card(rise)["alignment-plateaus"].holds
    fall = rise[:50] + [1.0 - 0.5 * (i / 50) for i in range(50)]  # rises, then loses half of it
    card = _plateau_card(fall)
    assert not card["alignment-plateaus"].holds  # the 2nd-half rise is smaller, but it fell
    assert card["alignment-plateaus"].our_value > card["alignment-plateaus"].baseline_value
    sag = rise[:50] + [1.0 - 0.02 * (i / 50) for i in range(50)]  # a sag within 10 %
    assert _plateau_card(sag)["alignment-plateaus"].holds
    # the number itself: a rise is kept, a fall is weighted 10x
    assert plateau_change(1.0, 0.3) == 0.3 and plateau_change(1.0, -0.05) == pytest.approx(0.5)


def test_probe_figure_draws_the_chance_it_is_given() -> None:
    import matplotlib.pyplot as plt

    table = {(1, 0.5): 0.4, (2, 0.5): 0.6}
    fig = probe_figure({"a": table}, chance=0.25, label="the class, 4 ways")
    ax = fig.axes[0]
    chance_lines = [line for line in ax.lines if list(line.get_ydata()) == [0.25, 0.25]]
    assert len(chance_lines) == 1 and "chance 0.25" in ax.get_title()
    assert "the class, 4 ways" in ax.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="chance"):
        probe_figure({"a": table}, chance=1.5)
