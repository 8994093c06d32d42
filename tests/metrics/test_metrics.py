"""Transfer metrics against procedural ground truth."""

import pytest
import torch

from esser_lab.data import figures
from esser_lab.metrics import part_colour_error, ssim


def test_part_colour_error_is_zero_on_ground_truth():
    f = figures.sample(32, 16, generator=torch.Generator().manual_seed(0))
    error = part_colour_error(f.image, f.part_masks, f.colours)
    assert error.shape == (32,) and error.abs().max() < 1e-6


def test_part_colour_error_detects_wrong_colours():
    f = figures.sample(32, 16, generator=torch.Generator().manual_seed(0))
    shifted = (f.image + 0.4).clamp(-1, 1)
    error = part_colour_error(shifted, f.part_masks, f.colours)
    assert (error > 0).all() and error.max() <= 0.2 + 1e-6  # 0.4 in [-1,1] = 0.2 in [0,1] units
    with pytest.raises(ValueError, match="part_masks must be"):
        part_colour_error(f.image, f.part_masks[:, :3], f.colours)


def test_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-5)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    very_noisy = (x + 1.0 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    assert (ssim(x, noisy) < 0.99).all() and (ssim(x, very_noisy) < ssim(x, noisy)).all()
    with pytest.raises(ValueError, match="equal shape"):
        ssim(x, x[:2])
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim(x[..., :8, :8], x[..., :8, :8])


def test_ssim_of_constant_images_is_the_luminance_term():
    # no variance anywhere: SSIM = (2 μx μy + c1) / (μx² + μy² + c1), c1 = 0.01², in [0, 1] units
    x, y = torch.full((1, 3, 16, 16), -0.5), torch.full((1, 3, 16, 16), 0.2)
    mu_x, mu_y, c1 = 0.25, 0.6, 0.01**2
    expected = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-5)
