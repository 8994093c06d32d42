"""Checkers for chapter 15's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 asks what the deformable write's gate becomes with a single keyframe: a softmax over one
element, 1 everywhere. Exercise 2 has a computable answer: the mean |warp − target| of the first
keyframe warped by its flow, on the known pixels where the flow is valid and where it is not; the
checker recomputes both with :func:`esser_lab.keyframe.layers.warp_features`. Exercise 3 is an
experiment and a prediction; it has no checker, and :func:`flag_verdict` words its solution's
measurement.
"""

from __future__ import annotations

from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.keyframe.layers import warp_features

__all__ = ["check_one_keyframe_gate", "check_warp_errors", "flag_verdict", "warp_errors"]


def check_one_keyframe_gate(answer: object) -> Verdict:
    """Exercise 1: the gate's value with a single keyframe (the same at every pixel)."""
    return check_close(
        answer,
        1.0,
        what="the gate with one keyframe",
        rtol=0.0,
        atol=1e-6,
        too_low="A softmax over the keyframes: what is it over a single element?",
        too_high="The weights of a softmax sum to one over the keyframes.",
    )


def warp_errors(samples) -> tuple[float, float]:  # noqa: ANN001 (KeyframeSamples)
    """Mean |warp of keyframe 0 − target| on the known pixels where the flow is valid (flow
    error < 1) and where it is not."""
    warped = warp_features(samples.keys[:, 0], samples.flows[:, 0])
    known = 1 - samples.mask
    valid = (samples.flow_errors[:, 0] < 1).float() * known
    error = (warped - samples.image).abs().mean(dim=1, keepdim=True)
    invalid = known - valid
    return (
        float((error * valid).sum() / valid.sum()),
        float((error * invalid).sum() / invalid.sum()),
    )


def check_warp_errors(samples, valid_error: object, invalid_error: object) -> Verdict:  # noqa: ANN001
    """Exercise 2: the two mean errors, each within 2 % of the recomputed ones."""
    missing = no_answer(valid_error) or no_answer(invalid_error)
    if missing is not None:
        return missing
    expected_valid, expected_invalid = warp_errors(samples)
    hint = "Average over the known pixels only (1 − mask), split by flow error < 1."
    for answer, expected, what in (
        (valid_error, expected_valid, "the error where the flow is valid"),
        (invalid_error, expected_invalid, "the error where it is not"),
    ):
        verdict = check_close(answer, expected, what=what, rtol=0.02, too_low=hint, too_high=hint)
        if not verdict:
            return verdict
    return Verdict(
        True, "both errors agree (within 2%): the warp is right where the flow is valid."
    )


def flag_verdict(unflagged: float, flagged: float, level: float, tolerance: float = 0.1) -> str:
    """Exercise 3's solution: what flagging the wrong flows does to the local stream's hole
    PSNR (``unflagged`` → ``flagged``, dB), said against ``level`` (the no-keyframe
    generator's): within ``tolerance`` it leaves it; otherwise it raises or lowers it, and
    "towards" or "away from" that level only when the distance to it shrinks or grows (a
    rise from above the level moves away from it), "past" it when the sign flips."""
    change = flagged - unflagged
    if abs(change) <= tolerance:
        return f"leaves it within {tolerance:g} dB of where it was"
    verb = "raises" if change > 0 else "lowers"
    before, after = unflagged - level, flagged - level
    if before * after < 0:
        where = "past that level"
    elif abs(after) < abs(before):
        where = "towards that level"
    else:
        side = "above" if before > 0 else "below"
        where = f"further {side} that level"
    return f"{verb} it by {abs(change):.2f} dB, {where}"
