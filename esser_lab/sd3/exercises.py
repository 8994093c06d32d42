"""Checkers for chapter 17's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 (Heun against Euler at equal model calls) asks for a judgement on this run's numbers and
has no checker. Exercise 2 has an exact answer: the probability a training-time density puts
within 0.1 of t = 0.5, integrated from its pdf; a student's estimate from 10,000 draws is accepted
within 0.02 (about four standard errors). Exercise 3's answer is known in closed form: the shift
(S4) moves the log-SNR by exactly -2 log alpha at every t.
"""

from __future__ import annotations

import math

import torch

from esser_lab.diffusion.formulations import formulation
from esser_lab.exercises import Verdict, check_all_close, check_close

__all__ = ["check_fraction_near_half", "check_log_snr_shift", "fraction_near_half"]


def fraction_near_half(name: str, half_width: float = 0.1, points: int = 20_001) -> float:
    """``P(|t - 0.5| < half_width)`` under the time density of the formulation ``name``
    (Simpson's rule on its pdf)."""
    density = formulation(name).density
    t = torch.linspace(0.5 - half_width, 0.5 + half_width, points, dtype=torch.float64)
    p = density.pdf(t).double()
    h = float(t[1] - t[0])
    return float(h / 3 * (p[0] + p[-1] + 4 * p[1:-1:2].sum() + 2 * p[2:-1:2].sum()))


def check_fraction_near_half(name: str, answer: object) -> Verdict:
    """Exercise 2: the fraction of 10,000 draws of ``name``'s density within 0.1 of t = 0.5."""
    return check_close(
        answer,
        fraction_near_half(name),
        what=f"the fraction for {name}",
        rtol=0.0,
        atol=0.02,
        too_low="Count the draws on both sides of 0.5, |t - 0.5| < 0.1.",
        too_high="Divide by the number of draws; a strict inequality, half-width 0.1.",
    )


def check_log_snr_shift(alpha: float, differences: object) -> Verdict:
    """Exercise 3: ``lambda(t') - lambda(t)`` at a few t for the shift by ``alpha``."""
    try:
        values = [float(d) for d in differences]  # type: ignore[union-attr]
    except TypeError:
        return check_all_close(differences, [0.0], what="the log-SNR differences", atol=1e-4)  # type: ignore[arg-type]
    if len(values) < 2:
        return Verdict(False, "compute the difference at two or more values of t.")
    expected = [-2 * math.log(alpha)] * len(values)
    verdict = check_all_close(values, expected, what="the log-SNR differences", atol=1e-4)
    if verdict:
        return Verdict(True, "the shift moves the log-SNR by the same amount at every t.")
    return Verdict(
        False,
        verdict.message + " With a_t = 1 - t and b_t = t, lambda = 2 log((1 - t) / t); is the "
        "shift applied as t' = alpha t / (1 + (alpha - 1) t)?",
    )
