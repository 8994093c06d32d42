"""Checkers for chapter 12's exercises (see :mod:`esser_lab.exercises`).

Exercise 3 has an answer the checker recomputes from the samples: the variance across a pair's
samples, per pixel and averaged over colour, then over each code's patch, and averaged over the
disoccluded codes (at least half of the patch disoccluded) and over the visible ones
(:func:`esser_lab.geofree.claims.sample_variance`). Exercise 1 (the explicit baseline with exact
depth) and exercise 2 (the transformer without its translation tokens) compare scores of this
run's models and ask what they mean; they have no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, no_answer
from esser_lab.geofree.claims import sample_variance

__all__ = ["check_sample_variance"]


def check_sample_variance(
    samples: torch.Tensor,
    disoccluded: torch.Tensor,
    latent_shape: tuple[int, int],
    answer: object,
    rtol: float = 0.01,
) -> Verdict:
    """Exercise 3: ``(disoccluded, visible)``, the mean per-code variance across ``samples``
    ``(k, b, 3, H, W)`` on the codes of ``latent_shape`` that are disoccluded and visible."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    try:
        hidden, seen = (float(a) for a in answer)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the answer should be two numbers: (disoccluded, visible).")
    expected = sample_variance(samples, disoccluded, latent_shape)
    off = [name for name, a, e in zip(("disoccluded", "visible"), (hidden, seen), expected,
                                      strict=True) if abs(a - e) > rtol * abs(e)]  # fmt: skip
    if not off:
        return Verdict(True, f"both variances agree (within {rtol:.0%}).")
    return Verdict(
        False,
        f"the {' and '.join(off)} variance is off. Variance across the samples (axis 0) per "
        "pixel, mean over colour, mean over each code's patch (adaptive_avg_pool2d to the latent "
        "grid); a code is disoccluded when at least half of its patch is.",
    )
