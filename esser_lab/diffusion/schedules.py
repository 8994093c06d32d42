"""Discrete noise schedules: β_n for n = 0 … T − 1, and ᾱ_n = ∏_{m ≤ n} (1 − β_m).

The variance-preserving forward process of DDPM (Ho et al. 2020, arXiv 2006.11239) as the latent
diffusion code sets it up (``make_beta_schedule`` and ``DDPM.register_schedule`` of
CompVis/latent-diffusion, chapter 14): x_n = √ᾱ_n x₀ + √(1 − ᾱ_n) ε. Index n sits at continuous
time t = (n + 1) / T (:func:`esser_lab.diffusion.index_to_time`); n = T − 1 is the noisiest.
Everything is computed in float64, as the official code does in NumPy before casting its buffers
to float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import Tensor

from esser_lab.diffusion.protocol import time_to_index
from esser_lab.nn.placement import to_device

__all__ = ["BetaSchedule", "DiscreteSchedule", "make_beta_schedule"]

BetaSchedule = Literal["linear", "cosine", "sqrt_linear", "sqrt"]


def make_beta_schedule(
    kind: BetaSchedule,
    n_timestep: int = 1000,
    linear_start: float = 1e-4,
    linear_end: float = 2e-2,
    cosine_s: float = 8e-3,
) -> Tensor:
    """β_0 … β_{T−1} as a float64 tensor (T,) on the CPU (also inside a meta-device context),
    T = ``n_timestep``.

    * ``"linear"``: the LDM default, *not* linear in β: √β runs linearly from √linear_start to
      √linear_end and is squared (diffusers calls this ``"scaled_linear"``), so β_0 =
      linear_start and β_{T−1} = linear_end.
    * ``"cosine"``: Nichol & Dhariwal 2021 (arXiv 2102.09672, eq. 17): ᾱ(u) ∝
      cos²((u + s)/(1 + s) · π/2) at u = n/T, β_n = 1 − ᾱ(u_{n+1})/ᾱ(u_n), clipped to
      [0, 0.999] as the official code does.
    * ``"sqrt_linear"``: β linear from linear_start to linear_end (DDPM's own schedule, despite
      the name).
    * ``"sqrt"``: √ of that linear ramp.
    """
    if isinstance(n_timestep, bool) or not isinstance(n_timestep, int) or n_timestep < 1:
        raise ValueError(f"n_timestep must be an int ≥ 1, got {n_timestep!r}")
    if kind not in get_args(BetaSchedule):
        raise ValueError(f"kind must be one of {list(get_args(BetaSchedule))}, got {kind!r}")
    if kind == "cosine":
        if not cosine_s > 0:
            raise ValueError(f"cosine_s must be > 0, got {cosine_s}")
        u = torch.arange(n_timestep + 1, dtype=torch.float64, device="cpu") / n_timestep
        f = torch.cos((u + cosine_s) / (1 + cosine_s) * (math.pi / 2)) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0.0, 0.999)
    if not 0 < linear_start <= linear_end:
        raise ValueError(
            f"need 0 < linear_start ≤ linear_end, got linear_start={linear_start}, "
            f"linear_end={linear_end}"
        )
    if kind == "linear":
        root = torch.linspace(
            math.sqrt(linear_start),
            math.sqrt(linear_end),
            n_timestep,
            dtype=torch.float64,
            device="cpu",
        )
        return root**2
    ramp = torch.linspace(linear_start, linear_end, n_timestep, dtype=torch.float64, device="cpu")
    return ramp if kind == "sqrt_linear" else ramp.sqrt()


@dataclass(frozen=True, eq=False)
class DiscreteSchedule:
    """A DDPM schedule of T steps: ``betas`` (T,) and the float64 tables derived from them.

    * ``alphas_cumprod`` (T,): ᾱ_n = ∏_{m ≤ n} (1 − β_m), decreasing;
    * ``alphas_cumprod_prev`` (T,): ᾱ_{n−1}, with ᾱ_{−1} = 1 (clean data);
    * ``posterior_variance`` (T,): β̃_n = β_n (1 − ᾱ_{n−1}) / (1 − ᾱ_n), the variance of
      q(x_{n−1} | x_n, x₀) (DDPM eq. 7); 0 at n = 0;
    * ``posterior_log_variance_clipped`` (T,): log max(β̃_n, 1e−20) (the official buffer; the
      n = 0 entry is never used to add noise);
    * ``posterior_mean_coef1/2`` (T,): μ̃_n = coef1 x₀ + coef2 x_n.

    The tables stay on the CPU in float64 (the samplers read them as Python numbers, so no GPU
    sync); :meth:`alpha_bar` gathers on the device of the times it is given.
    """

    betas: Tensor
    alphas_cumprod: Tensor = field(init=False, repr=False)
    alphas_cumprod_prev: Tensor = field(init=False, repr=False)
    posterior_variance: Tensor = field(init=False, repr=False)
    posterior_log_variance_clipped: Tensor = field(init=False, repr=False)
    posterior_mean_coef1: Tensor = field(init=False, repr=False)
    posterior_mean_coef2: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = self.betas
        if not isinstance(betas, Tensor) or betas.dim() != 1 or not betas.is_floating_point():
            got = f"{betas.dtype} {tuple(betas.shape)}" if isinstance(betas, Tensor) else betas
            raise TypeError(f"betas must be a 1-d floating tensor (T,), got {got}")
        betas = betas.detach().to("cpu", torch.float64)
        if betas.numel() < 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be non-empty with every β in (0, 1)")
        alphas = 1 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        prev = torch.cat((torch.ones(1, dtype=torch.float64, device="cpu"), alphas_cumprod[:-1]))
        posterior_variance = betas * (1 - prev) / (1 - alphas_cumprod)
        tables = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": prev,
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
            "posterior_mean_coef1": betas * prev.sqrt() / (1 - alphas_cumprod),
            "posterior_mean_coef2": (1 - prev) * alphas.sqrt() / (1 - alphas_cumprod),
        }
        for name, value in tables.items():
            object.__setattr__(self, name, value)

    @classmethod
    def make(
        cls,
        kind: BetaSchedule,
        T: int = 1000,
        linear_start: float = 1e-4,
        linear_end: float = 2e-2,
        cosine_s: float = 8e-3,
    ) -> DiscreteSchedule:
        """The schedule of :func:`make_beta_schedule` (same arguments, ``T`` = ``n_timestep``)."""
        return cls(make_beta_schedule(kind, T, linear_start, linear_end, cosine_s))

    @classmethod
    def ldm(cls, T: int = 1000) -> DiscreteSchedule:
        """The latent-diffusion models' schedule: "linear" 0.0015 → 0.0195, T = 1000
        (``configs/latent-diffusion/*.yaml``; some released models end at 0.0155)."""
        return cls.make("linear", T, linear_start=0.0015, linear_end=0.0195)

    @classmethod
    def stable_diffusion(cls, T: int = 1000) -> DiscreteSchedule:
        """Stable Diffusion 1.x (and the 1.45 B LAION LDM): "linear" 0.00085 → 0.012, T = 1000
        (``v1-inference.yaml``; diffusers ``scaled_linear``)."""
        return cls.make("linear", T, linear_start=0.00085, linear_end=0.012)

    @property
    def T(self) -> int:
        """The number of steps."""
        return self.betas.shape[0]

    def alpha_bar(self, t: float | Tensor) -> Tensor:
        """ᾱ at continuous time ``t`` (a float, or a tensor of any shape: (b,), per-token (b, l)):
        the table's entry at the nearest index, ``time_to_index(t, T)``; float32, on ``t``'s
        device, of ``t``'s shape (0-dim for a float)."""
        if isinstance(t, Tensor):
            table = to_device(self.alphas_cumprod.to(torch.float32), t.device)
            return table[time_to_index(t, self.T)]
        return self.alphas_cumprod[time_to_index(t, self.T)].to(torch.float32)
