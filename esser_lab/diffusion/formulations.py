"""The diffusion formulations compared by Stable Diffusion 3 (Esser et al., ICML 2024,
arXiv 2403.03206, Sec. 2–3, Tables 1–2), chapter 17: one loss and one sampler per name.

Every formulation is a forward path z_t = a_t x₀ + b_t ε with log-SNR λ_t = log(a_t²/b_t²), a
network output (velocity, ε, v, or EDM's F) and a training-time density; the paper writes each
loss as L_w = −½ E_{t~U(0,1), ε}[w_t λ'_t ‖ε_Θ(z_t, t) − ε‖²] (Eq. 10) with the weights of
:func:`loss_weight`. Package convention: t ∈ [0, 1], t = 1 noise, t = 0 data; the network is a
:data:`~esser_lab.diffusion.Denoiser` ``model(x_t, t, cond)``.

===================  ===========================  ==========  ===============================
name                 path (a_t, b_t)              output      sampler (``steps`` model calls)
===================  ===========================  ==========  ===============================
rf, rf/<density>     (1 − t, t)                   ε − x₀      Euler on the shifted grid
eps/linear           LDM's discrete linear VP     ε           DDIM η = 0, official spacing
v/linear             LDM's discrete linear VP     v           DDIM η = 0, official spacing
v/cos                (cos πt/2, sin πt/2)         v           DDIM η = 0 on a uniform t grid
edm(P_m,P_s)         (1, exp F_N⁻¹(t; P_m, P_s²))  F (EDM)     Euler on Karras' σ grid (ρ = 7)
===================  ===========================  ==========  ===============================

The rf densities (:mod:`esser_lab.diffusion.densities`) are ``lognorm(m,s)``, ``mode(s)`` and
``cosmap``: training draws t from them (Sec. 3.1's equivalence), it does not re-weight uniform t.
"eps/linear" and "v/linear" use the LDM schedule of Stable Diffusion 1.x (√β linear from
0.00085 to 0.012, T = 1000; :meth:`DiscreteSchedule.stable_diffusion`) and draw the index
uniformly from {0, …, 999}, as the LDM code does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import torch
from torch import Tensor

from esser_lab.diffusion import densities as dens
from esser_lab.diffusion.densities import TimeDensity
from esser_lab.diffusion.flow import euler_solve, rf_sample, rf_target, shift_time
from esser_lab.diffusion.gaussian import q_sample, to_eps_and_x0, training_target
from esser_lab.diffusion.protocol import (
    Denoiser,
    check_cond_batch,
    expand_like,
    index_to_time,
    time_to_index,
)
from esser_lab.diffusion.samplers import ddim_sample
from esser_lab.diffusion.schedules import DiscreteSchedule
from esser_lab.nn import placement

__all__ = ["KNOWN_NAMES", "Formulation", "formulation", "loss_weight", "path_coefficients"]

Path = Literal["rf", "linear", "cos", "edm"]
Output = Literal["velocity", "eps", "v", "F"]

KNOWN_NAMES = (
    "rf",
    "rf/lognorm(m,s)",
    "rf/mode(s)",
    "rf/cosmap",
    "eps/linear",
    "v/linear",
    "v/cos",
    "edm(P_m,P_s)",
)
"""The names :func:`formulation` parses (m, s, P_m, P_s numbers, e.g. "rf/lognorm(0.00,1.00)")."""

EDM_SIGMA_DATA = 0.5  # EDM's σ_data (the 0.5² in w_t^EDM)
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO = 0.002, 80.0, 7.0  # Karras et al. 2022, Table 1


@lru_cache(maxsize=1)
def _ldm_schedule() -> DiscreteSchedule:
    return DiscreteSchedule.stable_diffusion()


@dataclass(frozen=True)
class Formulation:
    """One of SD3's formulations (build with :func:`formulation`): ``name`` in the paper's
    spelling, the ``path``, the network ``output``, the rf ``density`` and EDM's (P_m, P_s).

    The time the network is given is the package's t ∈ [0, 1] throughout: for the linear paths
    the index's own time (n + 1)/T (the LDM UNets embed n itself; wrap such a network in
    :func:`~esser_lab.diffusion.discrete_time`); for EDM the t of σ = exp(P_m + P_s Φ⁻¹(t))
    (# EDM's network embeds c_noise = ¼ ln σ, a monotone function of the same t; the SD3 paper
    does not say which its EDM runs used)."""

    name: str
    path: Path
    output: Output
    density: TimeDensity = field(default_factory=dens.uniform)
    edm: tuple[float, float] = (-1.2, 1.2)

    # ---------------------------------------------------------------- training
    def loss(
        self,
        model: Denoiser,
        x0: Tensor,
        cond: Any = None,
        generator: torch.Generator | None = None,
        shift: float = 1.0,
    ) -> Tensor:
        """The training loss (0-dim): t from the formulation's density (rf), uniform over the
        1000 indices (linear), or U(0, 1) (cos, edm); ε ~ N(0, I); the mean squared error of the
        network's output against its target, averaged over every element.

        ``shift`` (rf only): the drawn t is moved by :func:`~esser_lab.diffusion.shift_time`
        before use, as SD3 trains at high resolution (Sec. 5.3.2: α = 3.0 at 1024², for training
        and sampling); 1 leaves the density as it is."""
        _check_data(x0, cond)
        if shift != 1.0 and self.path != "rf":
            raise ValueError(f"shift applies to the rf formulations only, not {self.name!r}")
        b = x0.shape[0]
        if self.path == "linear":
            n = placement.randint(_ldm_schedule().T, (b,), generator=generator, device=x0.device)
            t = index_to_time(n, _ldm_schedule().T)
        elif self.path == "rf":
            t = shift_time(self.density.sample(b, generator, x0.device), shift)
        else:
            t = dens.uniform().sample(b, generator, x0.device)
        noise = placement.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self._loss_at(model, x0, t, noise, cond).mean()

    def stratified_loss(
        self,
        model: Denoiser,
        x0: Tensor,
        cond: Any = None,
        levels: int = 8,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """SD3's validation loss (Sec. 5.3.3): the same loss, unweighted by the density, at
        equidistant levels t_k = k / (levels + 1), k = 1 … levels, each on all of ``x0`` with one
        noise draw per level; (levels,) float32. The paper samples equidistant levels in (0, 1],
        the last at t = 1, and averages all but that one: these are those levels, so ``.mean()``
        is the paper's number (its level count is levels + 1 with t = 1)."""
        _check_data(x0, cond)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an int ≥ 1, got {levels!r}")
        b = x0.shape[0]
        out = []
        for k in range(1, levels + 1):
            t = torch.full((b,), k / (levels + 1), dtype=torch.float32, device=x0.device)
            noise = placement.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            out.append(self._loss_at(model, x0, t, noise, cond).mean())
        return torch.stack(out).float()

    def _loss_at(self, model: Denoiser, x0: Tensor, t: Tensor, noise: Tensor, cond: Any) -> Tensor:
        """Per-sample loss (b,) at times ``t`` (b,) and noise ``noise``."""
        if self.path == "rf":
            z, target, t_model = rf_sample(x0, noise, t), rf_target(x0, noise), t
        elif self.path == "edm":
            sigma = _edm_sigma(t, *self.edm)
            c_skip, c_out, c_in = _edm_preconditioning(sigma, x0)
            z = x0 + expand_like(sigma, x0) * noise
            target, t_model = (x0 - c_skip * z) / c_out, t
            z = c_in * z
        else:
            alpha_bar, t_model = self._alpha_bar(t)
            z = q_sample(x0, alpha_bar, noise)
            target = training_target(x0, noise, alpha_bar, self.output)
        pred = _call(model, z, t_model, cond)
        return (pred - target).pow(2).flatten(1).mean(1)

    def _alpha_bar(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """ᾱ (b,) float32 of a VP path at ``t`` and the time the network is given (the LDM
        index's own time (n + 1)/T for "linear")."""
        if self.path == "linear":
            schedule = _ldm_schedule()
            n = time_to_index(t, schedule.T)
            return schedule.alpha_bar(t), index_to_time(n, schedule.T).to(t.device)
        return torch.cos(math.pi / 2 * t.double()).pow(2).float(), t

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        model: Denoiser,
        noise: Tensor,
        steps: int,
        cond: Any = None,
        shift: float = 1.0,
        grid: str = "sd3",
    ) -> Tensor:
        """x₀ from ``noise`` (b, ...) ~ N(0, I) with ``steps`` model calls, deterministically:
        rf → :func:`~esser_lab.diffusion.euler_solve` on the SD3-shifted grid (Sec. 5.3.2,
        ``shift`` = α), by default the official reference sampler's grid (``grid="sd3"``: its
        last call jumps from t ≈ 0.001 to the data; ``"uniform"``: every call on the path; see
        :func:`~esser_lab.diffusion.time_grid`). The released models' own defaults are DPM++(2M)
        (SD3-medium, SD3.5-medium/large; ``sd3_infer.py``) and Euler for SD3.5-large-turbo; the
        book samples every rf model with Euler; linear → :func:`~esser_lab.diffusion.ddim_sample`
        (η = 0, the official "uniform" spacing); v/cos → DDIM η = 0 on t = 1, 1 − 1/steps, …, 0;
        edm → Euler in σ on Karras' grid (σ_max = 80 … σ_min = 0.002, ρ = 7, then σ = 0) from
        σ_max · ``noise``.
        ``shift`` ≠ 1 is defined for rf only (elsewhere an error). For linear, a ``steps`` that
        does not divide 1000 gives the official range's count of calls (6 → 7; see
        :func:`~esser_lab.diffusion.ddim_timesteps`)."""
        if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.dim() < 1:
            raise TypeError("noise must be a floating tensor (b, ...)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
        if self.path == "rf":
            return euler_solve(model, noise, steps, cond, shift=shift, grid=grid)
        if shift != 1.0:
            raise ValueError(f"shift applies to the rf formulations only, not {self.name!r}")
        check_cond_batch(cond, noise.shape[0])
        if self.path == "linear":
            output = self.output
            return ddim_sample(
                model, noise, _ldm_schedule(), steps, cond=cond, parameterization=output
            )
        if self.path == "cos":
            return self._sample_cos(model, noise, steps, cond)
        return self._sample_edm(model, noise, steps, cond)

    def _sample_cos(self, model: Denoiser, noise: Tensor, steps: int, cond: Any) -> Tensor:
        """DDIM η = 0 (DDIM eq. 12) on the continuous cosine path: x ← a_next x̂₀ + b_next ε̂."""
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
        x = noise
        for t_now, t_next in zip(grid[:-1], grid[1:], strict=True):
            alpha_bar = math.cos(math.pi / 2 * t_now) ** 2
            times = torch.full((x.shape[0],), t_now, dtype=torch.float32, device=x.device)
            eps, x0 = to_eps_and_x0(_call(model, x, times, cond), x, alpha_bar, "v")
            x = math.cos(math.pi / 2 * t_next) * x0 + math.sin(math.pi / 2 * t_next) * eps
        return x

    def _sample_edm(self, model: Denoiser, noise: Tensor, steps: int, cond: Any) -> Tensor:
        """Euler on dx/dσ = (x − D(x; σ))/σ (EDM eq. 3 with σ(t) = t) over Karras' σ grid."""
        ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
        lo, hi = EDM_SIGMA_MIN ** (1 / EDM_RHO), EDM_SIGMA_MAX ** (1 / EDM_RHO)
        sigmas = ((hi + ramp * (lo - hi)) ** EDM_RHO).tolist() + [0.0]
        x = noise * sigmas[0]
        for s_now, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
            sigma = torch.full((x.shape[0],), s_now, dtype=torch.float64, device=x.device)
            denoised = self.edm_denoise(model, x, sigma, cond)
            x = x + (s_next - s_now) * (x - denoised) / s_now
        return x

    def edm_denoise(self, model: Denoiser, x: Tensor, sigma: Tensor, cond: Any) -> Tensor:
        """EDM's D(x; σ) = c_skip x + c_out F(c_in x, t(σ)) (Karras et al. 2022, eq. 7), the
        network called at t(σ) = Φ((ln σ − P_m)/P_s), the time whose σ it was trained on."""
        p_m, p_s = self.edm
        t = 0.5 * torch.erfc(-(sigma.double().log() - p_m) / (p_s * math.sqrt(2)))
        c_skip, c_out, c_in = _edm_preconditioning(sigma, x)
        return c_skip * x + c_out * _call(model, c_in * x, t.float(), cond)

    # ------------------------------------------------------------- conversions
    def denoised(self, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """x̂₀ from the network output ``pred`` at (z_t = ``x_t``, ``t`` (b,)): rf
        x̂₀ = z_t − t v̂; VP paths through :func:`~esser_lab.diffusion.to_eps_and_x0`; EDM
        D = c_skip z_t + c_out F (``x_t`` the unscaled z_t, ``pred`` F at c_in z_t)."""
        if self.path == "rf":
            return x_t - expand_like(t, x_t) * pred
        if self.path == "edm":
            c_skip, c_out, _ = _edm_preconditioning(_edm_sigma(t, *self.edm), x_t)
            return c_skip * x_t + c_out * pred
        alpha_bar, _ = self._alpha_bar(t)
        return to_eps_and_x0(pred, x_t, alpha_bar, self.output)[1]  # type: ignore[arg-type]

    def velocity(self, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """dz_t/dt = a'_t x̂₀ + b'_t ε̂ (SD3 Eq. 3 with the network's x̂₀ and ε̂ = (z_t − a_t x̂₀)/b_t)
        at ``t`` (b,) in (0, 1); rf's output is the velocity itself. a'_t, b'_t in closed form
        (cos, edm) or by central differences of LDM's table, dt = 1/T (linear)."""
        if self.path == "rf":
            return pred
        x0 = self.denoised(pred, x_t, t)
        a, b = path_coefficients(self, t)
        eps = (x_t - expand_like(a, x_t) * x0) / expand_like(b, x_t)
        t64 = t.double()
        if self.path == "cos":
            da, db = -math.pi / 2 * b, math.pi / 2 * a
        elif self.path == "edm":
            inv = torch.erfinv(2 * t64 - 1)  # σ' = σ P_s √(2π) exp(erfinv(2t − 1)²)
            da, db = (
                torch.zeros_like(a),
                b * self.edm[1] * math.sqrt(2 * math.pi) * inv.pow(2).exp(),
            )
        else:
            roots = _ldm_schedule().alphas_cumprod.sqrt()
            slope = torch.gradient(roots, spacing=1.0 / _ldm_schedule().T)[0]
            n = time_to_index(t64, _ldm_schedule().T).cpu()
            da = slope[n].to(t.device)
            db = -a * da / b  # b = √(1 − a²)
        return expand_like(da, x_t) * x0 + expand_like(db, x_t) * eps


def _call(model: Denoiser, x: Tensor, t: Tensor, cond: Any) -> Tensor:
    pred = model(x, t.to(torch.float32), cond)
    if not isinstance(pred, Tensor) or pred.shape != x.shape:
        got = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
        raise ValueError(f"the model must return a tensor of x's shape {tuple(x.shape)}, got {got}")
    return pred


def _check_data(x0: Tensor, cond: Any) -> None:
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        got = f"{x0.dtype} {tuple(x0.shape)}" if isinstance(x0, Tensor) else type(x0).__name__
        raise TypeError(f"x0 must be a floating tensor (b, ...) with a feature axis, got {got}")
    check_cond_batch(cond, x0.shape[0])


def _edm_sigma(t: Tensor, p_m: float, p_s: float) -> Tensor:
    """b_t = exp(F_N⁻¹(t | P_m, P_s²)) (SD3 Sec. 3, "EDM"): ln σ ~ N(P_m, P_s²) for t ~ U(0, 1)."""
    return torch.exp(p_m + p_s * math.sqrt(2) * torch.erfinv(2 * t.double() - 1))


def _edm_preconditioning(sigma: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) of EDM (Karras et al. 2022, Table 1) broadcast against ``x``."""
    sd2 = EDM_SIGMA_DATA**2
    sigma = sigma.double()
    norm = (sigma**2 + sd2).sqrt()
    coefs = (sd2 / norm**2, sigma * EDM_SIGMA_DATA / norm, 1 / norm)
    return tuple(expand_like(c, x) for c in coefs)  # type: ignore[return-value]


def path_coefficients(f: Formulation, t: Tensor) -> tuple[Tensor, Tensor]:
    """(a_t, b_t) of z_t = a_t x₀ + b_t ε at ``t`` (float64, t's shape); λ_t = log(a_t²/b_t²)."""
    t = t.double()
    if f.path == "rf":
        return 1 - t, t
    if f.path == "cos":
        return torch.cos(math.pi / 2 * t), torch.sin(math.pi / 2 * t)
    if f.path == "edm":
        return torch.ones_like(t), _edm_sigma(t, *f.edm)
    alpha_bar = _ldm_schedule().alphas_cumprod[time_to_index(t, _ldm_schedule().T).cpu()]
    return alpha_bar.sqrt().to(t.device), (1 - alpha_bar).sqrt().to(t.device)


def loss_weight(f: Formulation | str, t: Tensor) -> Tensor:
    """The paper's unified weight w_t of SD3 Sec. 3 (float64, ``t``'s shape), as a function of
    t ∈ (0, 1) for plotting (the loss of Eq. 10 is −½ E[w_t λ'_t ‖ε_Θ − ε‖²]):

    * rf with density π: w_t = t/(1 − t) · π(t) (Sec. 3.1; π = 1 for plain rf);
    * v/cos: w_t = e^{−λ_t/2} (= tan(πt/2));
    * edm(P_m, P_s): w_t = N(λ_t | −2P_m, (2P_s)²) (e^{−λ_t} + 0.5²);
    * eps/linear: w_t = −2/λ'_t and v/linear: w_t = −2/(λ'_t a_t²), the weights that make Eq. 10
      the plain ε- (v-) MSE; λ'_t from LDM's discrete table by central differences (dt = 1/T).

    rf's and the linear weights are exactly those of :meth:`Formulation.loss`; the cosine and
    EDM forms are the paper's, which our MSE losses equal up to a constant factor (2/π for
    v/cos, 8 for edm with σ_data = 0.5).
    """
    f = formulation(f) if isinstance(f, str) else f
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise TypeError("t must be a floating tensor of times in (0, 1)")
    t = t.double()
    if f.path == "rf":
        return t / (1 - t) * f.density.pdf(t)
    a, b = path_coefficients(f, t)
    lam = torch.log(a**2 / b**2)
    if f.path == "cos":
        return torch.exp(-lam / 2)
    if f.path == "edm":
        p_m, p_s = f.edm
        std = 2 * p_s
        normal = torch.exp(-0.5 * ((lam + 2 * p_m) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        return normal * (torch.exp(-lam) + EDM_SIGMA_DATA**2)
    schedule = _ldm_schedule()
    table = schedule.alphas_cumprod
    lam_table = torch.log(table / (1 - table))
    dlam_dt = torch.gradient(lam_table, spacing=1.0 / schedule.T)[0]
    slope = dlam_dt[time_to_index(t, schedule.T).cpu()].to(t.device)
    if f.output == "eps":
        return -2 / slope
    return -2 / (slope * a**2)


_NUM = r"\s*([+\-−]?\d+(?:\.\d*)?)\s*"


def _float(text: str) -> float:
    return float(text.replace("−", "-"))


def formulation(name: str) -> Formulation:
    """The :class:`Formulation` of a name in the paper's spelling (Table 1): "rf",
    "rf/lognorm(m,s)", "rf/mode(s)", "rf/cosmap", "eps/linear", "v/linear", "v/cos",
    "edm(P_m,P_s)". ``formulation(f.name).name == f.name`` (numbers printed with two decimals)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.strip()
    if key == "rf":
        return Formulation("rf", "rf", "velocity")
    if key in ("eps/linear", "v/linear"):
        output = "eps" if key.startswith("eps") else "v"
        return Formulation(key, "linear", output)
    if key == "v/cos":
        return Formulation(key, "cos", "v")
    if key == "rf/cosmap":
        return Formulation(key, "rf", "velocity", dens.cosmap())
    if match := re.fullmatch(rf"rf/lognorm\({_NUM},{_NUM}\)", key):
        density = dens.logit_normal(_float(match[1]), _float(match[2]))
        return Formulation(f"rf/{density.name}", "rf", "velocity", density)
    if match := re.fullmatch(rf"rf/mode\({_NUM}\)", key):
        density = dens.mode(_float(match[1]))
        return Formulation(f"rf/{density.name}", "rf", "velocity", density)
    if match := re.fullmatch(rf"edm\({_NUM},{_NUM}\)", key):
        p_m, p_s = _float(match[1]), _float(match[2])
        if not p_s > 0:
            raise ValueError(f"edm's P_s must be > 0, got {p_s}")
        return Formulation(f"edm({p_m:.2f},{p_s:.2f})", "edm", "F", edm=(p_m, p_s))
    raise ValueError(f"unknown formulation {name!r}; known: {', '.join(KNOWN_NAMES)}")
