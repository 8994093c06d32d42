"""Checkers for chapter 19's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 asks which time the EMA teacher sees in SiT's convention (time 1 = data): a choice
between the smaller and the larger of the two. Exercise 2 (Attention Separation) is a judgement on
a training run and has no checker. Exercise 3 has an exact answer: :func:`token_mask` noises
``round(ratio * tokens)`` tokens of every image to ``s``.
"""

from __future__ import annotations

from esser_lab.exercises import Verdict, check_choice, check_close, no_answer

__all__ = ["check_masked_tokens", "check_teacher_time_in_sit"]


def check_teacher_time_in_sit(answer: object) -> Verdict:
    """Exercise 1: "min" or "max" of the two SiT times is the teacher's cleaner view."""
    verdict = check_choice(answer, "max", ["min", "max"], what="the teacher's SiT time")
    if verdict or no_answer(answer) is not None:
        return verdict
    return Verdict(False, verdict.message + " In SiT's convention a larger time means less noise.")


def check_masked_tokens(tokens: int, ratio: float, answer: object) -> Verdict:
    """Exercise 3: how many of ``tokens`` tokens per image ``token_mask`` puts at ``s``."""
    return check_close(
        answer,
        round(ratio * tokens),
        what=f"the number of tokens at s (ratio {ratio}, {tokens} tokens)",
        rtol=0.0,
        atol=0.0,
        too_low="Is the count per image, not the share?",
        too_high="Is the count per image, not over the batch?",
    )
