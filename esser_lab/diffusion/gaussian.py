"""The Gaussian forward process and its three parameterisations (ε, x₀, v).

x_t = √ᾱ x₀ + √(1 − ᾱ) ε (DDPM eq. 4, Ho et al. 2020, arXiv 2006.11239), with ᾱ = ᾱ(t) from a
schedule (:class:`esser_lab.diffusion.DiscreteSchedule`). A network may predict the noise ε (LDM,
SD 1.x), the data x₀, or the velocity v = √ᾱ ε − √(1 − ᾱ) x₀ (Salimans & Ho 2022,
arXiv 2202.00512, SD 2.x-v); given x_t and ᾱ any one of them determines the other two.

``alpha_bar`` may be a float, a per-sample (b,) tensor or a per-token (b, l) tensor; it
broadcasts against the data through :func:`esser_lab.diffusion.expand_like`.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.diffusion.protocol import expand_like

__all__ = [
    "Parameterization",
    "check_parameterization",
    "eps_to_x0",
    "eps_x0_to_v",
    "q_sample",
    "simple_loss",
    "to_eps_and_x0",
    "training_target",
    "v_to_eps",
    "v_to_x0",
    "x0_to_eps",
]

Parameterization = Literal["eps", "x0", "v"]


def check_parameterization(parameterization: str) -> None:
    """A ``ValueError`` unless ``parameterization`` is "eps", "x0" or "v"."""
    if parameterization not in get_args(Parameterization):
        raise ValueError(
            f"parameterization must be one of {list(get_args(Parameterization))}, "
            f"got {parameterization!r}"
        )


def _same_shape(a: Tensor, b: Tensor, a_name: str, b_name: str) -> None:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{a_name} and {b_name} must be tensors")
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} must have the same shape"
        )


def _roots(alpha_bar: float | Tensor, x: Tensor) -> tuple[float, float] | tuple[Tensor, Tensor]:
    """(√ᾱ, √(1 − ᾱ)) broadcast against ``x``: Python floats for a float ᾱ, else tensors in
    ``x``'s dtype. The roots are taken in float32 or better and only then cast: in bfloat16,
    1 − ᾱ near the data (1 − 0.9985) would lose every digit."""
    if isinstance(alpha_bar, Tensor):
        if not alpha_bar.is_floating_point():
            raise TypeError(
                f"alpha_bar must be a float or a floating tensor, got {alpha_bar.dtype}"
            )
        a = alpha_bar.to(torch.promote_types(alpha_bar.dtype, torch.float32))
        return expand_like(a.sqrt(), x), expand_like((1 - a).sqrt(), x)
    if isinstance(alpha_bar, bool) or not isinstance(alpha_bar, (int, float)):
        raise TypeError(f"alpha_bar must be a float or a tensor, got {type(alpha_bar).__name__}")
    if not 0.0 <= alpha_bar <= 1.0:
        raise ValueError(f"alpha_bar must lie in [0, 1], got {alpha_bar}")
    return math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)


def q_sample(x0: Tensor, alpha_bar: float | Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ x₀ + √(1 − ᾱ) ε, a draw of q(x_t | x₀) (DDPM eq. 4) for the given noise ε."""
    _same_shape(x0, noise, "x0", "noise")
    root_a, root_1ma = _roots(alpha_bar, x0)
    return root_a * x0 + root_1ma * noise


def eps_to_x0(eps: Tensor, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """x̂₀ = (x_t − √(1 − ᾱ) ε̂) / √ᾱ (DDPM eq. 15; the official ``predict_start_from_noise``)."""
    _same_shape(eps, x_t, "eps", "x_t")
    root_a, root_1ma = _roots(alpha_bar, x_t)
    return (x_t - root_1ma * eps) / root_a


def x0_to_eps(x0: Tensor, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """ε̂ = (x_t − √ᾱ x̂₀) / √(1 − ᾱ)."""
    _same_shape(x0, x_t, "x0", "x_t")
    root_a, root_1ma = _roots(alpha_bar, x_t)
    return (x_t - root_a * x0) / root_1ma


def v_to_eps(v: Tensor, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """ε̂ = √(1 − ᾱ) x_t + √ᾱ v̂ (since √ᾱ² + √(1 − ᾱ)² = 1)."""
    _same_shape(v, x_t, "v", "x_t")
    root_a, root_1ma = _roots(alpha_bar, x_t)
    return root_1ma * x_t + root_a * v


def v_to_x0(v: Tensor, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """x̂₀ = √ᾱ x_t − √(1 − ᾱ) v̂."""
    _same_shape(v, x_t, "v", "x_t")
    root_a, root_1ma = _roots(alpha_bar, x_t)
    return root_a * x_t - root_1ma * v


def eps_x0_to_v(eps: Tensor, x0: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """v = √ᾱ ε − √(1 − ᾱ) x₀ (Salimans & Ho 2022, Sec. 4): the v-prediction target."""
    _same_shape(eps, x0, "eps", "x0")
    root_a, root_1ma = _roots(alpha_bar, x0)
    return root_a * eps - root_1ma * x0


def to_eps_and_x0(
    pred: Tensor, x_t: Tensor, alpha_bar: float | Tensor, parameterization: Parameterization
) -> tuple[Tensor, Tensor]:
    """(ε̂, x̂₀) from a network's prediction ``pred`` of kind ``parameterization`` at x_t."""
    check_parameterization(parameterization)
    if parameterization == "eps":
        return pred, eps_to_x0(pred, x_t, alpha_bar)
    if parameterization == "x0":
        return x0_to_eps(pred, x_t, alpha_bar), pred
    return v_to_eps(pred, x_t, alpha_bar), v_to_x0(pred, x_t, alpha_bar)


def training_target(
    x0: Tensor, noise: Tensor, alpha_bar: float | Tensor, parameterization: Parameterization
) -> Tensor:
    """What a network of kind ``parameterization`` learns to predict at q_sample(x0, ᾱ, noise):
    the noise, the data, or the velocity v."""
    check_parameterization(parameterization)
    _same_shape(x0, noise, "x0", "noise")
    if parameterization == "eps":
        return noise
    if parameterization == "x0":
        return x0
    return eps_x0_to_v(noise, x0, alpha_bar)


def simple_loss(pred: Tensor, target: Tensor, kind: Literal["l2", "l1"] = "l2") -> Tensor:
    """L_simple (DDPM eq. 14): the mean squared (``"l2"``) or absolute (``"l1"``) error over
    every element, a 0-dim tensor.

    # official code: ``p_losses`` averages over (c, h, w), then over the batch; with one shape
    # per batch that is the same number as the mean over everything.
    """
    _same_shape(pred, target, "pred", "target")
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    raise ValueError(f"kind must be 'l2' or 'l1', got {kind!r}")
