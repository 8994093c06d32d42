"""The Gaussian forward process, the ε / x₀ / v conversions and L_simple."""

from __future__ import annotations

import pytest
import torch

from esser_lab.diffusion import (
    eps_to_x0,
    eps_x0_to_v,
    q_sample,
    simple_loss,
    to_eps_and_x0,
    training_target,
    v_to_eps,
    v_to_x0,
    x0_to_eps,
)


def _draw(shape, alpha_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g)
    eps = torch.randn(shape, generator=g)
    alpha_bar = 0.02 + 0.96 * torch.rand(alpha_shape, generator=g)  # away from 0 and 1
    return x0, eps, alpha_bar


def test_q_sample_per_sample_and_per_token():
    x0, eps, a = _draw((4, 3, 2, 2), (4,))
    x_t = q_sample(x0, a, eps)
    expected = a.sqrt()[:, None, None, None] * x0 + (1 - a).sqrt()[:, None, None, None] * eps
    torch.testing.assert_close(x_t, expected)
    x0, eps, a = _draw((4, 6, 8), (4, 6))  # per-token ᾱ (b, l) against tokens (b, l, d)
    torch.testing.assert_close(
        q_sample(x0, a, eps), a[..., None].sqrt() * x0 + (1 - a[..., None]).sqrt() * eps
    )
    assert torch.equal(q_sample(x0, 1.0, eps), x0)


@pytest.mark.parametrize("shape, alpha_shape", [((8, 3, 4, 4), (8,)), ((8, 5, 6), (8, 5))])
def test_conversions_round_trip(shape, alpha_shape):
    x0, eps, a = _draw(shape, alpha_shape)
    x_t = q_sample(x0, a, eps)
    torch.testing.assert_close(eps_to_x0(eps, x_t, a), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_to_eps(x0, x_t, a), eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_to_eps(eps_to_x0(eps, x_t, a), x_t, a), eps, atol=1e-5, rtol=0)
    v = eps_x0_to_v(eps, x0, a)
    torch.testing.assert_close(v_to_eps(v, x_t, a), eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(v_to_x0(v, x_t, a), x0, atol=1e-5, rtol=0)
    for kind, pred in (("eps", eps), ("x0", x0), ("v", v)):
        got_eps, got_x0 = to_eps_and_x0(pred, x_t, a, kind)
        torch.testing.assert_close(got_eps, eps, atol=1e-5, rtol=0)
        torch.testing.assert_close(got_x0, x0, atol=1e-5, rtol=0)
        assert torch.equal(training_target(x0, eps, a, kind), pred)


def test_low_precision_data_keeps_the_noise_level():
    # near the data 1 − ᾱ = 0.0015 has no digits left in bfloat16; the roots are taken before
    # the cast, so a bfloat16 x_t carries the right amount of noise
    x0, eps, _ = _draw((64, 8), (64,))
    for alpha_bar in (0.9985, torch.full((64,), 0.9985)):
        x_t = q_sample(x0.bfloat16(), alpha_bar, eps.bfloat16())
        assert x_t.dtype == torch.bfloat16
        reference = q_sample(x0, alpha_bar, eps)
        torch.testing.assert_close(x_t.float(), reference, atol=0.02, rtol=0.01)
        recovered = x0_to_eps(x0.bfloat16(), x_t, alpha_bar).float()
        assert (recovered - eps).abs().mean() < 0.5  # of a noise of std 1, through 1/√(1 − ᾱ) ≈ 26


def test_v_is_the_velocity_of_the_trigonometric_path():
    # with √ᾱ = cos φ, √(1 − ᾱ) = sin φ: x_φ = cos φ x₀ + sin φ ε and v = dx_φ/dφ
    x0, eps, _ = _draw((4, 3), (4,))
    phi, h = torch.tensor(0.7, dtype=torch.float64), 1e-6
    x0, eps = x0.double(), eps.double()

    def x_at(p):
        return torch.cos(p) * x0 + torch.sin(p) * eps

    derivative = (x_at(phi + h) - x_at(phi - h)) / (2 * h)
    torch.testing.assert_close(
        eps_x0_to_v(eps, x0, torch.cos(phi) ** 2), derivative, atol=1e-8, rtol=0
    )


def test_simple_loss_matches_official_reduction():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    official = ((pred - target) ** 2).mean(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(simple_loss(pred, target), official)
    torch.testing.assert_close(simple_loss(pred, target, "l1"), (pred - target).abs().mean())


def test_gaussian_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\['eps', 'x0', 'v'\]"):
        to_eps_and_x0(x, x, 0.5, "score")
    with pytest.raises(ValueError, match="same shape"):
        q_sample(x, 0.5, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="'l2' or 'l1'"):
        simple_loss(x, x, "huber")
    with pytest.raises(ValueError, match="prefix"):
        q_sample(x, torch.full((3,), 0.5), x)
    with pytest.raises(ValueError, match=r"alpha_bar must lie in \[0, 1\]"):
        eps_to_x0(x, x, 1.5)
    with pytest.raises(TypeError, match="floating tensor"):
        eps_to_x0(x, x, torch.ones(2, dtype=torch.long))
