"""Checkers for chapter 6's exercises (see :mod:`esser_lab.exercises`).

Exercise 3 has an answer the checker recomputes: ½‖v‖², averaged over the sprites, of
``v = τ⁻¹(z_Θ | z_Φ)`` under a given caption (the first term of (N2), the ``nll`` part of
:func:`esser_lab.net2net.method.conditional_nll`), once under the right captions and once under
captions with a wrong shape word. Exercise 1 (is ``v`` independent of the caption) and exercise 2
(which factors change with ``v`` and with the caption, read from a grid) ask for a judgement on
this run's flow and have no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.net2net.method import conditional_nll
from esser_lab.nn.flows import ConditionalFlow

__all__ = ["check_half_norm", "half_norm"]


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
