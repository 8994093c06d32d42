"""Chapter 18's claims: the frequency metrics by hand, the filed claims and their verdicts."""

from __future__ import annotations

import math

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.ladd.claims import (
    LADDScores,
    file_data_claims,
    file_few_step_claims,
    file_noise_level_claims,
    high_frequency_ratio,
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


def _scores(fid: float, attributes: float = 0.5, to_teacher: float = 1.0, lf: float = 0.1,
            hf: float = 0.8) -> LADDScores:  # fmt: skip
    return LADDScores(SampleScores(fid, 0.0, 1.0, attributes), to_teacher, lf, hf, 0.01)


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
    file_noise_level_claims(card, _scores(1.0, lf=0.1, hf=0.7), _scores(1.0, lf=0.2, hf=0.9),
                            steps=1, high_label="LN(1, 1)", low_label="LN(-1, 1)")  # fmt: skip
    assert card["t-hat-high-noise-layout"].our_value == 0.1
    assert card["t-hat-high-noise-layout"].holds and card["t-hat-low-noise-detail"].holds
    file_data_claims(card, _scores(3.0, 0.4), _scores(2.0, 0.5), steps=2)
    assert not card["synthetic-vs-real-fid"].holds
    assert not card["synthetic-vs-real-attributes"].holds
    assert all(math.isfinite(c.our_value) for c in card.claims)
    with pytest.raises(ValueError, match="teacher@4"):
        file_few_step_claims(card, runs, steps=(4,), many=25, train_steps=100)
