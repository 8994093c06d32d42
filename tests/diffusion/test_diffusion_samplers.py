"""DDPM and DDIM: the official timestep spacing, determinism, inversion, and exact Gaussian data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esser_lab.diffusion import (
    DiscreteSchedule,
    Trajectory,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    eps_to_x0,
    eps_x0_to_v,
    index_to_time,
)

SCHEDULE = DiscreteSchedule.ldm()


def _noise(n=10_000, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _ddim_levels(steps):
    """(ᾱ, ᾱ_prev) per DDIM step in the order run, from the official recipe: τ = range(0, T,
    T // S) + 1, ᾱ_prev = [ᾱ[0]] + ᾱ[τ[:-1]]."""
    a = SCHEDULE.alphas_cumprod.tolist()
    tau = [n + 1 for n in range(0, 1000, 1000 // steps)]
    prev = [0, *tau[:-1]]
    return [(a[tau[i]], a[prev[i]]) for i in reversed(range(len(tau)))]


# ---------------------------------------------------------------- the official spacing


def test_ddim_timesteps_pinned_50_steps():
    tau = ddim_timesteps(1000, 50)
    assert tau.dtype == torch.long and len(tau) == 50
    assert tau[:4].tolist() == [1, 21, 41, 61] and int(tau[-1]) == 981
    assert torch.equal(tau, torch.arange(1, 1000, 20))
    assert ddim_timesteps(1000, 7).tolist() == [1, 143, 285, 427, 569, 711, 853, 995]


@pytest.mark.parametrize("T, steps", [(1000, 50), (1000, 20), (500, 37), (100, 10)])
def test_ddim_timesteps_quad(T, steps):
    expected = (np.linspace(0, np.sqrt(T * 0.8), steps) ** 2).astype(int) + 1
    assert ddim_timesteps(T, steps, "quad").tolist() == expected.tolist()


def test_ddim_timesteps_errors():
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T = 1000\]"):
        ddim_timesteps(1000, 1001)
    with pytest.raises(ValueError, match="reaches index 1000"):
        ddim_timesteps(1000, 1000)
    with pytest.raises(ValueError, match=r"\['uniform', 'quad'\]"):
        ddim_timesteps(1000, 50, "linear")


# ---------------------------------------------------------------- calls and determinism


def test_model_sees_continuous_times():
    seen = []

    def model(x, t, cond):
        seen.append(t)
        return torch.zeros_like(x)

    ddim_sample(model, torch.zeros(3, 2), SCHEDULE, steps=50)
    assert len(seen) == 50 and all(t.shape == (3,) and t.dtype == torch.float32 for t in seen)
    assert float(seen[0][0]) == pytest.approx(0.982) and float(seen[-1][0]) == pytest.approx(0.002)
    seen.clear()
    ddpm_sample(model, torch.zeros(3, 2), DiscreteSchedule.make("linear", 20))
    assert [float(t[0]) for t in seen] == pytest.approx([(n + 1) / 20 for n in reversed(range(20))])


def test_ddim_eta_zero_is_deterministic_and_draws_nothing(gaussian):
    noise, model = _noise(64), gaussian.eps_model(SCHEDULE)
    state = torch.random.get_rng_state()
    first = ddim_sample(model, noise, SCHEDULE, steps=20)
    assert torch.equal(first, ddim_sample(model, noise, SCHEDULE, steps=20))
    assert torch.equal(state, torch.random.get_rng_state())


def test_stochastic_samplers_follow_the_generator(gaussian):
    noise, model = _noise(64), gaussian.eps_model(SCHEDULE)

    def draw(seed, sampler):
        return sampler(model, noise, SCHEDULE, generator=torch.Generator().manual_seed(seed))

    for sampler in (lambda *a, **k: ddim_sample(*a, steps=10, eta=0.5, **k), ddpm_sample):
        assert torch.equal(draw(3, sampler), draw(3, sampler))
        assert not torch.allclose(draw(3, sampler), draw(4, sampler))


def test_ddim_parameterizations_agree(gaussian):
    eps_model, noise = gaussian.eps_model(SCHEDULE), _noise(256)

    def x0_model(x, t, cond):
        return eps_to_x0(eps_model(x, t, cond), x, SCHEDULE.alpha_bar(t))

    def v_model(x, t, cond):
        a = SCHEDULE.alpha_bar(t)
        eps = eps_model(x, t, cond)
        return eps_x0_to_v(eps, eps_to_x0(eps, x, a), a)

    reference = ddim_sample(eps_model, noise, SCHEDULE, steps=25)
    for kind, model in (("x0", x0_model), ("v", v_model)):
        got = ddim_sample(model, noise, SCHEDULE, steps=25, parameterization=kind)
        torch.testing.assert_close(got, reference, atol=2e-4, rtol=0)


def test_ddim_trajectory(gaussian):
    out = ddim_sample(gaussian.eps_model(SCHEDULE), _noise(8), SCHEDULE, 10, return_trajectory=True)
    assert isinstance(out, Trajectory)
    assert len(out.x_t) == 11 and len(out.x0_pred) == 10 and out.sample is out.x_t[-1]
    expected = index_to_time(torch.arange(1, 1000, 100).flip(0), 1000)
    assert torch.equal(out.t, expected)


# ---------------------------------------------------------------- the update equations


def _toy_eps(x, t, cond):
    return 0.3 * x + 0.1 * t[:, None]  # any fixed ε-model will do


def test_ddim_steps_follow_the_equations():
    """Two DDIM steps on T = 10 (τ = 1, 6) written out from the DDIM paper: x̂₀ (eq. 12),
    σ (eq. 16), x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev − σ²) ε̂ + σ z; z from the same generator."""
    schedule, eta = DiscreteSchedule.make("linear", 10, 0.01, 0.2), 0.7
    a = schedule.alphas_cumprod.tolist()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = ddim_sample(_toy_eps, x, schedule, 2, eta, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    for n, n_prev in ((6, 1), (1, 0)):
        eps = _toy_eps(x, torch.full((4,), (n + 1) / 10, dtype=torch.float64), None)
        x0 = (x - (1 - a[n]) ** 0.5 * eps) / a[n] ** 0.5
        sigma = eta * ((1 - a[n_prev]) / (1 - a[n]) * (1 - a[n] / a[n_prev])) ** 0.5
        z = torch.randn(4, 3, generator=g, dtype=torch.float64)
        x = a[n_prev] ** 0.5 * x0 + (1 - a[n_prev] - sigma**2) ** 0.5 * eps + sigma * z
    torch.testing.assert_close(got, x, atol=1e-6, rtol=0)


def test_ddpm_steps_follow_the_equations():
    """Ancestral sampling on T = 4 written out from DDPM eqs. 6–7: the posterior mean μ̃ and
    variance β̃ = β (1 − ᾱ_{n−1}) / (1 − ᾱ_n), no noise on the last step."""
    schedule = DiscreteSchedule.make("linear", 4, 0.05, 0.3)
    b, a = schedule.betas.tolist(), schedule.alphas_cumprod.tolist()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = ddpm_sample(_toy_eps, x, schedule, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    for n in reversed(range(4)):
        eps = _toy_eps(x, torch.full((4,), (n + 1) / 4, dtype=torch.float64), None)
        x0 = (x - (1 - a[n]) ** 0.5 * eps) / a[n] ** 0.5
        a_prev = a[n - 1] if n else 1.0
        mean = (a_prev**0.5 * b[n] * x0 + (1 - b[n]) ** 0.5 * (1 - a_prev) * x) / (1 - a[n])
        x = mean
        if n:
            x = x + (b[n] * (1 - a_prev) / (1 - a[n])) ** 0.5 * torch.randn(
                4, 3, generator=g, dtype=torch.float64
            )
    torch.testing.assert_close(got, x, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- inversion


def test_ddim_invert_round_trip(gaussian):
    model = gaussian.eps_model(SCHEDULE)
    g = torch.Generator().manual_seed(5)
    x0 = gaussian.mean + gaussian.std * torch.randn(16, 2, generator=g)
    exact = ddim_invert(model, x0, SCHEDULE, steps=50, fixed_point_iters=5)
    assert (ddim_sample(model, exact, SCHEDULE, steps=50) - x0).abs().max() < 1e-3
    # and the other way round: sampling, then inverting, returns the noise
    noise = torch.randn(16, 2, generator=g)
    back = ddim_invert(
        model, ddim_sample(model, noise, SCHEDULE, 50), SCHEDULE, 50, fixed_point_iters=5
    )
    assert (back - noise).abs().max() < 1e-3
    # plain DDIM inversion (one model call per step) is first-order: its error shrinks with steps
    errors = [
        (ddim_sample(model, ddim_invert(model, x0, SCHEDULE, s), SCHEDULE, s) - x0).abs().max()
        for s in (25, 100)
    ]
    assert errors[1] < errors[0] / 3 and errors[1] < 0.1


# ---------------------------------------------------------------- exact Gaussian data


def test_ddpm_recovers_gaussian_data(gaussian):
    noise = _noise()
    x = ddpm_sample(
        gaussian.eps_model(SCHEDULE), noise, SCHEDULE, generator=torch.Generator().manual_seed(1)
    )
    gaussian.assert_moments(x, gaussian.mean, gaussian.std**2)
    # the sample moments are those of the exact DDPM chain (DDIM η = 1 on every index, ᾱ_{−1} = 1)
    a = SCHEDULE.alphas_cumprod.tolist()
    levels = [(a[n], a[n - 1] if n else 1.0) for n in reversed(range(1000))]
    gaussian.assert_moments(x, *gaussian.chain_moments(levels, eta=1.0))


def test_ddim_eta_zero_is_the_exact_affine_map(gaussian):
    noise = _noise()
    x = ddim_sample(gaussian.eps_model(SCHEDULE), noise, SCHEDULE, steps=250)
    mean, var = gaussian.chain_moments(_ddim_levels(250), eta=0.0)
    torch.testing.assert_close(x, mean + var.sqrt() * noise, atol=2e-4, rtol=0)
    a0 = float(SCHEDULE.alphas_cumprod[0])  # DDIM ends on ᾱ_0, one step above the data
    gaussian.assert_moments(x, a0**0.5 * gaussian.mean, a0 * gaussian.std**2 + 1 - a0)


def test_ddim_eta_one_recovers_gaussian_data(gaussian):
    x = ddim_sample(
        gaussian.eps_model(SCHEDULE),
        _noise(),
        SCHEDULE,
        500,
        eta=1.0,
        generator=torch.Generator().manual_seed(2),
    )
    gaussian.assert_moments(x, *gaussian.chain_moments(_ddim_levels(500), eta=1.0))
    a0 = float(SCHEDULE.alphas_cumprod[0])
    gaussian.assert_moments(x, a0**0.5 * gaussian.mean, a0 * gaussian.std**2 + 1 - a0)


# ---------------------------------------------------------------- errors


def test_sampler_errors(gaussian):
    model, noise = gaussian.eps_model(SCHEDULE), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="eta must be a number ≥ 0"):
        ddim_sample(model, noise, SCHEDULE, eta=-0.1)
    with pytest.raises(ValueError, match="use 0 ≤ eta ≤ 1"):
        ddim_sample(model, noise, SCHEDULE, steps=10, eta=3.0)
    with pytest.raises(ValueError, match=r"\['eps', 'x0', 'v'\]"):
        ddpm_sample(model, noise, SCHEDULE, parameterization="score")
    with pytest.raises(ValueError, match=r"batch of x \(4\).*\(3,\)"):
        ddim_sample(model, noise, SCHEDULE, cond=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cond\['context'\]"):
        ddim_invert(model, noise, SCHEDULE, cond={"context": torch.zeros(2, 7, 8)})
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T = 1000\]"):
        ddim_sample(model, noise, SCHEDULE, steps=2000)
    with pytest.raises(ValueError, match=r"x_t's shape \(4, 2\)"):
        ddim_sample(lambda x, t, c: x[:, :1], noise, SCHEDULE, steps=5)
    with pytest.raises(TypeError, match="DiscreteSchedule"):
        ddpm_sample(model, noise, SCHEDULE.alphas_cumprod)
    with pytest.raises(TypeError, match="noise must be a floating tensor"):
        ddim_sample(model, torch.zeros(4, 2, dtype=torch.long), SCHEDULE)
    with pytest.raises(ValueError, match="fixed_point_iters must be ≥ 0"):
        ddim_invert(model, noise, SCHEDULE, fixed_point_iters=-1)
