"""Training-time densities π(t) of Stable Diffusion 3 (Esser et al., ICML 2024, arXiv 2403.03206).

Sec. 3.1 of the paper: drawing the training time t from a density π instead of U(0, 1) is the same
objective as weighting the uniform-t loss by π(t), w_t^π = t/(1 − t) · π(t) for rectified flow;
training samples t from π (never re-weights uniform draws). Package convention: t ∈ (0, 1),
t = 1 pure noise, t = 0 data.

* uniform: π(t) = 1 (the plain "rf" baseline);
* logit-normal (Eq. 19): u ~ N(m, s²), t = sigmoid(u);
  π(t; m, s) = 1/(s √(2π)) · 1/(t(1 − t)) · exp(−(logit t − m)²/(2 s²));
* mode with heavy tails (Eq. 20): u ~ U(0, 1), t = f_mode(u; s) = 1 − u − s (cos²(πu/2) − 1 + u);
  π(t) = 1/|f'_mode(f_mode⁻¹(t))|, a density only while f_mode is monotone, −1 ≤ s ≤ 2/(π − 2);
* CosMap (Eq. 21–22): t = 1 − 1/(tan(πu/2) + 1), π(t) = 2/(π − 2πt + 2πt²), the density whose
  log-SNR matches the cosine schedule.

The samplers mirror diffusers' ``compute_density_for_timestep_sampling`` (logit-normal and mode),
without its index into a shifted timestep table: here t is drawn directly (the paper's setting).
Draws are clipped to [1e−6, 1 − 1e−6] so t stays in the open interval in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from esser_lab.nn import placement

__all__ = ["MODE_S_MAX", "TimeDensity", "cosmap", "logit_normal", "mode", "uniform"]

MODE_S_MAX = 2.0 / (math.pi - 2.0)
"""The largest s for which f_mode is monotone (≈ 1.752): the paper's rf/mode(1.75)."""

_T_EPS = 1e-6
DensityKind = Literal["uniform", "logit_normal", "mode", "cosmap"]


@dataclass(frozen=True)
class TimeDensity:
    """A density π(t) on (0, 1) with its sampler. ``name`` is the paper's spelling of the part
    after "rf/" ("lognorm(0.00,1.00)", "mode(1.29)", "cosmap"; "uniform" for plain rf); build
    through :func:`uniform`, :func:`logit_normal`, :func:`mode` or :func:`cosmap`."""

    name: str
    kind: DensityKind = "uniform"
    params: tuple[float, ...] = ()

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """``n`` times t ~ π, float32 (n,) in (0, 1) on ``device``, drawn from ``generator``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if self.kind == "logit_normal":
            m, s = self.params
            u = placement.randn((n,), generator=generator, device=device, dtype=torch.float32)
            t = torch.sigmoid(m + s * u)
        else:
            u = placement.rand((n,), generator=generator, device=device, dtype=torch.float32)
            t = self._from_uniform(u)
        return t.clamp(_T_EPS, 1 - _T_EPS)

    def _from_uniform(self, u: Tensor) -> Tensor:
        """The map u ~ U(0, 1) ↦ t (identity, f_mode, or the CosMap)."""
        if self.kind == "uniform":
            return u
        if self.kind == "mode":
            (s,) = self.params
            return 1 - u - s * (torch.cos(math.pi / 2 * u) ** 2 - 1 + u)
        if self.kind == "cosmap":
            return 1 - 1 / (torch.tan(math.pi / 2 * u) + 1)
        raise AssertionError(self.kind)  # logit-normal samples through its normal draw

    def pdf(self, t: Tensor) -> Tensor:
        """π(t) at ``t`` (any shape, values in (0, 1)), in ``t``'s dtype (computed in float64)."""
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"t must be a floating tensor, got {getattr(t, 'dtype', type(t))}")
        x = t.to(torch.float64)
        if self.kind == "uniform":
            p = torch.ones_like(x)
        elif self.kind == "logit_normal":
            m, s = self.params
            logit = torch.log(x) - torch.log1p(-x)
            p = torch.exp(-((logit - m) ** 2) / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
            p = p / (x * (1 - x))
        elif self.kind == "cosmap":
            p = 2 / (math.pi - 2 * math.pi * x + 2 * math.pi * x * x)
        else:
            (s,) = self.params
            u = _mode_inverse(x, s)
            slope = -1 - s * (1 - math.pi / 2 * torch.sin(math.pi * u))  # f'_mode(u) ≤ 0
            p = 1 / slope.abs()
        inside = (x > 0) & (x < 1)
        return torch.where(inside, p, torch.zeros_like(p)).to(t.dtype)


def _mode_inverse(t: Tensor, s: float, iters: int = 60) -> Tensor:
    """u with f_mode(u; s) = t by bisection (f_mode falls from 1 at u = 0 to 0 at u = 1)."""
    lo, hi = torch.zeros_like(t), torch.ones_like(t)
    for _ in range(iters):
        mid = (lo + hi) / 2
        f = 1 - mid - s * (torch.cos(math.pi / 2 * mid) ** 2 - 1 + mid)
        above = f > t  # still on the noisy side: the root is at larger u
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return (lo + hi) / 2


def _number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def uniform() -> TimeDensity:
    """π(t) = 1: plain rectified flow ("rf")."""
    return TimeDensity("uniform", "uniform")


def logit_normal(m: float = 0.0, s: float = 1.0) -> TimeDensity:
    """The logit-normal density of SD3 Eq. 19 (the paper's best: m = 0, s = 1); m > 0 leans to
    the noise, m < 0 to the data, s sets the width."""
    m, s = _number(m, "m"), _number(s, "s")
    if not s > 0:
        raise ValueError(f"the logit-normal's s must be > 0, got {s}")
    return TimeDensity(f"lognorm({m:.2f},{s:.2f})", "logit_normal", (m, s))


def mode(s: float = 1.29) -> TimeDensity:
    """Mode sampling with heavy tails, SD3 Eq. 20 (s = 0 is uniform, s > 0 favours the middle
    times, s < 0 the ends); diffusers' default ``mode_scale`` is 1.29. Refuses s outside
    [−1, 2/(π − 2)], where f_mode is not monotone and no density exists."""
    s = _number(s, "s")
    if not -1.0 <= s <= MODE_S_MAX + 1e-12:
        raise ValueError(
            f"mode(s) needs −1 ≤ s ≤ 2/(π − 2) ≈ {MODE_S_MAX:.4f} (f_mode is not monotone "
            f"outside, SD3 Sec. 3.1), got s = {s}"
        )
    return TimeDensity(f"mode({s:.2f})", "mode", (s,))


def cosmap() -> TimeDensity:
    """CosMap, SD3 Eq. 21–22: the rectified-flow times whose log-SNR is the cosine schedule's."""
    return TimeDensity("cosmap", "cosmap")
