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
    synthesize,
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
    out = sample_student(model, noise, None, steps=1, shift=3.0)
    assert torch.allclose(out, noise - (0.5 * noise + 1.0))


class _Recorder(torch.nn.Module):
    """A "student" that records the times and devices it is called at (velocity 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[list[float], str]] = []

    def forward(self, x, t, cond):
        times = t.tolist() if t.device.type != "meta" else []
        self.calls.append((times, cond["pooled"].device.type if cond else x.device.type))
        return torch.zeros_like(x)


def test_sampling_visits_the_training_grid_with_the_config_shift():
    from esser_lab.ladd.model import LADDConfig

    config = LADDConfig(student_steps=4, shift=3.0)
    recorder = _Recorder()
    sample_student(recorder, torch.randn(2, 4, 8, 8), None, 4, shift=config.shift)
    visited = torch.tensor([t[0] for t, _ in recorder.calls])
    assert torch.allclose(visited, student_timesteps(config.student_steps, config.shift))
    assert not torch.allclose(visited, student_timesteps(4))  # shift 1 is another grid


def test_sampling_puts_noise_and_cond_on_the_students_device():
    recorder = _Recorder().to("meta")  # any device other than the noise's
    cond = {"pooled": torch.zeros(2, 3)}
    out = sample_student(recorder, torch.randn(2, 4, 8, 8), cond, 2, shift=1.0)
    assert out.device.type == "meta" and {d for _, d in recorder.calls} == {"meta"}


def _synthesize(model, guidance: float, seed: int = 0):
    cond = {"pooled": torch.randn(5, 3, generator=torch.Generator().manual_seed(1))}
    null = {"pooled": torch.zeros(1, 3)}
    return synthesize(model, cond, null, (2, 4, 4), steps=3, guidance=guidance, seed=seed, batch=2)


def test_synthesize_is_guided_euler_from_seeded_noise():
    torch.manual_seed(0)
    model = _Conditional()
    out = _synthesize(model, 1.0)
    assert out.shape == (5, 2, 4, 4)
    # guidance 1 is the conditional model: plain Euler from the same seeded noise
    noise = torch.randn((5, 2, 4, 4), generator=torch.Generator().manual_seed(0))
    cond = {"pooled": torch.randn(5, 3, generator=torch.Generator().manual_seed(1))}
    from esser_lab.diffusion import euler_solve

    assert torch.allclose(out, euler_solve(model, noise, 3, cond), atol=1e-5)
    assert torch.equal(_synthesize(model, 3.0), _synthesize(model, 3.0))
    assert not torch.allclose(_synthesize(model, 3.0), out, atol=1e-3)  # guidance acts
    assert not torch.allclose(_synthesize(model, 1.0, seed=1), out)


class _Conditional(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, t, cond):
        return 0.3 * x + self.lin(cond["pooled"])[:, :, None, None] * t.view(-1, 1, 1, 1)


def test_renoise_draws_high_noise_for_a_positive_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4096, 1, 1, 1)
    x_t, t_hat = renoise(x, 1.0, 1.0, g)
    assert t_hat.shape == (4096,) and 0 < t_hat.min() and t_hat.max() < 1
    assert t_hat.median() > 0.65  # sigmoid(1) ≈ 0.73
    assert torch.allclose(x_t.std(), t_hat.pow(2).mean().sqrt(), rtol=0.05)
