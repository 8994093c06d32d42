"""Checkers for chapter 5's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 has an answer the checker recomputes: for the pairs that share each named factor, the
correlation between ``v^a_k`` and ``v^b_k`` of every factor ``k`` of ``v = T(z)`` (per dimension
over the pairs, then averaged over the factor's dimensions), which the model (I2) says should be ρ
on the shared factor and 0 elsewhere. Exercise 2 (what the estimate (I3) gives on ``T(z)`` and why)
and exercise 3 (a walk along the colour factor, judged from images and centroid drift) ask for an
explanation and a judgement; they have no checker.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from esser_lab.exercises import Verdict, no_answer

__all__ = ["check_pair_correlations", "pair_correlations"]


def pair_correlations(
    fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor], shared: torch.Tensor
) -> list[list[float]]:
    """``[s][k]``: over the pairs with ``shared == s``, the mean (over factor ``k``'s dimensions)
    of the Pearson correlation between ``fa[k]`` and ``fb[k]``; ``s`` runs over the shared factors
    present in ``shared`` (0, 1, ...), ``k`` over the factors of ``v``."""
    if len(fa) != len(fb):
        raise ValueError(f"fa has {len(fa)} factors, fb {len(fb)}")
    rows = []
    for s in range(int(shared.max()) + 1):
        chosen = shared == s
        row = []
        for a, b in zip(fa, fb, strict=True):
            a, b = a[chosen].double(), b[chosen].double()
            a, b = a - a.mean(0), b - b.mean(0)
            r = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0))
            row.append(float(r.mean()))
        rows.append(row)
    return rows


def check_pair_correlations(
    fa: Sequence[torch.Tensor],
    fb: Sequence[torch.Tensor],
    shared: torch.Tensor,
    answer: object,
    atol: float = 0.01,
) -> Verdict:
    """Exercise 1: ``answer[s][k]``, mean correlation of factor ``k`` over pairs sharing ``s``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    expected = pair_correlations(fa, fb, shared)
    try:
        values = [[float(x) for x in row] for row in answer]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the answer should be a list of rows of numbers: [shared][factor].")
    shape = [len(row) for row in expected]
    if [len(row) for row in values] != shape:
        return Verdict(
            False,
            f"one row per shared factor ({len(shape)}), one number per factor of v "
            f"({shape[0]}) in each row.",
        )
    off = [
        (s, k)
        for s, row in enumerate(values)
        for k, x in enumerate(row)
        if abs(x - expected[s][k]) > atol
    ]
    if not off:
        return Verdict(True, f"all {sum(shape)} correlations agree (within {atol:g}).")
    return Verdict(
        False,
        f"the entries [shared][factor] {off} are off by more than {atol:g}. A correlation: centre "
        "and scale each dimension by its own mean and std over the chosen pairs, average the "
        "product, then average over the factor's dimensions.",
    )
