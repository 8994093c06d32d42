"""Chapter 18's exercise checkers: exact fractions of a logit-normal, evaluation counts."""

import pytest
import torch

from esser_lab.diffusion.densities import logit_normal
from esser_lab.ladd.exercises import check_evaluations, check_fraction_above, fraction_above


@pytest.mark.parametrize("m", [1.0, -1.0])
def test_the_exact_fraction_matches_draws_and_the_checker_accepts_them(m):
    t = logit_normal(m, 1.0).sample(400_000, torch.Generator().manual_seed(0))
    assert fraction_above(m, 1.0) == pytest.approx(float((t > 0.8).double().mean()), abs=3e-3)
    for seed in range(5):
        t = logit_normal(m, 1.0).sample(10_000, torch.Generator().manual_seed(seed))
        assert check_fraction_above(m, 1.0, float((t > 0.8).float().mean()))
    below = 1 - fraction_above(m, 1.0)
    assert not check_fraction_above(m, 1.0, below)  # the share below, by mistake
    assert fraction_above(0.0, 1.0, 0.5) == pytest.approx(0.5)


def test_evaluation_counts():
    assert check_evaluations(25, True, 50) and check_evaluations(2, False, 2)
    assert "too low" in str(check_evaluations(25, True, 25))
    with pytest.raises(ValueError, match="threshold"):
        fraction_above(0.0, 1.0, 1.5)
