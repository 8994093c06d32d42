"""The rectified-flow path, its timestep density and shift, and the Euler / Heun solvers."""

from __future__ import annotations

import pytest
import torch

from esser_lab.diffusion import (
    euler_solve,
    heun_solve,
    logit_normal_t,
    rf_sample,
    rf_target,
    shift_time,
    time_grid,
)


def _noise(n=10_000, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_path_endpoints_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 6, 3, generator=g), torch.randn(4, 6, 3, generator=g)
    assert torch.equal(rf_sample(x0, eps, 0.0), x0)  # t = 0 is data
    assert torch.equal(rf_sample(x0, eps, 1.0), eps)  # t = 1 is noise
    t = torch.rand(4, 6, generator=g)  # per-token times
    h = 1e-3
    derivative = (rf_sample(x0, eps, t + h) - rf_sample(x0, eps, t - h)) / (2 * h)
    torch.testing.assert_close(derivative, rf_target(x0, eps), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="one shape"):
        rf_target(x0, eps[:, :1])


def test_logit_normal_density():
    t = logit_normal_t(20_000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (20_000,) and t.dtype == torch.float32
    assert bool(((t > 0) & (t < 1)).all())
    assert abs(float(t.median()) - 0.5) < 0.01
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.std()) - 1.0) < 0.02
    shifted = logit_normal_t(20_000, m=1.0, s=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(float(shifted.median()) - float(torch.sigmoid(torch.tensor(1.0)))) < 0.01
    again = logit_normal_t(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
    with pytest.raises(ValueError, match="n must be an int ≥ 1"):
        logit_normal_t(0)


def test_shift_time():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(shift_time(t, 1.0), t)
    shifted = shift_time(t, 3.0)
    assert float(shifted[0]) == 0.0 and float(shifted[-1]) == 1.0
    assert bool((shifted[1:-1] > t[1:-1]).all()) and bool((shifted.diff() > 0).all())
    assert shift_time(0.5, 3.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shift must be > 0"):
        shift_time(t, 0.0)


def test_time_grid():
    grid = time_grid(4)
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert time_grid(4, shift=3.0)[1] == pytest.approx(shift_time(0.75, 3.0))
    assert time_grid(2, t_from=0.5, t_to=1.0).tolist() == [0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="t_from ≠ t_to"):
        time_grid(4, t_from=0.3, t_to=0.3)
    with pytest.raises(ValueError, match="steps must be an int ≥ 1"):
        time_grid(0)


def test_sd3_grid_is_the_official_reference_samplers():
    # sd3_impls.ModelSamplingDiscreteFlow: sigma(ts) = shift(ts / 1000), training times
    # ts = 1..1000; get_sigmas: linspace(ts(sigma_max), ts(sigma_min), steps) -> sigma, then 0
    for alpha in (1.0, 3.0):

        def sigma(ts, alpha=alpha):
            u = ts / 1000
            return alpha * u / (1 + (alpha - 1) * u)

        ts_max, ts_min = 1000 * sigma(1000.0), 1000 * sigma(1.0)
        official = [sigma(ts_max + (ts_min - ts_max) * i / 4) for i in range(5)] + [0.0]
        ours = time_grid(5, shift=alpha, grid="sd3").tolist()
        assert ours == pytest.approx(official, abs=1e-12)
    assert time_grid(5, grid="sd3").tolist() == pytest.approx(
        [1.0, 0.75025, 0.5005, 0.25075, 0.001, 0.0]
    )
    assert time_grid(5, shift=3.0, grid="sd3")[-2] == pytest.approx(0.00893, abs=1e-5)
    with pytest.raises(ValueError, match="grid must be"):
        time_grid(5, grid="karras")
    with pytest.raises(ValueError, match="from t = 1 to 0"):
        time_grid(5, t_from=0.5, grid="sd3")
    seen = []

    def model(x, t, cond):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    euler_solve(model, torch.zeros(2, 3), 5, shift=3.0, grid="sd3")
    assert seen == pytest.approx(time_grid(5, shift=3.0, grid="sd3")[:-1].tolist())


def test_solvers_call_the_model_on_the_grid():
    seen = []

    def model(x, t, cond):
        seen.append(t)
        return torch.zeros_like(x)

    euler_solve(model, torch.zeros(3, 2), 4)
    assert [float(t[0]) for t in seen] == [1.0, 0.75, 0.5, 0.25]
    assert all(t.shape == (3,) and t.dtype == torch.float32 for t in seen)
    seen.clear()
    heun_solve(model, torch.zeros(3, 2), 4)
    assert len(seen) == 8 and float(seen[-1][0]) == 0.0


def test_euler_and_heun_recover_gaussian_data(gaussian):
    noise, model = _noise(), gaussian.velocity_model()
    exact = gaussian.mean + gaussian.std * noise  # the flow map of Gaussian data, per sample
    euler = euler_solve(model, noise, 200)
    heun = heun_solve(model, noise, 40)
    assert (euler - exact).abs().max() < 0.05
    assert (heun - exact).abs().max() < 2e-3
    # Heun is second order: 2× the steps, about 1/4 of the error
    coarse = (heun_solve(model, noise, 10) - exact).abs().max()
    fine = (heun_solve(model, noise, 20) - exact).abs().max()
    assert 3.0 < coarse / fine < 5.0
    for x in (euler, heun):
        gaussian.assert_moments(x, gaussian.mean, gaussian.std**2)


def test_shifted_grid_and_reverse_direction(gaussian):
    noise, model = _noise(2_000), gaussian.velocity_model()
    exact = gaussian.mean + gaussian.std * noise
    # the shift spends fewer steps near the data, where this path bends: a looser bound
    assert (heun_solve(model, noise, 40, shift=3.0) - exact).abs().max() < 0.02
    # integrating from data (t = 0) up to noise (t = 1) inverts the map
    back = heun_solve(model, exact, 40, t_from=0.0, t_to=1.0)
    assert (back - noise).abs().max() < 5e-3


def test_solver_errors(gaussian):
    model = gaussian.velocity_model()
    with pytest.raises(ValueError, match=r"batch of x \(4\)"):
        euler_solve(model, torch.zeros(4, 2), 5, cond=torch.zeros(2))
    with pytest.raises(ValueError, match=r"x's shape \(4, 2\)"):
        heun_solve(lambda x, t, c: x.sum(1), torch.zeros(4, 2), 5)
    with pytest.raises(ValueError, match="steps must be an int ≥ 1"):
        euler_solve(model, torch.zeros(4, 2), 0)
