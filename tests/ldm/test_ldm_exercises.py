"""Chapter 14's exercise 3 checker: 1 / std of the first stage's latents (scale_by_std)."""

import torch

from esser_lab.ldm.exercises import check_scale_factor, scale_factor
from esser_lab.ldm.model import IdentityFirstStage, RescaledFirstStage
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig


def setting():
    torch.manual_seed(0)
    ae = AutoencoderKL(AutoencoderKLConfig.tiny(2)).eval()
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return ae, images


def test_the_solution_is_accepted_for_any_posterior_draw_and_follows_a_rescaling():
    ae, images = setting()
    for seed in range(5):  # another draw of the posterior noise is still right
        with torch.no_grad():
            z = ae.encode_latent(images, generator=torch.Generator().manual_seed(seed))
        assert check_scale_factor(ae, images, 1 / float(z.std()))
    spread = RescaledFirstStage(ae, 5.5)  # latents 5.5 times as spread: 1/std 5.5 times smaller
    assert abs(scale_factor(spread, images) * 5.5 / scale_factor(ae, images) - 1) < 1e-6


def test_typical_mistakes_are_refused_without_the_value():
    ae, images = setting()
    exact = scale_factor(ae, images)
    with torch.no_grad():
        z = ae.encode_latent(images, generator=torch.Generator().manual_seed(0))
    std = check_scale_factor(ae, images, float(z.std()))  # the std, not its inverse
    assert not std and f"{exact:.3f}" not in str(std)
    inverse_variance = check_scale_factor(ae, images, 1 / float(z.var()))
    assert not inverse_variance and "1 / variance" in str(inverse_variance)
    assert "no answer yet" in str(check_scale_factor(ae, images, None))


def test_the_pixel_space_stage_and_a_changed_tensor_is_not_taken_for_the_remembered_one():
    _, images = setting()
    pixels = IdentityFirstStage(3)  # no weights; the latents are the images
    assert scale_factor(pixels, images) == 1 / float(images.double().std())
    before = scale_factor(pixels, images)
    images.mul_(3)  # in place: a new version of the same tensor
    assert abs(scale_factor(pixels, images) * 3 / before - 1) < 1e-9
