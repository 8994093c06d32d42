"""The resolution-dependent timestep shift of SD3 on an exactly solvable toy (Esser et al., ICML
2024, arXiv 2403.03206, Sec. 5.3.2, Eq. 23), chapter 17.

An "image" of n pixels is x₀ = c·1 + d: a global value c from a mixture of ``modes`` Gaussians
(means evenly spaced on [−1, 1], std ``mode_std`` = 0.03) and per-pixel detail d ~ N(0, 0.1² I).
On the rectified-flow path z_t = (1 − t) x₀ + t ε (t = 1 noise) the pixel mean z̄ is a sufficient
statistic for c, seen through noise of variance t²/n: the more pixels, the longer the global
decision stays readable at high t. The posterior mean E[x₀ | z_t] is exact (:func:`posterior_mean`):
the mean direction is a 1-d mixture posterior, the n − 1 orthogonal directions a Gaussian one.
So the exact velocity v = (z_t − E[x₀ | z_t]) / t needs no training, and K Euler steps on the
shifted grid t' = α t / (1 + (α − 1) t) (:func:`esser_lab.diffusion.time_grid`) show which α
samples best at which n. The paper's rule α = √(m/n) (its n and m count pixels) says the best α
grows like √n.

**What is measured** (:func:`shift_sweep`): the per-pixel squared 2-Wasserstein distance
W2²(generated, true) / n of the n-pixel distributions. Both are products over the mean direction
and its orthogonal complement, and the two parts are independent in both, so it splits exactly:
W2²_1d(pixel mean) + (n − 1)/n · (g_K − 0.1)², with g_K the std the Euler steps give each
orthogonal noise direction (a product of K scalars) against the detail's 0.1. The 1-d term
compares ``n_samples`` stratified quantiles (randomly offset from ``seed``) of the generated
pixel mean, run through the K steps, with the true mixture's quantiles at the same levels.

Measured (K = 4, α ∈ {1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}, 4096 quantiles, seed 0):
best α = 3, 6, 12, 24, 48 at n = 16, 64, 256, 1024, 4096: it doubles with each fourfold n,
α* ≈ 0.75 √n, the √(m/n) law (K = 8: 2, 6, 12, 24, 48; seed 1 the same as seed 0). At n = 256,
W2²·10³ = 233 (α = 1), 68 (α = 3), 35 (α = 12). A sweep of the five n takes ~0.3 s on one core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.diffusion.flow import time_grid

__all__ = [
    "ShiftSweep",
    "ShiftToy",
    "best_on_grid",
    "euler_pixel_mean",
    "file_shift_claims",
    "file_trained_shift_claim",
    "log_slope",
    "posterior_mean",
    "shift_sweep",
]


@dataclass(frozen=True)
class ShiftToy:
    """The toy data: ``modes`` global values evenly on [−1, 1] (std ``mode_std``), per-pixel
    detail std ``detail_std``."""

    modes: int = 8
    mode_std: float = 0.03
    detail_std: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.modes, bool) or not isinstance(self.modes, int) or self.modes < 1:
            raise ValueError(f"modes must be an int ≥ 1, got {self.modes!r}")
        if not (self.mode_std > 0 and self.detail_std > 0):
            raise ValueError(
                f"mode_std and detail_std must be > 0, got {self.mode_std}, {self.detail_std}"
            )

    @property
    def centres(self) -> Tensor:
        """The mixture's means (modes,), float64."""
        if self.modes == 1:
            return torch.zeros(1, dtype=torch.float64)
        return torch.linspace(-1.0, 1.0, self.modes, dtype=torch.float64)

    def sample(self, batch: int, pixels: int, generator: torch.Generator | None = None) -> Tensor:
        """``batch`` images (batch, pixels), float64."""
        k = torch.randint(self.modes, (batch,), generator=generator)
        c = self.centres[k] + self.mode_std * torch.randn(batch, generator=generator).double()
        d = self.detail_std * torch.randn(batch, pixels, generator=generator).double()
        return c[:, None] + d


def _mean_posterior(toy: ShiftToy, z_mean: Tensor, t: float, pixels: int) -> Tensor:
    """E[x̄₀ | z̄_t] for the pixel mean: x̄₀ = c + d̄ ~ Σ_k N(μ_k, s²), s² = σ_c² + σ_d²/n, seen as
    z̄ = (1 − t) x̄₀ + t ε̄, ε̄ ~ N(0, 1/n). Per mode a Gaussian posterior, weighted by the
    modes' responsibilities."""
    var_x = toy.mode_std**2 + toy.detail_std**2 / pixels
    var_z = (1 - t) ** 2 * var_x + t**2 / pixels
    mu = toy.centres.to(z_mean.device)
    resid = z_mean[..., None] - (1 - t) * mu  # (..., modes)
    resp = torch.softmax(-0.5 * resid**2 / var_z, dim=-1)
    per_mode = mu + (1 - t) * var_x / var_z * resid
    return (resp * per_mode).sum(-1)


def _detail_gain(toy: ShiftToy, t: float) -> float:
    """E[d_⊥ | r] = gain · r on the directions orthogonal to 1 (r = (1 − t) d_⊥ + t ε_⊥)."""
    var = toy.detail_std**2
    return (1 - t) * var / ((1 - t) ** 2 * var + t**2)


def posterior_mean(toy: ShiftToy, z: Tensor, t: float) -> Tensor:
    """The exact E[x₀ | z_t] (b, n) for images ``z`` (b, n) at time ``t`` ∈ [0, 1]: the pixel mean
    through the mixture posterior, the rest (z − z̄) through the Gaussian gain."""
    if not isinstance(z, Tensor) or z.dim() != 2 or not z.is_floating_point():
        raise ValueError(f"z must be a floating (b, n) tensor, got {getattr(z, 'shape', z)}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    pixels = z.shape[1]
    z_mean = z.double().mean(1)
    mean = _mean_posterior(toy, z_mean, t, pixels)
    rest = z.double() - z_mean[:, None]
    return mean[:, None] + _detail_gain(toy, t) * rest


def euler_pixel_mean(
    toy: ShiftToy, noise_mean: Tensor, pixels: int, steps: int, alpha: float
) -> tuple[Tensor, float]:
    """K = ``steps`` Euler steps of dz/dt = (z − E[x₀ | z])/t on the α-shifted grid, split along
    the sufficient statistic: the pixel means (from ``noise_mean``, i.e. ε̄, std 1/√n) and the
    scalar g_K each orthogonal noise direction is multiplied by. Returns (z̄_0, g_K)."""
    grid = time_grid(steps, shift=alpha).tolist()
    z_mean, gain = noise_mean.double(), 1.0
    for t_now, t_next in zip(grid[:-1], grid[1:], strict=True):
        h = t_next - t_now
        z_mean = z_mean + h * (z_mean - _mean_posterior(toy, z_mean, t_now, pixels)) / t_now
        gain = gain * (1 + h * (1 - _detail_gain(toy, t_now)) / t_now)
    return z_mean, gain


def _mixture_quantiles(toy: ShiftToy, levels: Tensor, pixels: int) -> Tensor:
    """The true pixel mean's quantiles at ``levels`` (bisection on the mixture CDF)."""
    std = math.sqrt(toy.mode_std**2 + toy.detail_std**2 / pixels)
    mu = toy.centres
    lo = torch.full_like(levels, float(mu.min()) - 10 * std)
    hi = torch.full_like(levels, float(mu.max()) + 10 * std)
    for _ in range(80):
        mid = (lo + hi) / 2
        cdf = (0.5 * torch.erfc(-(mid[:, None] - mu) / (std * math.sqrt(2)))).mean(1)
        below = cdf < levels
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class ShiftSweep:
    """The sweep's table: ``w2`` (len(pixels), len(alphas)) per-pixel W2², ``best_alpha`` per n."""

    pixels: tuple[int, ...]
    alphas: tuple[float, ...]
    steps: int
    w2: Tensor
    best_alpha: dict[int, float] = field(default_factory=dict)

    def at(self, pixels: int, alpha: float) -> float:
        """W2² per pixel at (n, α)."""
        return float(self.w2[self.pixels.index(pixels), self.alphas.index(alpha)])


def shift_sweep(
    pixels: Sequence[int],
    alphas: Sequence[float],
    steps: int = 4,
    n_samples: int = 4096,
    seed: int = 0,
    toy: ShiftToy | None = None,
) -> ShiftSweep:
    """Per-pixel W2² (module docstring) of K = ``steps`` Euler steps on the α-shifted grid, for
    every n in ``pixels`` and α in ``alphas``; ``best_alpha[n]`` is the α of least W2²."""
    toy = ShiftToy() if toy is None else toy
    if not pixels or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in pixels):
        raise ValueError(f"pixels must be a non-empty list of ints ≥ 2, got {pixels!r}")
    if not alphas or any(not a > 0 for a in alphas):
        raise ValueError(f"alphas must be a non-empty list of numbers > 0, got {alphas!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int ≥ 2, got {n_samples!r}")
    generator = torch.Generator().manual_seed(seed)
    offset = float(torch.rand((), generator=generator, dtype=torch.float64))
    levels = (torch.arange(n_samples, dtype=torch.float64) + offset) / n_samples
    normal = math.sqrt(2) * torch.erfinv(2 * levels - 1)  # standard normal quantiles
    table = torch.empty(len(pixels), len(alphas), dtype=torch.float64)
    for i, n in enumerate(pixels):
        target = _mixture_quantiles(toy, levels, n)
        for j, alpha in enumerate(alphas):
            z_mean, gain = euler_pixel_mean(toy, normal / math.sqrt(n), n, steps, float(alpha))
            mean_term = (z_mean.sort().values - target).pow(2).mean()
            table[i, j] = mean_term + (n - 1) / n * (gain - toy.detail_std) ** 2
    best = {n: float(alphas[int(table[i].argmin())]) for i, n in enumerate(pixels)}
    return ShiftSweep(tuple(pixels), tuple(float(a) for a in alphas), steps, table, best)


# ---- the shift claims (chapter 17's card) ----------------------------------------------------


def log_slope(values: Mapping[int, float]) -> float:
    """The least-squares slope of log(value) against log(key): the exponent of a power law
    (0.5 for α = √(m/n), Eq. 23)."""
    if len(values) < 2:
        raise ValueError(f"a slope needs at least two points, got {dict(values)}")
    bad = {k: v for k, v in values.items() if not (k > 0 and v > 0)}
    if bad:
        raise ValueError(f"keys and values must be > 0 for a log–log slope, got {bad}")
    x = torch.tensor([float(k) for k in values], dtype=torch.float64).log()
    y = torch.tensor([float(v) for v in values.values()], dtype=torch.float64).log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def file_shift_claims(card: Card, best_alpha: Mapping[int, float]) -> None:
    """Files the resolution shift: the log–log slope of the analytic sweep's best α against the
    number of pixels (Eq. 23's √(m/n) law predicts 0.5; 0 is no growth, the criterion)."""
    if len(best_alpha) < 2:
        raise ValueError(f"the shift sweep needs at least two pixel counts, got {dict(best_alpha)}")
    small, large = min(best_alpha), max(best_alpha)
    card.add(
        "shift-alpha-exponent",
        "the best timestep shift α grows with the number of pixels, as a power of it "
        "(Eq. 23: α = √(m/n), exponent 0.5)",
        metric=f"log–log slope of the best α of the exact posterior's Euler sampler against "
        f"the pixels, {small} to {large}",
        ours=log_slope(best_alpha),
        baseline="no growth with the pixels (slope 0)",
        baseline_value=0.0,
        why="the paper's Sec. 5.3.2: the same noise destroys less of a larger image, so "
        "sampling at a higher resolution needs more time near the noise",
        better="higher",
        paper=PaperPair(0.5, 0.0, "exponent of α = √(m/n)", "Sec. 5.3.2, Eq. 23"),
    )


def best_on_grid(scores: Mapping[float, float]) -> float:
    """The key of the lowest score (the first of equals: the smaller shift)."""
    if not scores:
        raise ValueError("best_on_grid needs at least one (α, score) pair")
    bad = {k: v for k, v in scores.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"scores must be finite, got {bad}")
    return min(sorted(scores), key=lambda alpha: scores[alpha])


def file_trained_shift_claim(
    card: Card,
    sweeps: Mapping[int, Mapping[float, float]],
    *,
    steps: int,
    fine_tune_steps: int,
) -> None:
    """Files the shift on trained models: ``sweeps[tokens][α]`` = the FID-style score of
    ``steps``-step Euler samples on the grid shifted by α, for the model trained at the lower
    resolution and for its fine-tuned copy at the higher one (keys: latent tokens per image).
    The claim is the log–log slope of the best α against the tokens (> 0: it grows)."""
    if len(sweeps) != 2:
        raise ValueError(f"need sweeps at exactly two resolutions, got {sorted(sweeps)}")
    best = {n: best_on_grid(scores) for n, scores in sweeps.items()}
    low, high = min(best), max(best)
    card.add(
        "shift-trained-exponent",
        "a model fine-tuned at a higher resolution samples best with a larger timestep shift α "
        "than at its pre-training resolution (Eq. 23: α = √(m/n))",
        metric=f"log–log slope of the best α (lowest FID-style score, {steps} Euler steps) "
        f"against the latent tokens, {low} (pre-trained) to {high} (fine-tuned "
        f"{fine_tune_steps} steps)",
        ours=log_slope(best),
        baseline="no growth with the resolution (slope 0)",
        baseline_value=0.0,
        why="the paper's Sec. 5.3.2: it pre-trains at 256² and shifts its schedule to fine-tune "
        "and sample at 1024²; ties on the α grid count as no growth",
        better="higher",
        paper=PaperPair(0.5, 0.0, "exponent of α = √(m/n)", "Sec. 5.3.2, Eq. 23"),
    )
