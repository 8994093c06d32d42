"""Checkers for chapter 13's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 has an exact answer, the multinomial posterior (M3) for K = 4 codes, T = 3 scales of
the geometric schedule, x_0 = 2 and x_2 = 1, which :func:`multinomial_posterior` computes.
Exercises 2 and 3 are judgements on sampled completions and have no checker.
"""

from __future__ import annotations

import torch

from esser_lab.diffusion.multinomial import MultinomialSchedule, multinomial_posterior
from esser_lab.exercises import Verdict, check_all_close, no_answer

__all__ = ["check_posterior_by_hand", "posterior_by_hand"]


def posterior_by_hand(x0: int = 2, x2: int = 1, codes: int = 4, scales: int = 3) -> list[float]:
    """q(x_1 | x_2, x_0) over the ``codes`` codes, as the package computes it."""
    schedule = MultinomialSchedule.geometric(scales)
    q = multinomial_posterior(torch.tensor([x2]), torch.tensor([x0]), 2, schedule, codes)[0]
    return [float(p) for p in q]


def check_posterior_by_hand(answer: object) -> Verdict:
    """Exercise 1: the four probabilities of q(x_1 | x_2 = 1, x_0 = 2), in code order 0..3."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    values = [float(a) for a in answer]  # type: ignore[union-attr]
    if len(values) == 4 and abs(sum(values) - 1.0) > 1e-3:
        return Verdict(False, "the four probabilities should sum to 1: normalise the product.")
    verdict = check_all_close(values, posterior_by_hand(), what="the posterior", atol=1e-3)
    if verdict:
        return verdict
    return Verdict(
        False,
        verdict.message + " The posterior is proportional to q(x_2 | x_1) q(x_1 | x_0): the "
        "first factor uses alpha_2, the second the cumulative alpha-bar_1.",
    )
