"""Chapter 3's claims (``esser_lab.style_transfer.claims``): the scores and the card they file."""

import time

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import art
from esser_lab.metrics.classifiers import ExpertClassifier
from esser_lab.style_transfer import StyleTransferConfig, StyleTransferModel
from esser_lab.style_transfer.claims import StyleScores, evaluation_set, file_claims, style_scores


def card(tmp_path) -> Card:
    return Card("03_style", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")


def test_evaluation_set_pairs_each_target_with_another_artist():
    photos, _ = art.load_photos(16, "test")
    evaluation = evaluation_set(photos[:40], art.NUM_STYLES)
    assert evaluation.targets.tolist()[:5] == [0, 1, 2, 3, 0]
    assert evaluation.paintings.shape == evaluation.negatives.shape == (40, 3, 16, 16)
    # the fix-point test needs a painting by *another* artist in every row
    others = (evaluation.targets + 1 + (torch.arange(40) // 4) % 3) % 4
    assert (others != evaluation.targets).all()
    assert set(others.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="at least 8 photos"):
        evaluation_set(photos[:5], art.NUM_STYLES)
    moved = evaluation.to("meta")  # the models' device (meta stands in for a GPU)
    fields = (moved.targets, moved.paintings, moved.negatives, moved.bank, moved.bank_artists)
    assert {field.device.type for field in fields} == {"meta"}
    assert moved.paintings.shape == evaluation.paintings.shape


def test_style_scores_on_an_untrained_model_are_fractions():
    torch.manual_seed(0)
    config = StyleTransferConfig.tiny()
    photos, labels = art.load_photos(16, "test")
    photos, labels = photos[:32], labels[:32]
    evaluation = evaluation_set(photos, art.NUM_STYLES)
    scores = style_scores(
        StyleTransferModel(config), photos, labels, evaluation,
        ExpertClassifier(art.NUM_STYLES).eval(), ExpertClassifier(10).eval(),
    )  # fmt: skip
    for value in (scores.deception, scores.content):
        assert 0.0 <= value <= 1.0
    assert scores.fixpoint_error >= 0.0
    assert scores.spread >= 0.0 and scores.between >= 0.0 and scores.across_photos > 0.0
    with pytest.raises(ValueError, match="shape"):
        style_scores(StyleTransferModel(config), photos, labels[:3], evaluation,
                     ExpertClassifier(4), ExpertClassifier(10))  # fmt: skip


def test_file_claims_files_the_ablation_comparisons_and_a_sanity_row(tmp_path):
    full = StyleScores(
        deception=0.8, content=0.7, fixpoint_error=0.1, between=0.6, across_photos=0.2
    )
    ablation = StyleScores(
        deception=0.6, content=0.75, fixpoint_error=0.5, between=0.4, across_photos=0.1
    )
    filed = file_claims(card(tmp_path), full, ablation, num_styles=4)
    keys = [c.key for c in filed.claims]
    assert keys == ["deception", "content", "fixpoint", "style-spread", "deception-chance"]
    assert filed["deception"].holds and filed["fixpoint"].holds
    # a baseline that wins makes the claim fail
    assert not filed["content"].holds and not filed["style-spread"].holds
    assert filed["deception-chance"].kind == "sanity"
    assert filed["deception-chance"].baseline_value == 0.25
    assert filed["fixpoint"].better == "lower"
    assert all(c.better == "higher" for c in filed.claims if c.key != "fixpoint")
    assert all("without FPT and FPD" in c.baseline for c in filed.claims[:4])
    # the metric names the size of the held-out set it was measured on
    assert "1,000 held-out" in filed["fixpoint"].metric
    smaller = file_claims(card(tmp_path), full, ablation, num_styles=4, num_held_out=256)
    assert "256 held-out" in smaller["fixpoint"].metric


def test_a_tie_does_not_hold(tmp_path):
    same = StyleScores(
        deception=0.5, content=0.5, fixpoint_error=0.5, between=0.5, across_photos=0.1
    )
    filed = file_claims(card(tmp_path), same, same, num_styles=4)
    assert not any(c.holds for c in filed.claims[:4])
