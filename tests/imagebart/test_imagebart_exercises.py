"""Chapter 13's exercise 1 checker: the multinomial posterior (M3) for K = 4, T = 3."""

from fractions import Fraction

import pytest

from esser_lab.imagebart.exercises import check_posterior_by_hand, posterior_by_hand


def test_the_package_posterior_equals_the_hand_computation():
    # alpha-bar_1 = 2/3, alpha_2 = 1/2 (geometric, T = 3), K = 4, x_0 = 2, x_2 = 1:
    # (1/2 [x_1 = 1] + 1/8) * (2/3 [x_1 = 2] + 1/12) = (1, 5, 9, 1) / 96, normalised (1, 5, 9, 1)/16
    first = [Fraction(1, 8) + (Fraction(1, 2) if k == 1 else 0) for k in range(4)]
    second = [Fraction(1, 12) + (Fraction(2, 3) if k == 2 else 0) for k in range(4)]
    product = [a * b for a, b in zip(first, second, strict=True)]
    by_hand = [float(p / sum(product)) for p in product]
    assert posterior_by_hand() == pytest.approx(by_hand, abs=1e-6)
    assert check_posterior_by_hand(by_hand)


def test_wrong_posteriors_are_refused_without_the_answer():
    unnormalised = check_posterior_by_hand([1 / 96, 5 / 96, 9 / 96, 1 / 96])
    assert not unnormalised and "sum to 1" in str(unnormalised)
    swapped = check_posterior_by_hand([1 / 16, 9 / 16, 5 / 16, 1 / 16])  # alpha and alpha-bar mixed
    assert not swapped and "0.5625" not in str(swapped)
    assert "no answer yet" in str(check_posterior_by_hand(None))
