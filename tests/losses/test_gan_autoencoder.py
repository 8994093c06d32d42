"""The GAN-autoencoder objective shared by VQGAN and latent diffusion's KL autoencoder."""

import math
from dataclasses import replace

import pytest
import torch

import esser_lab.losses.gan_autoencoder as gan_autoencoder
from esser_lab.losses.adversarial import NLayerDiscriminator, adaptive_weight
from esser_lab.losses.gan_autoencoder import (
    GANAutoencoderLossConfig,
    GANOptimizerConfig,
    kl_autoencoder_loss,
)
from esser_lab.nn.autoencoder import DiagonalGaussian
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.taming import method as taming_method
from esser_lab.taming.model import VQGANConfig, VQModel


def _per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A perceptual stand-in: one distance per image, (b, 1, 1, 1), as LPIPS returns."""
    return (a - b).pow(2).flatten(1).mean(1).view(-1, 1, 1, 1)


def test_kl_loss_equals_a_hand_computation_and_learns_logvar():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    x_hat = (x + 0.3 * torch.randn_like(x)).requires_grad_()
    parameters = torch.randn(3, 8, 2, 2)
    posterior = DiagonalGaussian(parameters, logvar_range=(-30.0, 20.0))
    logvar = torch.nn.Parameter(torch.tensor(0.3))
    d = NLayerDiscriminator(3, 8, 1)
    out = kl_autoencoder_loss(
        x, x_hat, posterior, logvar, d, x_hat, global_step=4, disc_start=5, disc_weight=0.5,
        kl_weight=1e-2, perceptual_weight=0.7, perceptual=_per_image,
    )  # fmt: skip
    rec = (x - x_hat).abs() + 0.7 * _per_image(x, x_hat)  # per pixel
    nll = (rec / math.exp(0.3) + 0.3).sum() / 3  # summed per image, averaged over the batch
    mean, lv = parameters[:, :4], parameters[:, 4:]
    kl = (0.5 * (mean**2 + lv.exp() - 1 - lv)).sum((1, 2, 3)).mean()
    assert out.disc_factor == 0 and float(out.d_weight) == 0  # before disc_start
    assert torch.allclose(out.nll, nll) and torch.allclose(out.kl, kl)
    assert torch.allclose(out.loss, nll + 1e-2 * kl)
    assert torch.allclose(out.rec, rec.mean()) and float(out.logvar) == pytest.approx(0.3)
    (grad,) = torch.autograd.grad(out.loss, logvar)
    # d/dlogvar (1/b) Σ (rec·e^−logvar + logvar) = (numel − e^−logvar Σ rec) / b
    expected = (x.numel() - math.exp(-0.3) * rec.sum()) / 3
    assert torch.allclose(grad, expected)


def test_kl_loss_with_the_discriminator_adds_the_adaptive_term():
    torch.manual_seed(1)
    model, d = AutoencoderKL(AutoencoderKLConfig.tiny(2)), NLayerDiscriminator(3, 8, 2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    x_hat, posterior = model(x, generator=torch.Generator().manual_seed(0))
    logvar = torch.nn.Parameter(torch.zeros(()))
    out = kl_autoencoder_loss(
        x, x_hat, posterior, logvar, d, model.last_layer(), 3, disc_start=3, disc_weight=0.5,
        kl_weight=1e-6, perceptual_weight=0.0,
    )  # fmt: skip
    g = -d(x_hat).mean()
    nll = (x - x_hat).abs().sum() / 2
    (g_nll,) = torch.autograd.grad(nll, model.last_layer(), retain_graph=True)
    (g_g,) = torch.autograd.grad(g, model.last_layer(), retain_graph=True)
    weight = 0.5 * g_nll.norm() / (g_g.norm() + 1e-4)  # (T7), official δ = 1e-4
    assert out.disc_factor == 1 and torch.allclose(out.d_weight, weight)
    assert torch.allclose(out.loss, nll + 1e-6 * posterior.kl().mean() + weight * g)
    with pytest.raises(ValueError, match="scalar tensor"):
        kl_autoencoder_loss(
            x, x_hat, posterior, torch.zeros(1), d, model.last_layer(), 0,
            disc_start=3, disc_weight=0.5, kl_weight=1e-6, perceptual_weight=0.0,
        )  # fmt: skip


def test_both_objectives_share_one_adaptive_weight(monkeypatch):
    """VQ and KL call the same ``adaptive_weight`` through ``gan_autoencoder_loss``."""
    assert gan_autoencoder.adaptive_weight is adaptive_weight
    assert taming_method.discriminator_loss is gan_autoencoder.discriminator_loss
    calls = []

    def recording(*args, **kwargs):
        calls.append(args[0])
        return adaptive_weight(*args, **kwargs)

    monkeypatch.setattr(gan_autoencoder, "adaptive_weight", recording)
    torch.manual_seed(2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    d = NLayerDiscriminator(3, 8, 2)
    vq = VQModel(VQGANConfig.tiny())
    x_hat, q = vq(x)
    vq_out = taming_method.autoencoder_loss(
        x, x_hat, q.loss, d, vq.last_layer(), 1, disc_start=0, disc_weight=0.8,
        perceptual_weight=0.0,
    )  # fmt: skip
    kl = AutoencoderKL(AutoencoderKLConfig.tiny(2))
    x_hat, posterior = kl(x)
    kl_out = kl_autoencoder_loss(
        x, x_hat, posterior, torch.zeros((), requires_grad=True), d, kl.last_layer(), 1,
        disc_start=0, disc_weight=0.5, kl_weight=1e-6, perceptual_weight=0.0,
    )  # fmt: skip
    assert len(calls) == 2  # one λ per objective, measured on each one's nll
    assert torch.equal(calls[0].detach(), vq_out.nll) and torch.equal(calls[1].detach(), kl_out.nll)


def test_kl_loss_falls_on_one_batch():
    torch.manual_seed(0)
    model = AutoencoderKL(AutoencoderKLConfig.tiny(2))
    d = NLayerDiscriminator(3, 8, 2)
    logvar = torch.nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.Adam([*model.parameters(), logvar], lr=5e-3, betas=(0.5, 0.9))
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    losses, logvars, l1 = [], [], []
    for step in range(12):
        x_hat, posterior = model(x)
        out = kl_autoencoder_loss(
            x, x_hat, posterior, logvar, d, model.last_layer(), step,
            disc_start=100, disc_weight=0.5, kl_weight=1e-6, perceptual_weight=0.0,
        )  # fmt: skip
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
        logvars.append(float(out.logvar))
        l1.append(float(out.l1))
    assert losses[-1] < 0.85 * losses[0] and l1[-1] < 0.9 * l1[0]  # measured: 0.78, 0.83
    assert logvars[-1] < logvars[0] == 0.0  # mean |x − x̂| < 1: the optimum logvar is negative


def test_loss_and_optimizer_configs():
    config = GANAutoencoderLossConfig.ldm_kl()
    assert (config.disc_start, config.kl_weight, config.disc_weight) == (50_001, 1e-6, 0.5)
    assert (config.disc_num_layers, config.disc_loss, config.logvar_init) == (3, "hinge", 0.0)
    tiny = GANAutoencoderLossConfig.tiny()
    assert tiny.perceptual_weight == 0 and tiny.disc_num_layers == 2
    assert GANAutoencoderLossConfig.from_dict({"kl_weight": 1e-3}).kl_weight == 1e-3
    vq = VQGANConfig.paper().loss
    assert (vq.disc_start, vq.disc_weight, vq.codebook_weight) == (250_001, 0.8, 1.0)
    with pytest.raises(ValueError, match="must be ≥ 0"):
        replace(config, kl_weight=-1.0)
    with pytest.raises(ValueError, match="hinge"):
        replace(config, disc_loss="wgan")
    with pytest.raises(TypeError, match=r"GANAutoencoderLossConfig\.learn_logvar must be bool"):
        replace(config, learn_logvar=1)
    optimizer = GANOptimizerConfig()
    assert optimizer.learning_rate == pytest.approx(4.5e-6 * 4) and optimizer.betas == (0.5, 0.9)
    with pytest.raises(ValueError, match="batch_size must be ≥ 1"):
        GANOptimizerConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        GANOptimizerConfig(betas=(0.5, 1.0))
