"""Chapter 17's exercise checkers accept the book's solutions and refuse wrong answers."""

import math

import pytest
import torch

from esser_lab.diffusion.formulations import formulation
from esser_lab.sd3.exercises import (
    check_fraction_near_half,
    check_log_snr_shift,
    fraction_near_half,
)


def test_the_exact_fraction_matches_the_uniform_case_and_a_large_sample():
    assert fraction_near_half("rf") == pytest.approx(0.2, abs=1e-9)
    t = formulation("rf/lognorm(0.00,1.00)").density.sample(
        1_000_000, torch.Generator().manual_seed(0)
    )
    assert fraction_near_half("rf/lognorm(0.00,1.00)") == pytest.approx(
        float(((t - 0.5).abs() < 0.1).double().mean()), abs=2e-3
    )


@pytest.mark.parametrize("name", ["rf/lognorm(0.00,1.00)", "rf/mode(1.29)"])
def test_the_checker_accepts_estimates_from_10000_draws_and_refuses_the_uniform_answer(name):
    for seed in range(5):
        t = formulation(name).density.sample(10_000, torch.Generator().manual_seed(seed))
        assert check_fraction_near_half(name, float(((t - 0.5).abs() < 0.1).float().mean()))
    wrong = check_fraction_near_half(name, 0.2)  # what a uniform density would give
    assert not wrong and "too low" in str(wrong) and "0.3" not in str(wrong)


def test_the_log_snr_checker():
    exact = [-2 * math.log(3.0)] * 4
    assert check_log_snr_shift(3.0, exact)
    assert not check_log_snr_shift(3.0, [-math.log(3.0)] * 4)  # a forgotten factor 2
    assert not check_log_snr_shift(3.0, exact[:1])
    assert "no answer yet" in str(check_log_snr_shift(3.0, None))
