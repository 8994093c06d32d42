"""Chapter 18's claims: the frequency metrics by hand, the filed claims and their verdicts."""

from __future__ import annotations

import math

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.ladd.claims import (
    LADDScores,
    detail_error,
    file_data_claims,
    file_few_step_claims,
    file_noise_level_claims,
    high_frequency_ratio,
    layout_distance,
    low_frequency_error,
)
from esser_lab.sd3.claims import SampleScores


def test_low_frequency_error_ignores_detail_and_sees_layout():
    x = torch.zeros(2, 3, 16, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0
    detailed = x + checker  # ±1 at every pixel: its 4×4 block means are 0
    assert low_frequency_error(detailed, x) == pytest.approx(0.0, abs=1e-6)
    moved = x.clone()
    moved[:, :, :4, :4] = 1.0  # one 4×4 block of 16 brighter by 1: RMS √(1/16) = 0.25
    assert low_frequency_error(moved, x) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="paired"):
        low_frequency_error(x[:1], x)
    with pytest.raises(ValueError, match="grid 3 must divide"):
        low_frequency_error(x, x, grid=3)


def test_high_frequency_ratio_by_hand():
    flat = torch.zeros(3, 3, 16, 16)
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0).expand(
        3, 3, 16, 16
    )
    assert high_frequency_ratio(0.5 * checker, checker) == pytest.approx(0.25)
    assert high_frequency_ratio(flat + 0.3, checker) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="no high-frequency energy"):
        high_frequency_ratio(checker, flat)
    with pytest.raises(ValueError, match="one image shape"):
        high_frequency_ratio(checker, torch.zeros(3, 3, 8, 8))


def test_layout_distance_is_unpaired_and_ignores_detail():
    g = torch.Generator().manual_seed(0)
    # images whose 4×4 block means are random: the layout
    blocks = torch.rand(64, 3, 4, 4, generator=g)
    images = blocks.repeat_interleave(4, -1).repeat_interleave(4, -2)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0
    # the same layouts with fine detail added and in another order: distance 0
    assert layout_distance(images.flip(0) + 0.5 * checker, images) == pytest.approx(0, abs=1e-9)
    # every block brighter by 0.5: the means differ by 0.5 in 48 dimensions → 48 · 0.25
    assert layout_distance(images + 0.5, images) == pytest.approx(12.0, rel=1e-6)
    with pytest.raises(ValueError, match="one image shape"):
        layout_distance(images, images[:, :, :8, :8])
    with pytest.raises(ValueError, match="grid 3 must divide"):
        layout_distance(images, images, grid=3)


def test_detail_error_is_symmetric_in_log():
    assert detail_error(1.0) == 0.0
    assert detail_error(2.0) == pytest.approx(detail_error(0.5)) == pytest.approx(math.log(2))
    assert detail_error(0.0) == math.inf
    with pytest.raises(ValueError, match="≥ 0"):
        detail_error(-1.0)


def _scores(fid: float, attributes: float = 0.5, to_teacher: float = 1.0, lf: float = 0.1,
            hf: float = 0.8, layout: float = 1.0) -> LADDScores:  # fmt: skip
    return LADDScores(SampleScores(fid, 0.0, 1.0, attributes), to_teacher, lf, hf, 0.01, layout)


def test_claims_are_filed_with_their_verdicts(tmp_path):
    card = Card("18_ladd", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv",
                long_file=tmp_path / "none.csv")  # fmt: skip
    runs = {
        "student@1": _scores(2.0, 0.7, 1.5),
        "student@2": _scores(1.0, 0.6, 0.5),
        "teacher@1": _scores(6.0, 0.6, 5.0),
        "teacher@2": _scores(0.9, 0.8, 0.4),
        "teacher@25": _scores(0.5, 0.8, 0.0),
    }
    file_few_step_claims(card, runs, steps=(1, 2), many=25, train_steps=100)
    assert card["student-vs-teacher-fid-1"].holds
    assert card["student-closer-to-teacher-1"].holds
    assert card["student-vs-teacher-attributes-1"].holds
    assert not card["student-vs-teacher-fid-2"].holds
    assert not card["student-vs-teacher-attributes-2"].holds
    assert card["teacher-many-vs-one"].kind == "sanity" and card["teacher-many-vs-one"].holds
    assert "student-time-per-sample" in card.timed
    # the paired error does not decide the layout claim; a noisier student (ratio 1.5) does not
    # win the detail claim against one at 0.8: |log 1.5| > |log 0.8|
    high, low = _scores(1.0, lf=0.9, hf=0.8, layout=0.1), _scores(1.0, lf=0.05, hf=1.5, layout=0.2)
    file_noise_level_claims(card, high, low, steps=1, high_label="LN(1, 1)",
                            low_label="LN(-1, 1)")  # fmt: skip
    assert card["t-hat-high-noise-layout"].our_value == 0.1
    assert card["t-hat-high-noise-layout"].holds
    assert card["t-hat-low-noise-detail"].our_value == pytest.approx(math.log(1.5), abs=1e-3)
    assert not card["t-hat-low-noise-detail"].holds
    again = Card("18_ladd", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv",
                 long_file=tmp_path / "none.csv")  # fmt: skip
    file_noise_level_claims(again, high, _scores(1.0, hf=0.95), steps=1, high_label="h",
                            low_label="l")  # fmt: skip
    assert again["t-hat-low-noise-detail"].holds
    file_data_claims(card, _scores(3.0, 0.4), _scores(2.0, 0.5), steps=2)
    assert not card["synthetic-vs-real-fid"].holds
    assert not card["synthetic-vs-real-attributes"].holds
    assert all(math.isfinite(c.our_value) for c in card.claims)
    with pytest.raises(ValueError, match="teacher@4"):
        file_few_step_claims(card, runs, steps=(4,), many=25, train_steps=100)


def test_scores_against_a_featurised_reference_equal_the_uncached_scores():
    from esser_lab.ladd.claims import ScoreReference, scores_of
    from esser_lab.metrics.fid import FeatureNet, fid_style
    from esser_lab.sd3.adherence import AttributeClassifier
    from esser_lab.sd3.claims import score_samples
    from esser_lab.sd3.data import captioned_batch

    torch.manual_seed(0)
    net, classifier = FeatureNet(), AttributeClassifier(16)
    real = captioned_batch(24, 16, generator=torch.Generator().manual_seed(0)).image
    data = captioned_batch(12, 16, generator=torch.Generator().manual_seed(1))
    teacher = (data.image + 0.3 * torch.randn(data.image.shape)).clamp(-1, 1)
    samples = (data.image + 0.1 * torch.randn(data.image.shape)).clamp(-1, 1)
    reference = ScoreReference.of(real, teacher, net)
    got = scores_of(samples, data.labels, classifier=classifier, reference=reference, seconds=2.4)
    want = score_samples(samples, data.labels, classifier, real, net, 2.4)
    assert got.scores.fid == pytest.approx(want.fid, rel=1e-6)
    assert got.scores.accuracy == want.accuracy and got.scores.attributes == want.attributes
    assert got.to_teacher == pytest.approx(fid_style(samples, teacher, net), rel=1e-6)
    assert got.low_frequency == low_frequency_error(samples, teacher)
    assert got.layout == layout_distance(samples, real)
    assert got.seconds_per_sample == pytest.approx(0.2)
    with pytest.raises(ValueError, match="one label per image"):
        scores_of(samples[:5], data.labels, classifier=classifier, reference=reference, seconds=1)
