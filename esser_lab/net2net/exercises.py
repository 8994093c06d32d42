"""Checkers for chapter 6's exercises (see :mod:`esser_lab.exercises`).

Exercise 3 has an answer the checker recomputes: ½‖v‖², averaged over the sprites, of
``v = τ⁻¹(z_Θ | z_Φ)`` under a given caption (the first term of (N2), the ``nll`` part of
:func:`esser_lab.net2net.method.conditional_nll`), once under the right captions and once under
captions with a wrong shape word. Exercise 1's measurements are recomputed too: the mean of ``v``,
its standard deviation per dimension (averaged over the dimensions), and the accuracy of a
nearest-class-mean colour classifier fitted on the first half of the sprites and tested on the
second; what they mean is the student's judgement. Exercise 2 (which factors change with ``v`` and
with the caption, read from a grid) has no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.net2net.method import conditional_nll
from esser_lab.nn.flows import ConditionalFlow

__all__ = ["check_half_norm", "check_v_statistics", "half_norm", "v_statistics"]


def half_norm(flow: ConditionalFlow, z_target: torch.Tensor, z_cond: torch.Tensor) -> float:
    """Batch mean of ½‖v‖², ``v = τ⁻¹(z_target | z_cond)``."""
    with torch.no_grad():
        _, parts = conditional_nll(flow, z_target, z_cond)
    return float(parts["nll"])


def check_half_norm(
    flow: ConditionalFlow, z_target: torch.Tensor, z_cond: torch.Tensor, answer: object
) -> Verdict:
    """Exercise 3: ½‖v‖² (batch mean) of the codes ``z_target`` under the conditions ``z_cond``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    return check_close(
        answer,
        half_norm(flow, z_target, z_cond),
        what="½‖v‖²",
        rtol=0.01,
        too_low="Sum the squares over v's dimensions (a norm, not a mean over them), then "
        "average over the sprites.",
        too_high="Is the ½ there, and is it the mean over the sprites, not the sum? Only "
        "½‖v‖², without the log-determinant.",
    )


def v_statistics(
    flow: ConditionalFlow, z_target: torch.Tensor, z_cond: torch.Tensor, colour: torch.Tensor
) -> tuple[float, float, float]:
    """``(mean of v, std per dimension averaged, colour accuracy)`` of ``v = τ⁻¹(z | z_Φ)``; the
    accuracy of the nearest of the class means of ``v`` over the first half of the rows, on the
    second half (``colour``: ``(n,)`` class indices)."""
    if colour.shape != z_target.shape[:1]:
        raise ValueError(f"one colour per row: {tuple(colour.shape)} for {len(z_target)} rows")
    with torch.no_grad():
        v, _ = flow(z_target, z_cond)
    colour = colour.to(v.device)
    half = len(v) // 2
    classes = colour[:half].unique()
    means = torch.stack([v[:half][colour[:half] == c].mean(0) for c in classes])
    nearest = classes[torch.cdist(v[half:], means).argmin(1)]
    accuracy = float((nearest == colour[half:]).float().mean())
    return float(v.mean()), float(v.std(0).mean()), accuracy


def check_v_statistics(
    flow: ConditionalFlow,
    z_target: torch.Tensor,
    z_cond: torch.Tensor,
    colour: torch.Tensor,
    answer: object,
) -> Verdict:
    """Exercise 1: ``(mean of v, std per dimension averaged, nearest-class-mean accuracy)``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    try:
        values = [float(a) for a in answer]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the answer should be three numbers: (mean, std, accuracy).")
    if len(values) != 3:
        return Verdict(False, f"three numbers: (mean, std, accuracy); got {len(values)}.")
    expected = v_statistics(flow, z_target, z_cond, colour)
    tolerances = (1e-3, 0.01 * expected[1], 1.0 / (len(z_target) - len(z_target) // 2) + 1e-9)
    names = ("the mean", "the std per dimension", "the colour accuracy")
    off = [n for n, a, e, t in zip(names, values, expected, tolerances, strict=True)
           if abs(a - e) > t]  # fmt: skip
    if not off:
        return Verdict(True, "the mean, the std and the colour accuracy agree.")
    return Verdict(
        False,
        f"{' and '.join(off)} disagree. The mean over every entry of v; the std of each "
        "dimension over the sprites, averaged over the dimensions; class means of v from the "
        "first half of the sprites, each sprite of the second half given the colour of its "
        "nearest mean.",
    )
