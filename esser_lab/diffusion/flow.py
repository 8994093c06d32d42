"""The rectified-flow path of Stable Diffusion 3 and the ODE solvers that sample it.

Esser et al., *Scaling Rectified Flow Transformers for High-Resolution Image Synthesis* (ICML 2024,
arXiv 2403.03206), chapter 17. The path is a straight line between data and noise,
x_t = (1 − t) x₀ + t ε (Sec. 3, "Rectified Flow"), in the package's time
convention: t = 1 is pure noise, t = 0 data. The network predicts the velocity
v = dx_t/dt = ε − x₀ (conditional flow matching), and sampling integrates dx/dt = v(x, t) from
t = 1 down to t = 0. Training times are drawn from a logit-normal density (Sec. 3.1) and, at
higher resolutions, shifted towards the noise (Sec. 5.3.2; ``Formulation.loss(shift=...)`` in
:mod:`esser_lab.diffusion.formulations`, :func:`shift_time` here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from esser_lab.diffusion.protocol import Denoiser, check_cond_batch, expand_like
from esser_lab.nn import placement

__all__ = [
    "euler_solve",
    "heun_solve",
    "logit_normal_t",
    "rf_sample",
    "rf_target",
    "shift_time",
    "time_grid",
]


def rf_sample(x0: Tensor, noise: Tensor, t: float | Tensor) -> Tensor:
    """x_t = (1 − t) x₀ + t ε; ``t`` a float, (b,) or per-token (b, l)."""
    if not isinstance(x0, Tensor) or not isinstance(noise, Tensor) or x0.shape != noise.shape:
        raise ValueError(
            f"x0 and noise must be tensors of one shape, got {getattr(x0, 'shape', x0)} and "
            f"{getattr(noise, 'shape', noise)}"
        )
    if isinstance(t, Tensor):  # 1 − t in float32 or better, then cast (as the Gaussian path)
        t = t.to(torch.promote_types(t.dtype, torch.float32)) if t.is_floating_point() else t
        return expand_like(1 - t, x0) * x0 + expand_like(t, x0) * noise
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
    return (1 - t) * x0 + t * noise


def rf_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The velocity the network regresses on: v = dx_t/dt = ε − x₀ (independent of t)."""
    if not isinstance(x0, Tensor) or not isinstance(noise, Tensor) or x0.shape != noise.shape:
        raise ValueError(
            f"x0 and noise must be tensors of one shape, got {getattr(x0, 'shape', x0)} and "
            f"{getattr(noise, 'shape', noise)}"
        )
    return noise - x0


def logit_normal_t(
    n: int,
    m: float = 0.0,
    s: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` training times t = sigmoid(u), u ~ N(m, s²) (SD3 Sec. 3.1; the paper's best: m = 0,
    s = 1); float32 (n,) on ``device``, drawn from ``generator``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int ≥ 1, got {n!r}")
    if not s > 0:
        raise ValueError(f"s must be > 0, got {s}")
    u = placement.randn((n,), generator=generator, device=device, dtype=torch.float32)
    return torch.sigmoid(m + s * u)


def shift_time(t: float | Tensor, shift: float) -> float | Tensor:
    """t' = shift t / (1 + (shift − 1) t) (SD3 Sec. 5.3.2, α = ``shift``): t' ≥ t for shift > 1,
    more time spent near the noise; endpoints fixed; shift = 1 is the identity (SD3 uses 3.0)."""
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def time_grid(
    steps: int,
    t_from: float = 1.0,
    t_to: float = 0.0,
    shift: float = 1.0,
    grid: str = "uniform",
) -> Tensor:
    """``steps`` + 1 times (float64) from ``t_from`` to ``t_to``.

    ``grid="uniform"``: a uniform grid, then :func:`shift_time`'d (the endpoints stay).
    ``grid="sd3"``: the official reference sampler's grid (``sd3_impls.py`` ``get_sigmas`` over
    ``ModelSamplingDiscreteFlow``, the same as diffusers' ``FlowMatchEulerDiscreteScheduler``):
    ``steps`` times uniform between ``t_from`` and the smallest training time shift(1/1000),
    each shifted (the last one is thus shifted twice: ≈ 0.001 at α = 1, ≈ 0.009 at α = 3), then
    0; the last of the ``steps`` updates is a jump from that small t to the data, so the grid
    spends one fewer step on the path than ``"uniform"`` (5 steps at α = 1: 1, .75, .50, .25,
    .001, 0). Needs ``t_from = 1`` and ``t_to = 0``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
    if not (0.0 <= t_to <= 1.0 and 0.0 <= t_from <= 1.0) or t_from == t_to:
        raise ValueError(f"need t_from ≠ t_to, both in [0, 1], got t_from={t_from}, t_to={t_to}")
    if grid == "uniform":
        return shift_time(torch.linspace(t_from, t_to, steps + 1, dtype=torch.float64), shift)
    if grid != "sd3":
        raise ValueError(f"grid must be 'uniform' or 'sd3', got {grid!r}")
    if (t_from, t_to) != (1.0, 0.0):
        raise ValueError(f"the sd3 grid runs from t = 1 to 0, got t_from={t_from}, t_to={t_to}")
    t_min = shift_time(1.0 / 1000, shift)
    times = shift_time(torch.linspace(1.0, t_min, steps, dtype=torch.float64), shift)
    return torch.cat((times, times.new_zeros(1)))


def _velocity(model: Denoiser, x: Tensor, t: float, cond: Any) -> Tensor:
    times = torch.full((x.shape[0],), t, dtype=torch.float32, device=x.device)
    v = model(x, times, cond)
    if not isinstance(v, Tensor) or v.shape != x.shape:
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(
            f"the model must return a velocity of x's shape {tuple(x.shape)}, got {got}"
        )
    return v


def _check_start(noise: Tensor, cond: Any) -> None:
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.dim() < 1:
        raise TypeError("noise must be a floating tensor (b, ...)")
    check_cond_batch(cond, noise.shape[0])


@torch.no_grad()
def euler_solve(
    model: Denoiser,
    noise: Tensor,
    steps: int,
    cond: Any = None,
    t_from: float = 1.0,
    t_to: float = 0.0,
    shift: float = 1.0,
    grid: str = "uniform",
) -> Tensor:
    """Explicit Euler on dx/dt = v(x, t) from x(t_from) = ``noise`` to t_to over
    :func:`time_grid` (``grid``: "uniform" or the official "sd3"):
    x ← x + (t_{i+1} − t_i) v(x, t_i). ``steps`` model calls."""
    _check_start(noise, cond)
    times = time_grid(steps, t_from, t_to, shift, grid).tolist()
    x = noise
    for t_now, t_next in zip(times[:-1], times[1:], strict=True):
        x = x + (t_next - t_now) * _velocity(model, x, t_now, cond)
    return x


@torch.no_grad()
def heun_solve(
    model: Denoiser,
    noise: Tensor,
    steps: int,
    cond: Any = None,
    t_from: float = 1.0,
    t_to: float = 0.0,
    shift: float = 1.0,
    grid: str = "uniform",
) -> Tensor:
    """Heun's method (explicit trapezoid, 2nd order) on the same grid as :func:`euler_solve`:
    an Euler predictor x̃ = x + h v(x, t_i), then x ← x + h/2 (v(x, t_i) + v(x̃, t_{i+1})).
    2 × ``steps`` model calls. The velocity of the straight path is finite at t = 0, so the
    corrector runs on the last step too (EDM's variant skips it at σ = 0)."""
    _check_start(noise, cond)
    times = time_grid(steps, t_from, t_to, shift, grid).tolist()
    x = noise
    for t_now, t_next in zip(times[:-1], times[1:], strict=True):
        h = t_next - t_now
        v_now = _velocity(model, x, t_now, cond)
        v_next = _velocity(model, x + h * v_now, t_next, cond)
        x = x + 0.5 * h * (v_now + v_next)
    return x
