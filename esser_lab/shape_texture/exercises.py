"""Checkers for chapter 11's exercises (see :mod:`esser_lab.exercises`).

Exercise 2 has an answer the checker recomputes: the dimensions (shape, texture, residual) that
(S2)–(S3) give for a stage's pooled features from the first quarter of the pairs and from the other
three quarters. Exercise 1 asks why an untrained network's estimate is not zero (an explanation;
its numbers are read off the tracker) and exercise 3 (a linear probe for texture) leaves the
comparison of the networks to the student; neither has a checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, no_answer
from esser_lab.shape_texture.method import shape_texture_dims

__all__ = ["check_split_dims", "split_dims"]


def split_dims(
    z_a: torch.Tensor, z_b: torch.Tensor, factor: torch.Tensor
) -> list[tuple[int, int, int]]:
    """The dims of (S2)–(S3) on the first ``n // 4`` pairs and on the remaining pairs."""
    quarter = len(factor) // 4
    parts = (slice(0, quarter), slice(quarter, None))
    return [tuple(shape_texture_dims(z_a[p], z_b[p], factor[p]).dims) for p in parts]


def check_split_dims(
    z_a: torch.Tensor, z_b: torch.Tensor, factor: torch.Tensor, answer: object
) -> Verdict:
    """Exercise 2: ``[dims from the first quarter, dims from the other three quarters]``, each
    ``(shape, texture, residual)``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    try:
        values = [tuple(int(d) for d in dims) for dims in answer]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the answer should be two triples (shape, texture, residual).")
    if len(values) != 2 or any(len(v) != 3 for v in values):
        return Verdict(False, "two triples (shape, texture, residual): a quarter, three quarters.")
    expected = split_dims(z_a, z_b, factor)
    if sum(values[0]) != z_a.shape[1] or sum(values[1]) != z_a.shape[1]:
        return Verdict(False, f"each triple should add up to the stage's {z_a.shape[1]} dims.")
    wrong = [name for name, v, e in zip(("a quarter", "three quarters"), values, expected,
                                        strict=True) if v != e]  # fmt: skip
    if not wrong:
        return Verdict(True, "both estimates are exact.")
    return Verdict(
        False,
        f"the counts from {' and '.join(wrong)} of the pairs differ. The first quarter is pairs "
        "[0, n // 4), the rest [n // 4, n); keep z_a, z_b and the factor of a pair together.",
    )
