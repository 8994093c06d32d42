"""Chapter 4's exercise 3 checker: the (R6) step counts, by hand and through gamma_update."""

import pytest

from esser_lab.rodi.exercises import check_gamma_steps, gamma_steps


def test_the_step_counts_follow_from_r6_by_hand():
    # up: +0.01 * (0.5 - 0.01) = 0.0049 per step, so ceil(1 / 0.0049) = 205 steps
    assert gamma_steps(0.5) == 205
    # down: -0.01 * 0.01 = 1e-4 per step: 10,000 steps, plus one for float rounding at most
    assert gamma_steps(0.0) in (10_000, 10_001)
    with pytest.raises(ValueError, match="must exceed b_gamma"):
        gamma_steps(0.005)


def test_the_checker_accepts_the_count_and_refuses_the_forgotten_bias():
    assert check_gamma_steps(0.5, 205) and check_gamma_steps(0.0, 10_000)
    forgot = check_gamma_steps(0.5, 200)  # 1 / (0.01 * 0.5): b_gamma left out
    assert not forgot and "too low" in str(forgot) and "205" not in str(forgot)
    assert "no answer yet" in str(check_gamma_steps(0.0, None))
