"""Chapter 14's claims: each compares the paper's pair in the stated direction and can fail."""

from __future__ import annotations

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.ldm.claims import SampleScores, SweepRow, file_claims, score_samples


def _row(factor: int, fid: float, guided_accuracy: float, seconds: float) -> SweepRow:
    return SweepRow(
        factor=factor,
        latent_shape=(4, 4, 4),
        autoencoder_seconds=1.0,
        denoiser_seconds=2.0,
        steps=10,
        scores=SampleScores(0.2, fid, seconds),
        guided=SampleScores(guided_accuracy, fid + 0.1, 2 * seconds),
    )


def _file(latent_fid=1.0, pixel_fid=50.0, guided_fid=0.9, unscaled_fid=1.2) -> Card:
    card = Card("14_ldm", "tiny", 0, 0.0, seeds_file=None)
    sweep = {1: _row(1, pixel_fid, 0.15, 0.02), 4: _row(4, latent_fid, 0.3, 0.002)}
    guidance = {
        1.0: SampleScores(0.2, latent_fid, 0.002),
        1.5: SampleScores(0.25, guided_fid, 0.004),
        3.0: SampleScores(0.3, 1.1, 0.004),
    }
    unscaled = SampleScores(0.2, unscaled_fid, 0.002)
    file_claims(card, sweep, 4, guidance, 1.5, 3.0, unscaled, 5.49, 10)
    return card


def test_the_claims_hold_in_the_papers_direction_and_fail_otherwise():
    card = _file()
    held = {c.key: c.holds for c in card.claims}
    assert held == {
        "latent-fid": True,
        "latent-accuracy": True,
        "latent-sampling-time": True,
        "guidance-fid": True,
        "guidance-accuracy": True,
        "scale-factor": True,
        "above-chance": True,
    }
    assert card["above-chance"].kind == "sanity"
    worse = _file(latent_fid=60.0, guided_fid=70.0, unscaled_fid=10.0)
    assert not worse["latent-fid"].holds
    assert not worse["guidance-fid"].holds
    assert not worse["scale-factor"].holds
    assert card["guidance-fid"].paper.value == 3.60


def test_missing_sweep_or_guidance_entries_are_named():
    card = Card("14_ldm", "tiny", 0, 0.0, seeds_file=None)
    row = _row(4, 1.0, 0.3, 0.01)
    with pytest.raises(ValueError, match="f = 1"):
        file_claims(card, {4: row}, 4, {}, 1.5, 3.0, row.scores, 5.5, 10)
    with pytest.raises(ValueError, match="guidance needs"):
        file_claims(card, {1: row, 4: row}, 4, {1.0: row.scores}, 1.5, 3.0, row.scores, 5.5, 10)


def test_score_samples_counts_and_checks_labels():
    from esser_lab.metrics.classifiers import ExpertClassifier
    from esser_lab.metrics.fid import FeatureNet

    torch.manual_seed(0)
    images = torch.rand(12, 1, 16, 16) * 2 - 1
    labels = torch.arange(12) % 10
    scores = score_samples(images, labels, ExpertClassifier(10, 1), images, FeatureNet(), 1.2)
    assert 0.0 <= scores.accuracy <= 1.0
    assert scores.seconds_per_sample == pytest.approx(0.1)
    assert scores.fid == pytest.approx(0.0, abs=1e-3)  # a set against itself
    with pytest.raises(ValueError, match="one label per sample"):
        score_samples(images, labels[:5], ExpertClassifier(10, 1), images, FeatureNet(), 1.0)
