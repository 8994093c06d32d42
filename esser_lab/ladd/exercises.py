"""Checkers for chapter 18's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 (the dead gradient under ``torch.no_grad``) is shown by running it and has no checker.
Exercise 2 has an exact answer: a logit-normal(m, s) level lies above ``threshold`` with probability
``1 - Phi((logit(threshold) - m) / s)``; an estimate from 10,000 draws is accepted within 0.02.
Exercise 3 counts network evaluations per sample: classifier-free guidance evaluates the network
on the conditional and the unconditional input at every step, the student once per step.
"""

from __future__ import annotations

import math

from esser_lab.exercises import Verdict, check_close

__all__ = ["check_evaluations", "check_fraction_above", "fraction_above"]


def fraction_above(m: float, s: float, threshold: float = 0.8) -> float:
    """P(t > threshold) for t = sigmoid(m + s·n), n ~ N(0, 1)."""
    if not 0.0 < threshold < 1.0 or s <= 0:
        raise ValueError(f"need 0 < threshold < 1 and s > 0, got {threshold}, {s}")
    z = (math.log(threshold / (1 - threshold)) - m) / s
    return 0.5 * math.erfc(z / math.sqrt(2))


def check_fraction_above(m: float, s: float, answer: object, threshold: float = 0.8) -> Verdict:
    """Exercise 2: the fraction of 10,000 levels of logit-normal(m, s) above ``threshold``."""
    return check_close(
        answer,
        fraction_above(m, s, threshold),
        what=f"the fraction above {threshold:g} for logit-normal({m:g}, {s:g})",
        rtol=0.0,
        atol=0.02,
        too_low="Is it the share above the threshold (t > 0.8), not below?",
        too_high="Is it the share above the threshold (t > 0.8), not below?",
    )


def check_evaluations(steps: int, guided: bool, answer: object) -> Verdict:
    """Exercise 3: network evaluations per sample for ``steps`` Euler steps (with guidance?)."""
    who = "the guided teacher" if guided else "the student"
    return check_close(
        answer,
        steps * (2 if guided else 1),
        what=f"the evaluations per sample of {who} at {steps} steps",
        rtol=0.0,
        atol=0.0,
        too_low="Guidance needs the conditional and the unconditional prediction at each step.",
        too_high="One evaluation per step, two with guidance: nothing else calls the network.",
    )
