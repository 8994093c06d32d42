"""LADD's method: hinge losses by hand, the student's timesteps and prediction, re-noising."""

from __future__ import annotations

import torch

from esser_lab.ladd.method import (
    discriminator_hinge,
    generator_hinge,
    renoise,
    sample_student,
    student_denoise,
    student_timesteps,
)


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.5])
    # relu(1 − real) = 0, 0.5, 2 → mean 5/6; relu(1 + fake) = 0, 1, 2.5 → mean 7/6
    assert torch.isclose(discriminator_hinge(real, fake), torch.tensor(2.0))
    assert torch.isclose(generator_hinge(fake), torch.tensor(-(-2.0 + 0.0 + 1.5) / 3))


def test_student_timesteps_are_the_shifted_uniform_grid():
    assert torch.allclose(student_timesteps(4), torch.tensor([1.0, 0.75, 0.5, 0.25]))
    assert torch.allclose(student_timesteps(1), torch.tensor([1.0]))
    shifted = student_timesteps(2, shift=3.0)  # 3·0.5 / (1 + 2·0.5) = 0.75
    assert torch.allclose(shifted, torch.tensor([1.0, 0.75]))


def test_student_predicts_x0_from_the_velocity():
    x0 = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def exact(x_t, t, cond):  # the velocity ε − x₀ of these very x₀ (x₀ known)
        noise = (x_t - (1 - t.view(-1, 1, 1, 1)) * x0) / t.view(-1, 1, 1, 1)
        return noise - x0

    x0_hat, t = student_denoise(exact, x0, None, student_timesteps(4), torch.Generator())
    assert torch.allclose(x0_hat, x0, atol=1e-5)
    assert set(t.tolist()) <= {1.0, 0.75, 0.5, 0.25}


def test_one_step_sampling_is_noise_minus_velocity():
    def model(x, t, cond):
        return 0.5 * x + t.view(-1, 1, 1, 1)

    noise = torch.randn(3, 4, 8, 8)
    out = sample_student(model, noise, None, steps=1)
    assert torch.allclose(out, noise - (0.5 * noise + 1.0))


def test_renoise_draws_high_noise_for_a_positive_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4096, 1, 1, 1)
    x_t, t_hat = renoise(x, 1.0, 1.0, g)
    assert t_hat.shape == (4096,) and 0 < t_hat.min() and t_hat.max() < 1
    assert t_hat.median() > 0.65  # sigmoid(1) ≈ 0.73
    assert torch.allclose(x_t.std(), t_hat.pow(2).mean().sqrt(), rtol=0.05)
