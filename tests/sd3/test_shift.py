"""The analytic resolution-shift toy: exact posterior mean, the split Euler solver, the sweep."""

from __future__ import annotations

import math
import time

import pytest
import torch

from esser_lab.diffusion import time_grid
from esser_lab.sd3.shift import ShiftToy, euler_pixel_mean, posterior_mean, shift_sweep

ALPHAS = [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]


def test_posterior_mean_of_one_mode_is_the_gaussian_formula():
    toy, n, t = ShiftToy(modes=1, mode_std=0.3), 6, 0.4
    cov = toy.mode_std**2 * torch.ones(n, n, dtype=torch.float64) + toy.detail_std**2 * torch.eye(
        n, dtype=torch.float64
    )
    z = torch.randn(5, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gain = (1 - t) * cov @ torch.linalg.inv((1 - t) ** 2 * cov + t**2 * torch.eye(n).double())
    torch.testing.assert_close(posterior_mean(toy, z, t), z @ gain.T)


def test_posterior_mean_of_the_mixture_minimises_the_squared_error():
    toy, n, t = ShiftToy(), 4, 0.7
    g = torch.Generator().manual_seed(1)
    x0 = toy.sample(50_000, n, g)
    z = (1 - t) * x0 + t * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    best = posterior_mean(toy, z, t)
    mse = (best - x0).pow(2).mean()
    for other in (best * 1.05, best + 0.02, best.mean(1, keepdim=True).expand_as(best)):
        assert mse < (other - x0).pow(2).mean()


def test_split_euler_equals_euler_on_the_full_images():
    toy, n, steps, alpha = ShiftToy(), 16, 4, 3.0
    noise = torch.randn(7, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = noise.clone()
    grid = time_grid(steps, shift=alpha).tolist()
    for t_now, t_next in zip(grid[:-1], grid[1:], strict=True):
        z = z + (t_next - t_now) * (z - posterior_mean(toy, z, t_now)) / t_now
    z_mean, gain = euler_pixel_mean(toy, noise.mean(1), n, steps, alpha)
    torch.testing.assert_close(z.mean(1), z_mean)
    torch.testing.assert_close(z - z.mean(1, keepdim=True), gain * (noise - noise.mean(1, True)))


def test_many_steps_reproduce_the_data_and_the_metric_sees_it():
    sweep = shift_sweep([16, 256], [1.0], steps=400, n_samples=2048)
    assert float(sweep.w2.max()) < 2e-3
    assert shift_sweep([256], [1.0], steps=4, n_samples=2048).at(256, 1.0) > 0.1


def test_best_alpha_grows_like_the_square_root_of_the_pixels():
    start = time.perf_counter()
    sweep = shift_sweep([16, 64, 256, 1024, 4096], ALPHAS, steps=4, n_samples=4096, seed=0)
    assert time.perf_counter() - start < 10  # ~0.3 s on one idle core
    best = [sweep.best_alpha[n] for n in sweep.pixels]
    assert best == sorted(best) and len(set(best)) == 5, best
    # √(m/n) law: 256× the pixels ⇒ 16× the best α, within one grid step
    assert 8 <= best[-1] / best[0] <= 32, best
    assert sweep.w2.shape == (5, len(ALPHAS)) and sweep.at(256, 1.0) > 4 * sweep.at(256, 12.0)
    assert math.isclose(sweep.at(256, 1.0), 0.233, rel_tol=0.05)


def test_sweep_is_deterministic_and_checks_its_input():
    a = shift_sweep([64], [1.0, 4.0], n_samples=512, seed=3)
    b = shift_sweep([64], [1.0, 4.0], n_samples=512, seed=3)
    assert torch.equal(a.w2, b.w2)
    with pytest.raises(ValueError, match="pixels"):
        shift_sweep([1], [1.0])
    with pytest.raises(ValueError, match="alphas"):
        shift_sweep([16], [0.0])
    with pytest.raises(ValueError, match="modes"):
        ShiftToy(modes=0)
