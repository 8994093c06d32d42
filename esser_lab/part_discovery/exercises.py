"""Checkers for chapter 8's exercises (see :mod:`esser_lab.exercises`).

Two exercises have answers the checker recomputes from the label maps. Exercise 1: the share of
all pixels of the held-out figures that each of the ``K`` discovered parts claims. Exercise 2: for
each true body part, the fraction of the figures showing it in which the discovered part covering
most of it is the part the global (Hungarian) matching assigned to it. Exercise 3 asks the student
to verify a property of ``hard_one_hot`` (one-hot forward, the soft gradient backward): the check is
the exercise itself, so it has no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_all_close, no_answer
from esser_lab.part_discovery.method import overlaps

__all__ = ["check_majority_agreement", "check_part_usage", "majority_agreement", "part_usage"]


def part_usage(labels: torch.Tensor, num_parts: int) -> list[float]:
    """Share of all pixels of ``labels`` ``(b, h, w)`` each of ``num_parts`` parts claims."""
    if labels.ndim != 3 or labels.dtype != torch.long:
        raise ValueError(f"labels must be (b, h, w) long, got {labels.dtype} {tuple(labels.shape)}")
    counts = torch.bincount(labels.flatten(), minlength=num_parts)
    return (counts.double() / labels.numel()).tolist()


def check_part_usage(labels: torch.Tensor, num_parts: int, answer: object) -> Verdict:
    """Exercise 1: the share of pixels of each discovered part, part 0 first."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    verdict = check_all_close(
        answer,  # type: ignore[arg-type]
        part_usage(labels, num_parts),
        what="the shares of pixels",
        atol=1e-3,
    )
    if verdict:
        return verdict
    return Verdict(
        False,
        verdict.message + " One share per discovered part (all K of them, in order): its pixels "
        "over all pixels of all figures, background included, so the shares sum to 1.",
    )


def majority_agreement(
    labels: torch.Tensor, true: torch.Tensor, num_parts: int, assignment: torch.Tensor
) -> list[float]:
    """Per true part ``c = 1..C-1`` (0 is the background): among the figures showing ``c``, the
    fraction whose discovered part covering most of ``c`` is ``assignment[c]``."""
    num_classes = len(assignment)
    inter, _, true_area = overlaps(labels, true, num_parts, num_classes)
    majority = inter.argmax(1)  # (b, C)
    present = true_area > 0
    agree = (majority == assignment.to(majority.device)[None]) & present
    rates = agree.double().sum(0) / present.double().sum(0).clamp_min(1)
    return rates[1:].tolist()


def check_majority_agreement(
    labels: torch.Tensor,
    true: torch.Tensor,
    num_parts: int,
    assignment: torch.Tensor,
    answer: object,
) -> Verdict:
    """Exercise 2: per true body part, the fraction of figures whose majority part is matched."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    verdict = check_all_close(
        answer,  # type: ignore[arg-type]
        majority_agreement(labels, true, num_parts, assignment),
        what="the agreement rates",
        atol=1e-3,
    )
    if verdict:
        return verdict
    return Verdict(
        False,
        verdict.message + " One fraction per body part (background left out): count only the "
        "figures in which that part is visible, and compare the discovered part covering most of "
        "it with the globally matched one.",
    )
