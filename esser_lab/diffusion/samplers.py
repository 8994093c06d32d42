"""Samplers of the Gaussian diffusion: DDPM ancestral sampling and DDIM (η), with DDIM inversion.

* DDPM (Ho et al. 2020, arXiv 2006.11239, Algorithm 2): all T steps, each a draw from the
  posterior q(x_{n−1} | x_n, x̂₀) with variance β̃_n (the official ``p_sample_loop``).
* DDIM (Song, Meng & Ermon 2021, arXiv 2010.02502, eq. 12): a subsequence τ of the T indices;
  η = 0 is deterministic (an ODE solver), η = 1 has DDPM's posterior variance on the subsequence.
  The index subsequence and the ᾱ bookkeeping follow the latent-diffusion ``DDIMSampler``
  (``make_ddim_timesteps``, ``make_ddim_sampling_parameters``), chapter 14.

Every sampler calls a :data:`esser_lab.diffusion.Denoiser` with continuous times t = (n + 1) / T
of shape (b,), float32, runs under ``torch.no_grad()`` and draws its noise from ``generator`` on
the generator's device (:mod:`esser_lab.nn.placement`), so a CPU generator gives the same numbers
whatever the device of the model. The initial noise is the caller's (``noise``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from esser_lab.diffusion.gaussian import Parameterization, check_parameterization, to_eps_and_x0
from esser_lab.diffusion.protocol import Denoiser, check_cond_batch, index_to_time
from esser_lab.diffusion.schedules import DiscreteSchedule
from esser_lab.nn import placement

__all__ = [
    "Spacing",
    "Trajectory",
    "ddim_invert",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
]

Spacing = Literal["uniform", "quad"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A sampler's path: ``sample`` (the result), ``x_t`` (the states from the initial noise to the
    sample, steps + 1 of them), ``x0_pred`` (the x̂₀ of each step) and ``t`` (steps,) the
    continuous times at which the model was called, from noisiest to cleanest."""

    sample: Tensor
    x_t: list[Tensor]
    x0_pred: list[Tensor]
    t: Tensor


def ddim_timesteps(T: int, steps: int, spacing: Spacing = "uniform") -> Tensor:
    """The DDIM index subsequence τ (ascending, long) of the official ``make_ddim_timesteps``.

    * ``"uniform"``: 0, c, 2c, … < T with c = T // steps, plus one: 1, 21, …, 981 for T = 1000
      and 50 steps (diffusers: ``timestep_spacing="leading"``, ``steps_offset=1``). When T is not a
      multiple of ``steps`` the official range holds more than ``steps`` entries (T = 1000,
      7 steps → 8 entries 1, 143, …, 995); we keep its values, and refuse the cases where it
      would reach the non-existent index T (``steps == T``; T = 1000 and 3 steps).
    * ``"quad"``: ⌊(linspace(0, √(0.8 T), steps))²⌋ + 1, denser near the data; the official
      values may repeat small indices (then a step changes nothing).

    # official code: the +1 shifts every index by one step towards the noise ("to get the final
    # alpha values right"); the sampler then starts from ᾱ at τ[−1] (981), not at T − 1.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an int ≥ 1, got {T!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T = {T}], got {steps!r}")
    if spacing == "uniform":
        tau = torch.arange(0, T, T // steps) + 1
    elif spacing == "quad":
        grid = torch.linspace(0.0, math.sqrt(0.8 * T), steps, dtype=torch.float64)
        tau = (grid**2).long() + 1  # .long() truncates towards zero, as NumPy's astype(int)
    else:
        raise ValueError(f"spacing must be one of {list(get_args(Spacing))}, got {spacing!r}")
    if int(tau[-1]) > T - 1:
        raise ValueError(
            f"the official {spacing!r} spacing of {steps} steps over T = {T} reaches index "
            f"{int(tau[-1])}, past the last index {T - 1}; choose another number of steps"
        )
    return tau


def _check_start(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1 or x.shape[0] < 1:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating tensor (b, ...) with b ≥ 1, got {got}")


def _check_schedule(schedule: DiscreteSchedule) -> None:
    if not isinstance(schedule, DiscreteSchedule):
        raise TypeError(f"schedule must be a DiscreteSchedule, got {type(schedule).__name__}")


def _call(model: Denoiser, x: Tensor, n: int, T: int, cond: Any) -> tuple[Tensor, Tensor]:
    """The model's prediction at x (index n, time (n + 1)/T) and the times (b,) it was given."""
    t = torch.full((x.shape[0],), index_to_time(n, T), dtype=torch.float32, device=x.device)
    pred = model(x, t, cond)
    if not isinstance(pred, Tensor) or pred.shape != x.shape:
        got = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
        raise ValueError(
            f"the model must return a prediction of x_t's shape {tuple(x.shape)}, got {got}"
        )
    return pred, t


def _ddim_alphas(
    schedule: DiscreteSchedule, tau: Tensor, eta: float
) -> tuple[list[float], list[float], list[float]]:
    """ᾱ at τ, the ᾱ each step lands on, and σ per step (``make_ddim_sampling_parameters``).

    The step from τ_i lands on ᾱ at τ_{i−1}; the last step (from τ_0) lands on ᾱ at index 0,
    one DDPM step of noise above the data (1 − ᾱ_0 = β_0), not on ᾱ = 1 as in the DDIM paper:
    # official code: alphas_prev = [ᾱ[0]] + ᾱ[τ[:-1]] (diffusers: ``set_alpha_to_one=False``).
    σ_i = η √((1 − ᾱ_prev)/(1 − ᾱ)) √(1 − ᾱ/ᾱ_prev) (DDIM eq. 16).
    """
    table = schedule.alphas_cumprod
    alphas = table[tau]
    prev = torch.cat((table[:1], table[tau[:-1]]))
    sigmas = eta * ((1 - prev) / (1 - alphas) * (1 - alphas / prev)).sqrt()
    if bool((1 - prev - sigmas**2 < -1e-12).any()):
        raise ValueError(f"eta = {eta} gives σ² > 1 − ᾱ_prev on some step; use 0 ≤ eta ≤ 1")
    return alphas.tolist(), prev.tolist(), sigmas.tolist()


@torch.no_grad()
def ddim_sample(
    model: Denoiser,
    noise: Tensor,
    schedule: DiscreteSchedule,
    steps: int = 50,
    eta: float = 0.0,
    cond: Any = None,
    generator: torch.Generator | None = None,
    parameterization: Parameterization = "eps",
    return_trajectory: bool = False,
    spacing: Spacing = "uniform",
) -> Tensor | Trajectory:
    """DDIM from ``noise`` (b, ...) to a sample, over the subsequence :func:`ddim_timesteps`.

    Each step (DDIM eq. 12) from ᾱ at τ_i to ᾱ_prev (:func:`_ddim_alphas`):
    x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev − σ²) ε̂ + σ z, z ~ N(0, I) from ``generator``;
    (ε̂, x̂₀) from the model's prediction of kind ``parameterization``. η = 0 draws nothing and is
    deterministic. Returns the sample, or a :class:`Trajectory` when ``return_trajectory``.
    """
    _check_start(noise, "noise")
    _check_schedule(schedule)
    check_parameterization(parameterization)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 0:
        raise ValueError(f"eta must be a number ≥ 0, got {eta!r}")
    check_cond_batch(cond, noise.shape[0])
    tau = ddim_timesteps(schedule.T, steps, spacing)
    alphas, prev, sigmas = _ddim_alphas(schedule, tau, float(eta))
    x = noise
    states, x0s, times = [x], [], []
    for i in reversed(range(len(alphas))):
        pred, t = _call(model, x, int(tau[i]), schedule.T, cond)
        eps, x0 = to_eps_and_x0(pred, x, alphas[i], parameterization)
        a_prev, sigma = prev[i], sigmas[i]
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            z = placement.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + sigma * z
        if return_trajectory:
            states.append(x)
            x0s.append(x0)
            times.append(t[:1])
    if return_trajectory:
        return Trajectory(sample=x, x_t=states, x0_pred=x0s, t=torch.cat(times))
    return x


@torch.no_grad()
def ddim_invert(
    model: Denoiser,
    x0: Tensor,
    schedule: DiscreteSchedule,
    steps: int = 50,
    cond: Any = None,
    parameterization: Parameterization = "eps",
    spacing: Spacing = "uniform",
    fixed_point_iters: int = 0,
) -> Tensor:
    """Deterministic DDIM encoding (η = 0) of data ``x0`` (b, ...) into the noise that
    :func:`ddim_sample` with the same arguments maps back to ``x0``.

    It runs :func:`ddim_sample`'s steps backwards: starting at ᾱ at index 0 (where the sampler
    ends), each step from level ᾱ_from to the next-noisier level ᾱ_to re-noises the current point
    with the ε̂ the model predicts *there* (at the time of ᾱ_from):
    x_to = √ᾱ_to x̂₀ + √(1 − ᾱ_to) ε̂. This is the explicit Euler step of the same ODE in the
    other direction, so the round trip is exact only as steps → ∞ (error O(1/steps)).

    ``fixed_point_iters`` > 0 refines each step towards the exact inverse of the sampler's step:
    it solves x_to = √ᾱ_to x̂₀ + √(1 − ᾱ_to) ε̂ with ε̂ = ε̂(x_to) (the model at x_to's own time, as
    the sampler evaluates it) by fixed-point iteration, starting from the plain step; one more
    model call per iteration and step (fixed-point DDIM inversion, as in Pan et al., ICCV 2023,
    "Effective real image editing with accelerated iterative diffusion inversion"). A few
    iterations make the round trip exact to the iteration's tolerance (5 at 50 steps: < 1e−3
    for the exact Gaussian model of the tests).
    """
    _check_start(x0, "x0")
    _check_schedule(schedule)
    check_parameterization(parameterization)
    check_cond_batch(cond, x0.shape[0])
    if isinstance(fixed_point_iters, bool) or not isinstance(fixed_point_iters, int):
        raise TypeError(f"fixed_point_iters must be an int, got {fixed_point_iters!r}")
    if fixed_point_iters < 0:
        raise ValueError(f"fixed_point_iters must be ≥ 0, got {fixed_point_iters}")
    tau = ddim_timesteps(schedule.T, steps, spacing).tolist()
    table = schedule.alphas_cumprod.tolist()
    x = x0
    for n_from, n_to in zip([0, *tau[:-1]], tau, strict=True):
        a_from, a_to = table[n_from], table[n_to]
        pred, _ = _call(model, x, n_from, schedule.T, cond)
        eps, _ = to_eps_and_x0(pred, x, a_from, parameterization)
        x_to = _renoise(x, eps, a_from, a_to)
        for _ in range(fixed_point_iters):
            pred, _ = _call(model, x_to, n_to, schedule.T, cond)
            eps, _ = to_eps_and_x0(pred, x_to, a_to, parameterization)
            x_to = _renoise(x, eps, a_from, a_to)
        x = x_to
    return x


def _renoise(x: Tensor, eps: Tensor, a_from: float, a_to: float) -> Tensor:
    """The η = 0 DDIM move of x from level ᾱ_from to ᾱ_to along the noise estimate ε̂:
    √ᾱ_to x̂₀ + √(1 − ᾱ_to) ε̂ with x̂₀ = (x − √(1 − ᾱ_from) ε̂) / √ᾱ_from."""
    x0 = (x - math.sqrt(1 - a_from) * eps) / math.sqrt(a_from)
    return math.sqrt(a_to) * x0 + math.sqrt(1 - a_to) * eps


@torch.no_grad()
def ddpm_sample(
    model: Denoiser,
    noise: Tensor,
    schedule: DiscreteSchedule,
    cond: Any = None,
    generator: torch.Generator | None = None,
    parameterization: Parameterization = "eps",
    clip_denoised: bool = False,
) -> Tensor:
    """Ancestral sampling over all T steps from ``noise`` (b, ...) (DDPM Algorithm 2).

    For n = T − 1 … 0: x̂₀ from the prediction, μ̃ = coef1_n x̂₀ + coef2_n x_n (the posterior
    mean), x_{n−1} = μ̃ + exp(½ log β̃_n) z with z ~ N(0, I) from ``generator``, and no noise at
    n = 0 (where μ̃ = x̂₀: the result is the last data prediction).
    ``clip_denoised`` clamps x̂₀ to [−1, 1] before the posterior.
    # official code: DDPM's ``clip_denoised`` defaults to True (pixel space in [−1, 1]); off
    # here, as a latent space has no such range.
    """
    _check_start(noise, "noise")
    _check_schedule(schedule)
    check_parameterization(parameterization)
    check_cond_batch(cond, noise.shape[0])
    table = schedule.alphas_cumprod.tolist()
    coef1 = schedule.posterior_mean_coef1.tolist()
    coef2 = schedule.posterior_mean_coef2.tolist()
    std = (0.5 * schedule.posterior_log_variance_clipped).exp().tolist()
    x = noise
    for n in reversed(range(schedule.T)):
        pred, _ = _call(model, x, n, schedule.T, cond)
        _, x0 = to_eps_and_x0(pred, x, table[n], parameterization)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        x = coef1[n] * x0 + coef2[n] * x
        if n > 0:
            z = placement.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + std[n] * z
    return x
