"""The time convention (index ↔ time, broadcasting) and the discrete noise schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from esser_lab.diffusion import (
    DiscreteSchedule,
    discrete_time,
    expand_like,
    index_to_time,
    make_beta_schedule,
    time_to_index,
)

# ---------------------------------------------------------------- index ↔ time, broadcasting


@pytest.mark.parametrize("T", [1, 7, 1000])
def test_index_time_round_trip_is_exact(T):
    n = torch.arange(T)
    t = index_to_time(n, T)
    assert t.dtype == torch.float32 and t.shape == (T,)
    assert float(t[-1]) == 1.0 and math.isclose(float(t[0]), 1 / T, rel_tol=1e-7)
    assert torch.equal(time_to_index(t, T), n)
    assert all(time_to_index(index_to_time(k, T), T) == k for k in range(T))


def test_time_to_index_rounds_and_clamps():
    assert time_to_index(0.0, 1000) == 0  # data maps to the least noisy index
    assert time_to_index(1.0, 1000) == 999
    assert time_to_index(1.5, 1000) == 999
    assert time_to_index(0.5004, 1000) == 499  # 500.4 − 1 rounds to 499
    t = torch.tensor([[-0.2, 0.0021], [0.9999, 3.0]])  # per-token shapes pass through
    assert torch.equal(time_to_index(t, 1000), torch.tensor([[0, 1], [999, 999]]))


def test_index_time_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        index_to_time(10, 10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        index_to_time(torch.tensor([0, 10]), 10)
    with pytest.raises(TypeError, match="integer tensor"):
        index_to_time(torch.tensor([0.5]), 10)
    with pytest.raises(TypeError, match="floating tensor"):
        time_to_index(torch.tensor([1]), 10)
    with pytest.raises(ValueError, match="T"):
        time_to_index(0.5, 0)


def test_expand_like_scalar_sample_and_token():
    x = torch.zeros(3, 4, 5)
    assert expand_like(0.25, x).shape == ()
    assert expand_like(torch.arange(3.0), x).shape == (3, 1, 1)
    per_token = expand_like(torch.rand(3, 4), x)
    assert per_token.shape == (3, 4, 1)
    assert expand_like(torch.arange(3), x).dtype == x.dtype
    with pytest.raises(ValueError, match=r"prefix of x's shape \(3, 4, 5\)"):
        expand_like(torch.rand(4), x)
    with pytest.raises(ValueError, match="got \\(3, 5\\)"):
        expand_like(torch.rand(3, 5), x)


def test_discrete_time_passes_indices():
    seen = []

    def net(x, n, cond):
        seen.append(n)
        return x

    model = discrete_time(net, 1000)
    model(torch.zeros(2, 3), index_to_time(torch.tensor([980, 0]), 1000), None)
    assert torch.equal(seen[0], torch.tensor([980, 0]))


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "schedule, start, end",
    [
        (DiscreteSchedule.ldm(), 0.0015, 0.0195),
        (DiscreteSchedule.stable_diffusion(), 8.5e-4, 0.012),
    ],
)
def test_linear_presets_endpoints(schedule, start, end):
    assert schedule.T == 1000
    assert abs(float(schedule.betas[0]) - start) < 1e-9
    assert abs(float(schedule.betas[-1]) - end) < 1e-9


def test_ldm_linear_is_squared_linspace():
    expected = np.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=np.float64) ** 2
    betas = make_beta_schedule("linear", 1000, linear_start=0.0015, linear_end=0.0195)
    assert betas.dtype == torch.float64
    np.testing.assert_allclose(betas.numpy(), expected, rtol=0, atol=1e-15)
    # it is not linear in β: the midpoint lies below the arithmetic mean
    assert float(betas[499:501].mean()) < (0.0015 + 0.0195) / 2 - 1e-4


def test_other_linear_kinds():
    ramp = make_beta_schedule("sqrt_linear", 11, linear_start=1e-4, linear_end=2e-2)
    np.testing.assert_allclose(ramp.numpy(), np.linspace(1e-4, 2e-2, 11), atol=1e-15)
    root = make_beta_schedule("sqrt", 11, linear_start=1e-4, linear_end=2e-2)
    np.testing.assert_allclose(root.numpy(), np.sqrt(np.linspace(1e-4, 2e-2, 11)), atol=1e-15)


def test_cosine_schedule():
    T, s = 1000, 8e-3
    schedule = DiscreteSchedule.make("cosine", T, cosine_s=s)
    a = schedule.alphas_cumprod
    assert float(a[0]) > 0.9999 and float(a[-1]) < 1e-4
    assert bool((a[1:] < a[:-1]).all())
    assert float(schedule.betas.max()) <= 0.999  # the official clip
    # before the clip bites, ᾱ_n is the cosine law at u = (n + 1)/T
    f = [math.cos(((n + 1) / T + s) / (1 + s) * math.pi / 2) ** 2 for n in range(T)]
    expected = torch.tensor(f, dtype=torch.float64) / math.cos(s / (1 + s) * math.pi / 2) ** 2
    torch.testing.assert_close(a[:-1], expected[:-1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine", "sqrt_linear", "sqrt"])
def test_derived_tables(kind):
    schedule = DiscreteSchedule.make(kind, 50)
    b, a = schedule.betas, schedule.alphas_cumprod
    assert bool((a[1:] < a[:-1]).all()) and float(a[0]) == 1 - float(b[0])
    assert float(schedule.alphas_cumprod_prev[0]) == 1.0
    assert torch.equal(schedule.alphas_cumprod_prev[1:], a[:-1])
    n = 17
    beta_tilde = float(b[n]) * (1 - float(a[n - 1])) / (1 - float(a[n]))
    assert math.isclose(float(schedule.posterior_variance[n]), beta_tilde, rel_tol=1e-12)
    assert float(schedule.posterior_variance[0]) == 0.0
    assert float(schedule.posterior_log_variance_clipped[0]) == pytest.approx(math.log(1e-20))
    # the posterior mean of x_{n−1} given x_n and x₀ reproduces ᾱ_{n−1}'s mean coefficient
    mean_coef = float(schedule.posterior_mean_coef1[n]) + float(
        schedule.posterior_mean_coef2[n]
    ) * math.sqrt(float(a[n]))
    assert math.isclose(mean_coef, math.sqrt(float(a[n - 1])), rel_tol=1e-9)


def test_alpha_bar_at_continuous_time():
    schedule = DiscreteSchedule.ldm()
    n = torch.tensor([0, 500, 999])
    got = schedule.alpha_bar(index_to_time(n, 1000))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, schedule.alphas_cumprod[n].float())
    per_token = schedule.alpha_bar(torch.rand(2, 5))
    assert per_token.shape == (2, 5)
    assert schedule.alpha_bar(0.0).shape == () and float(schedule.alpha_bar(0.0)) > 0.998


def test_schedule_errors():
    with pytest.raises(ValueError, match=r"\['linear', 'cosine', 'sqrt_linear', 'sqrt'\]"):
        make_beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="linear_start"):
        make_beta_schedule("linear", 10, linear_start=0.1, linear_end=0.01)
    with pytest.raises(ValueError, match="n_timestep"):
        make_beta_schedule("linear", 0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        DiscreteSchedule(torch.tensor([0.1, 1.0], dtype=torch.float64))
    with pytest.raises(TypeError, match=r"1-d floating tensor \(T,\)"):
        DiscreteSchedule(torch.full((2, 3), 0.1))
