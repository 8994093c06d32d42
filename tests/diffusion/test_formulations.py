"""SD3's formulations: densities, losses at the exact optimum, samplers on exact Gaussian data,
the unified weights against hand-computed numbers, and name parsing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from esser_lab.diffusion import DiscreteSchedule, shift_time
from esser_lab.diffusion.densities import MODE_S_MAX, cosmap, logit_normal, mode, uniform
from esser_lab.diffusion.formulations import (
    EDM_SIGMA_DATA,
    Formulation,
    formulation,
    loss_weight,
    path_coefficients,
)

MEAN, STD = torch.tensor([1.0, -0.5]), torch.tensor([0.7, 1.5])
NAMES = [
    "rf",
    "rf/lognorm(0.00,1.00)",
    "rf/mode(1.29)",
    "rf/cosmap",
    "eps/linear",
    "v/linear",
    "v/cos",
    "edm(-1.20,1.20)",
]
DENSITIES = [uniform(), logit_normal(0.0, 1.0), logit_normal(0.5, 0.6), mode(1.29), mode(-0.5)]
DENSITIES += [mode(1.75), cosmap()]


def exact_model(f: Formulation, shift_by: float = 0.0):
    """The formulation's optimal output for x₀ ~ N(MEAN, diag STD²), plus ``shift_by``."""

    def model(x: Tensor, t: Tensor, cond: object) -> Tensor:
        t = t.double()[:, None]
        if f.path == "edm":
            p_m, p_s = f.edm
            sigma = torch.exp(p_m + p_s * math.sqrt(2) * torch.erfinv(2 * t - 1))
            norm = (sigma**2 + EDM_SIGMA_DATA**2).sqrt()
            z = x.double() * norm  # the network sees c_in z
            a, b = torch.ones_like(sigma), sigma
        else:
            a, b = (c[:, None] for c in path_coefficients(f, t[:, 0]))
            z = x.double()
        var = a**2 * STD**2 + b**2
        x0 = MEAN + a * STD**2 / var * (z - a * MEAN)  # E[x₀ | z]
        eps = b / var * (z - a * MEAN)  # E[ε | z]
        if f.output == "velocity":
            out = eps - x0
        elif f.output == "eps":
            out = eps
        elif f.output == "v":
            out = a * eps - b * x0
        else:
            c_skip = EDM_SIGMA_DATA**2 / norm**2
            c_out = sigma * EDM_SIGMA_DATA / norm
            out = (x0 - c_skip * z) / c_out
        return (out + shift_by).float()

    return model


def _data(n: int = 4096, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return MEAN + STD * torch.randn(n, 2, generator=g)


# ---------------------------------------------------------------------------------- densities
@pytest.mark.parametrize("density", DENSITIES, ids=lambda d: d.name)
def test_density_integrates_to_one(density):
    t = torch.linspace(0.0, 1.0, 400_001, dtype=torch.float64)[1:-1]
    assert abs(float(torch.trapezoid(density.pdf(t), t)) - 1) < 2e-3


def _chi2(samples: Tensor, density, bins: int = 20) -> float:
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    counts = torch.histc(samples.double(), bins=bins, min=0.0, max=1.0)
    expected = []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        grid = torch.linspace(max(lo, 1e-9), min(hi, 1 - 1e-9), 2001, dtype=torch.float64)
        expected.append(float(torch.trapezoid(density.pdf(grid), grid)) * samples.numel())
    expected_t = torch.tensor(expected)
    return float(((counts - expected_t) ** 2 / expected_t.clamp(min=1.0)).sum())


@pytest.mark.parametrize("density", DENSITIES, ids=lambda d: d.name)
def test_sampler_matches_pdf_and_chi2_tells_a_wrong_density(density):
    samples = density.sample(100_000, torch.Generator().manual_seed(1))
    assert samples.dtype == torch.float32 and samples.shape == (100_000,)
    assert bool(((samples > 0) & (samples < 1)).all())
    assert _chi2(samples, density) < 45.3  # χ² with 19 dof: 99.9 % quantile 43.8
    wrong = logit_normal(0.3, 0.8) if density.kind != "logit_normal" else cosmap()
    assert _chi2(samples, wrong) > 200


def test_mode_refuses_non_monotone_scales_and_zero_is_uniform():
    for s in (-1.01, MODE_S_MAX + 0.01, 3.0):
        with pytest.raises(ValueError, match="monotone"):
            mode(s)
    t = torch.rand(50, dtype=torch.float64) * 0.98 + 0.01
    torch.testing.assert_close(mode(0.0).pdf(t), torch.ones_like(t))
    with pytest.raises(ValueError, match="s must be > 0"):
        logit_normal(0.0, 0.0)


# ----------------------------------------------------------------------------- loss weights
def test_loss_weights_match_the_papers_closed_forms():
    t = torch.tensor([0.25, 0.5, 0.75])
    torch.testing.assert_close(loss_weight("rf", t), torch.tensor([1 / 3, 1.0, 3.0]).double())
    # lognorm(0, 1) at t = 1/2: π = 4/√(2π)
    w = loss_weight("rf/lognorm(0.00,1.00)", torch.tensor([0.5]))
    torch.testing.assert_close(w, torch.tensor([4 / math.sqrt(2 * math.pi)]).double())
    # cosmap at t = 1/2: π = 2/(π − π + π/2) = 4/π
    w = loss_weight("rf/cosmap", torch.tensor([0.5]))
    torch.testing.assert_close(w, torch.tensor([4 / math.pi]).double())
    # mode(1.29) at t = 1/2 (u = 1/2): π = 1/(1 − 1.29 (π/2 − 1))
    w = loss_weight("rf/mode(1.29)", torch.tensor([0.5]))
    torch.testing.assert_close(w, torch.tensor([1 / (1 - 1.29 * (math.pi / 2 - 1))]).double())
    # v/cos: e^{−λ/2} = tan(πt/2)
    torch.testing.assert_close(loss_weight("v/cos", t), torch.tan(math.pi / 2 * t.double()))
    # edm(−1.2, 1.2) at t = 1/2: σ = e^{−1.2}, λ = 2.4 = −2 P_m: N = 1/(2.4 √(2π))
    expected = (math.exp(-2.4) + 0.25) / (2.4 * math.sqrt(2 * math.pi))
    w = loss_weight("edm(-1.20,1.20)", torch.tensor([0.5]))
    torch.testing.assert_close(w, torch.tensor([expected]).double())


def test_linear_weights_make_the_plain_eps_and_v_mse():
    """−½ w λ' = 1 for eps/linear and 1/a² for v/linear (Eq. 10 with the plain MSEs)."""
    schedule = DiscreteSchedule.stable_diffusion()
    n = 500
    t = torch.tensor([(n + 1) / 1000])
    lam = torch.log(schedule.alphas_cumprod / (1 - schedule.alphas_cumprod))
    slope = float(lam[n + 1] - lam[n - 1]) / 2 * 1000
    w_eps = float(loss_weight("eps/linear", t))
    assert abs(-0.5 * w_eps * slope - 1) < 1e-9
    w_v = float(loss_weight("v/linear", t))
    assert abs(-0.5 * w_v * slope * float(schedule.alphas_cumprod[n]) - 1) < 1e-9


@pytest.mark.parametrize(
    ("name", "factor"),
    [("rf", 1.0), ("v/cos", 2 / math.pi), ("edm(-1.20,1.20)", 8.0), ("edm(0.00,0.60)", 8.0)],
)
@pytest.mark.parametrize(("levels", "k"), [(3, 1), (1, 1), (4, 4)])  # t = 1/4, 1/2, 4/5
@torch.no_grad()
def test_mse_loss_is_eq_10_with_the_papers_weight(name, factor, levels, k):
    """Each loss at fixed t equals factor · (−½ w_t λ'_t) ‖ε̂ − ε‖² (SD3 Eq. 10) for ANY network:
    exactly the paper's w for rf, 2/π of it for v/cos, 8 (= 1/(2·0.5²)) for edm."""
    f = formulation(name)
    net = torch.nn.Linear(3, 2).double()
    model = lambda x, t, c: net(torch.cat((x.double(), t.double()[:, None]), 1)).float()  # noqa: E731
    x0 = _data(64)
    loss = f.stratified_loss(model, x0, levels=levels, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)  # the same draws: one noise per level, k-th is ours
    for _ in range(k):
        noise = torch.randn(x0.shape, generator=g)
    t0 = k / (levels + 1)
    t = torch.full((64,), t0)
    a, b = (c[:, None].float() for c in path_coefficients(f, t))
    z = a * x0 + b * noise
    scale = 1 / (b**2 + EDM_SIGMA_DATA**2).sqrt() if f.path == "edm" else torch.ones_like(b)
    eps_hat = (z - a * f.denoised(model(scale * z, t, None), z, t)) / b
    h = 1e-5
    lam = [torch.log(p[0] ** 2 / p[1] ** 2) for p in (path_coefficients(f, t + s) for s in (h, -h))]
    dlam = (lam[0] - lam[1]) / (2 * h)
    w = loss_weight(f, t.double())
    expected = factor * (-0.5 * w * dlam * (eps_hat - noise).double().pow(2).mean(1)).mean()
    assert math.isclose(float(loss[k - 1]), float(expected), rel_tol=2e-3)


@pytest.mark.parametrize("name", NAMES)
def test_denoised_and_velocity_at_the_exact_optimum(name):
    """The conversions turn the exact output into E[x₀ | z] and E[dz/dt | z] = a' E[x₀|z] +
    b' E[ε|z] (a', b' by central differences of the path)."""
    f = formulation(name)
    g = torch.Generator().manual_seed(11)
    t = torch.rand(32, generator=g) * 0.6 + 0.2
    x0 = _data(32, seed=12)
    noise = torch.randn(32, 2, generator=g)
    a, b = (c[:, None] for c in path_coefficients(f, t))
    z = (a * x0 + b * noise).float()
    var = a**2 * STD**2 + b**2
    post_x0 = MEAN + a * STD**2 / var * (z - a * MEAN)
    post_eps = b / var * (z - a * MEAN)
    scale = 1 / (b**2 + EDM_SIGMA_DATA**2).sqrt() if f.path == "edm" else torch.ones_like(b)
    pred = exact_model(f)((scale * z).float(), t, None)
    torch.testing.assert_close(f.denoised(pred, z, t).double(), post_x0, atol=2e-4, rtol=1e-4)
    h = 1e-4 if f.path != "linear" else 1e-3
    hi, lo = path_coefficients(f, t.double() + h), path_coefficients(f, t.double() - h)
    da, db = ((p - m)[:, None] / (2 * h) for p, m in zip(hi, lo, strict=True))
    expected = da * post_x0 + db * post_eps
    torch.testing.assert_close(f.velocity(pred, z, t).double(), expected, atol=2e-3, rtol=2e-3)


# ---------------------------------------------------------------------------- path and shift
def test_shift_moves_rf_log_snr_by_minus_two_log_alpha():
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    rf = formulation("rf")
    for alpha in (0.5, 3.0, 16.0):
        a, b = path_coefficients(rf, t)
        a_s, b_s = path_coefficients(rf, shift_time(t, alpha))
        lam, lam_s = torch.log(a**2 / b**2), torch.log(a_s**2 / b_s**2)
        torch.testing.assert_close(lam_s, lam - 2 * math.log(alpha), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------- losses and samplers
@pytest.mark.parametrize("name", NAMES)
def test_loss_is_lowest_at_the_exact_optimum(name):
    f = formulation(name)
    x0 = _data()
    best = f.loss(exact_model(f), x0, generator=torch.Generator().manual_seed(3))
    worse = f.loss(exact_model(f, 0.1), x0, generator=torch.Generator().manual_seed(3))
    assert best.dim() == 0 and best < worse - 0.005
    strata = f.stratified_loss(exact_model(f), x0, generator=torch.Generator().manual_seed(4))
    strata_worse = f.stratified_loss(
        exact_model(f, 0.1), x0, generator=torch.Generator().manual_seed(4)
    )
    assert strata.shape == (8,) and bool((strata < strata_worse).all())


def test_stratified_rf_loss_at_the_optimum_has_the_closed_form_value():
    """The minimum of the rf loss at fixed t is E Var[ε − x₀ | z_t] =
    1 + σ² − (t − (1 − t)σ²)² / ((1 − t)²σ² + t²) per dimension, at t = 1/4, 1/2, 3/4."""
    f = formulation("rf")
    x0 = _data(200_000, seed=5)
    strata = f.stratified_loss(exact_model(f), x0, levels=3, generator=torch.Generator())
    for k, value in enumerate(strata.tolist(), start=1):
        t = k / 4
        var = 1 + STD**2 - (t - (1 - t) * STD**2) ** 2 / ((1 - t) ** 2 * STD**2 + t**2)
        assert abs(value - float(var.mean())) < 0.02, (t, value, var)


@pytest.mark.parametrize(
    ("name", "steps", "shift"),
    [("rf", 200, 1.0), ("rf/lognorm(0.00,1.00)", 200, 3.0), ("v/cos", 200, 1.0)]
    + [("edm(-1.20,1.20)", 200, 1.0)],
)
def test_sampler_with_exact_predictor_recovers_mean_and_std(name, steps, shift):
    f = formulation(name)
    noise = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(7))
    x = f.sample(exact_model(f), noise, steps, shift=shift)
    assert (x.mean(0) - MEAN).abs().max() < 0.05, x.mean(0)
    assert (x.std(0) / STD - 1).abs().max() < 0.05, x.std(0)


@pytest.mark.parametrize("name", ["eps/linear", "v/linear"])
def test_linear_sampler_is_ddim_on_the_official_grid(name, gaussian):
    """LDM's schedule never reaches zero SNR and DDIM starts at index 981: the exact predictor
    gives the closed-form moments of that chain (conftest), not the data's."""
    f = formulation(name)
    noise = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(7))
    x = f.sample(exact_model(f), noise, 20)
    table = DiscreteSchedule.stable_diffusion().alphas_cumprod.tolist()
    tau = list(range(1, 1000, 50))
    levels = [(table[n], table[m]) for n, m in zip(tau[::-1], [*tau[:-1][::-1], 0], strict=True)]
    mean, var = gaussian.chain_moments(levels, eta=0.0)
    gaussian.assert_moments(x, mean, var)
    assert (mean - MEAN).abs().max() > 0.05  # the official grid's bias is visible


def test_eps_linear_uses_the_ldm_index_grid():
    f = formulation("eps/linear")
    seen = []

    def model(x, t, cond):
        seen.append(t.clone())
        return torch.zeros_like(x)

    f.loss(model, torch.randn(4096, 2), generator=torch.Generator().manual_seed(0))
    n = seen[0].double() * 1000 - 1
    assert (n - n.round()).abs().max() < 1e-3 and n.min() >= 0 and n.max() <= 999
    assert n.unique().numel() > 950  # uniform over the 1000 indices
    seen.clear()
    f.sample(model, torch.randn(3, 2), 10)
    got = torch.cat([s[:1] for s in seen]).double()
    expected = (torch.arange(901, 0, -100).double() + 1) / 1000  # ddim_timesteps 1, 101, … 901
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_rf_density_is_what_training_samples():
    f = formulation("rf/lognorm(0.50,0.60)")
    seen = []

    def model(x, t, cond):
        seen.append(t.clone())
        return torch.zeros_like(x)

    f.loss(model, torch.randn(50_000, 1), generator=torch.Generator().manual_seed(0))
    u = torch.logit(seen[0].double())
    assert abs(float(u.mean()) - 0.5) < 0.02 and abs(float(u.std()) - 0.6) < 0.02


# ------------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    "name", NAMES + ["rf/lognorm(1.00,0.60)", "rf/mode(1.75)", "edm(0.00,0.60)"]
)
def test_names_round_trip(name):
    assert formulation(name).name == name
    assert formulation(formulation(name).name) == formulation(name)


def test_name_spellings_and_errors():
    assert formulation("rf/lognorm(0,1)").name == "rf/lognorm(0.00,1.00)"
    assert formulation("edm(−1.2, 1.2)").name == "edm(-1.20,1.20)"
    for bad in ("rf/lognorm(0)", "eps/cos", "ddpm", "edm(0,-1)", "rf/mode(2.5)"):
        with pytest.raises(ValueError, match="known|must be|monotone"):
            formulation(bad)
    with pytest.raises(ValueError, match="rf/lognorm"):
        formulation("flow")
    with pytest.raises(ValueError, match="shift applies"):
        formulation("eps/linear").sample(
            exact_model(formulation("eps/linear")), MEAN[None], 10, shift=3.0
        )


def test_rf_training_shift_moves_the_drawn_times():
    seen = []

    def model(x, t, cond):
        seen.append(t.clone())
        return torch.zeros_like(x)

    f = formulation("rf/lognorm(0.00,1.00)")
    x0 = torch.zeros(4096, 1)
    f.loss(model, x0, generator=torch.Generator().manual_seed(0))
    f.loss(model, x0, generator=torch.Generator().manual_seed(0), shift=3.0)
    plain, shifted = seen
    assert torch.allclose(shifted, 3 * plain / (1 + 2 * plain), atol=1e-6)
    assert shifted.median() > 0.7 > plain.median()  # α = 3 moves the median 0.5 to 0.75
    with pytest.raises(ValueError, match="rf formulations only"):
        formulation("eps/linear").loss(model, x0, shift=3.0)


def test_rf_sampler_uses_the_official_grid_by_default():
    seen = []

    def model(x, t, cond):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    formulation("rf").sample(model, torch.zeros(2, 3), 5)
    assert seen == pytest.approx([1.0, 0.75025, 0.5005, 0.25075, 0.001])
    seen.clear()
    formulation("rf").sample(model, torch.zeros(2, 3), 5, grid="uniform")
    assert seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
