"""Checkers for chapter 16's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 (the identity at initialisation) prints its own check and has none here. Exercise 2 has
an exact answer: t_s steps of the 5-tap binomial blur (variance 1 px² each) give a single bright
pixel a variance of t_s px² per axis, away from the border; the checker recomputes it with
:func:`esser_lab.gen1.method.blur_depth`. Exercise 3 has a closed form: ε̃ = ε_π + ω_t (ε_θ − ε_π).
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_close
from esser_lab.gen1.method import blur_depth

__all__ = ["blur_variance", "check_blur_variance", "check_temporal_guidance"]


def blur_variance(t_s: int, side: int = 33) -> float:
    """The per-axis variance (px²) of a centred bright pixel after ``t_s`` blur steps."""
    impulse = torch.zeros(1, 1, 1, side, side, dtype=torch.float64)
    impulse[..., side // 2, side // 2] = 1.0
    blurred = blur_depth(impulse, t_s)[0, 0, 0]
    x = torch.arange(side, dtype=torch.float64) - side // 2
    return float((blurred.sum(0) * x**2).sum() / blurred.sum())


def check_blur_variance(t_s: int, answer: object) -> Verdict:
    """Exercise 2: the variance of a bright pixel after ``t_s`` blur steps."""
    return check_close(
        answer,
        blur_variance(t_s),
        what=f"the variance after t_s = {t_s}",
        rtol=0.0,
        atol=1e-3,
        too_low="Measure the variance along one axis (the marginal), in px², not the std.",
        too_high="Measure along one axis, not the sum over both; and the variance, not its square.",
    )


def check_temporal_guidance(omega_t: float, video: float, frame: float, answer: object) -> Verdict:
    """Exercise 3: ε̃ for constant predictions ``video`` (ε_θ) and ``frame`` (ε_π) at ``omega_t``."""
    return check_close(
        answer,
        frame + omega_t * (video - frame),
        what=f"ε̃ at ω_t = {omega_t:g}",
        rtol=0.0,
        atol=1e-6,
        too_low="ω_t extrapolates from the per-frame prediction towards and past the video one.",
        too_high="Start from the per-frame prediction ε_π, add ω_t times the difference.",
    )
