"""Checkers for chapter 4's exercises (see :mod:`esser_lab.exercises`).

Exercises 1 and 2 read the trained models of the run and ask for a judgement; they have no
checker. Exercise 3 has an exact answer: the number of (R6) updates, with the official
``l_gamma = b_gamma = 0.01``, that take γ from 0 to 1 under a constant gap of 0.5 nats, and from
1 back to 0 under no gap (counted by iterating :func:`esser_lab.rodi.method.gamma_update`).
"""

from __future__ import annotations

from esser_lab.exercises import Verdict, check_close
from esser_lab.rodi.method import gamma_update

__all__ = ["check_gamma_steps", "gamma_steps"]


def gamma_steps(gap: float, l_gamma: float = 0.01, b_gamma: float = 0.01) -> int:
    """Updates (R6) from γ = 0 up to 1 (``gap > b_gamma``) or from γ = 1 down to 0 (no gap)."""
    if gap <= b_gamma and gap != 0.0:
        raise ValueError(f"a gap must exceed b_gamma = {b_gamma} to raise γ, or be 0; got {gap}")
    rising = gap > 0
    gamma, steps = (0.0, 0) if rising else (1.0, 0)
    while (gamma < 1.0) if rising else (gamma > 0.0):
        gamma = gamma_update(gamma, gap, 0.0, l_gamma=l_gamma, b_gamma=b_gamma, warm=True)
        steps += 1
    return steps


def check_gamma_steps(gap: float, answer: object) -> Verdict:
    """Exercise 3: the number of updates for the gap ``gap`` (0.5 nats: 0 to 1; 0: 1 to 0)."""
    way = "from 0 to 1" if gap > 0 else "from 1 back to 0"
    return check_close(
        answer,
        gamma_steps(gap),
        what=f"the number of steps {way} (gap {gap} nats)",
        rtol=0.0,
        atol=1.0,  # a step either side: where the student stops counting
        too_low="Each update moves γ by l_gamma · (gap − b_gamma), not by l_gamma · gap.",
        too_high="Each update moves γ by l_gamma · (gap − b_gamma); with no gap that is "
        "−l_gamma · b_gamma.",
    )
