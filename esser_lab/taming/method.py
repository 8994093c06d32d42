"""The VQGAN objective (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841), chapter 10.

The terms are named as in the paper's Sec. 3.1; (T1)–(T8) are chapter 10's own equation numbers
(the paper's could not be checked against its PDF offline). With x̂ = G(z_q), z_q = q(E(x))
and D a PatchGAN:

* (T4) L_VQ = L_rec + ‖sg[E(x)] − z_q‖² + ‖sg[z_q] − E(x)‖²; the two codebook terms are the
  quantizer's ``loss`` (``esser_lab.nn.quantize``: the official ``legacy`` β placement), weighted
  by ``codebook_weight``. # official code: L_rec = mean(|x − x̂| + w_P · LPIPS(x, x̂)) (L1 plus a
  perceptual term); paper: ‖x − x̂‖², "replaced by a perceptual loss".
* (T5) L_GAN = log D(x) + log(1 − D(x̂)); # official code: the hinge form, generator −mean D(x̂),
  discriminator ½(mean relu(1 − D(x)) + mean relu(1 + D(x̂))).
* (T6) the min–max problem over L_VQ + λ·L_GAN, alternated: one autoencoder step, one discriminator
  step per batch.
* (T7) the adaptive weight λ (``esser_lab.losses.adversarial.adaptive_weight``).

The GAN terms switch on at ``disc_start`` (``adopt_weight``). Images are in [−1, 1]. The parts
latent diffusion's KL autoencoder shares (the reconstruction terms, the λ-weighted GAN term, the
discriminator's loss) live in :mod:`esser_lab.losses.gan_autoencoder`; this module adds the
codebook term. Also the chapter's quality measures: ``psnr`` and the high-frequency energy ratio
``hf_ratio``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.losses.gan_autoencoder import (
    DiscriminatorLoss,
    Perceptual,
    discriminator_loss,
    gan_autoencoder_loss,
    reconstruction_terms,
)

__all__ = [
    "AutoencoderLoss",
    "DiscriminatorLoss",
    "autoencoder_loss",
    "discriminator_loss",
    "hf_ratio",
    "psnr",
    "reconstruction_loss",
]


@dataclass
class AutoencoderLoss:
    """The autoencoder's total loss and its parts (scalars; only ``loss`` keeps a graph)."""

    loss: Tensor  # nll + λ · disc_factor · g_loss + codebook_weight · q_loss
    nll: Tensor  # mean(|x − x̂| + w_P · P(x, x̂))
    l1: Tensor  # mean |x − x̂|
    perceptual: Tensor  # mean P(x, x̂) (0 without a perceptual term)
    q_loss: Tensor
    g_loss: Tensor  # −mean D(x̂) (0 before disc_start)
    d_weight: Tensor  # λ of (T7), × disc_weight (0 before disc_start)
    disc_factor: float


def reconstruction_loss(
    x: Tensor, x_hat: Tensor, perceptual: Perceptual | None = None, perceptual_weight: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """L_rec of (T4) as coded: ``(nll, l1, p)`` with nll = mean(|x − x̂| + w_P · P(x, x̂)).

    P returns one distance per image (``(b, 1, 1, 1)`` for LPIPS), broadcast over the pixels as in
    the official code, so nll = mean |x − x̂| + w_P · mean P (the per-pixel terms are
    :func:`esser_lab.losses.gan_autoencoder.reconstruction_terms`, shared with latent diffusion).
    """
    terms = reconstruction_terms(x, x_hat, perceptual, perceptual_weight)
    return terms.rec.mean(), terms.l1.mean().detach(), terms.perceptual


def autoencoder_loss(
    x: Tensor,
    x_hat: Tensor,
    q_loss: Tensor,
    discriminator: Callable[[Tensor], Tensor],
    last_layer: Tensor,
    global_step: int,
    *,
    disc_start: int,
    disc_weight: float,
    codebook_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    perceptual: Perceptual | None = None,
) -> AutoencoderLoss:
    """(T6), the min side of L_VQ + λ·L_GAN (encoder, decoder, codebook).

    Returns nll + w_Q·q_loss + λ·disc_factor·g.

    g = −mean D(x̂) (the hinge generator loss), λ of (T7) at ``last_layer``: both in
    :func:`esser_lab.losses.gan_autoencoder.gan_autoencoder_loss`, which latent diffusion's KL
    autoencoder shares (chapter 14). # official code: D(x̂) and λ are computed also before
    ``disc_start`` and multiplied by 0; we skip them there (the same gradients).
    """
    nll, l1, p = reconstruction_loss(x, x_hat, perceptual, perceptual_weight)
    gan = gan_autoencoder_loss(
        nll,
        codebook_weight * q_loss,
        x_hat,
        discriminator,
        last_layer,
        global_step,
        disc_start=disc_start,
        disc_weight=disc_weight,
    )
    return AutoencoderLoss(
        gan.loss, nll.detach(), l1, p, q_loss.detach(), gan.g_loss, gan.d_weight, gan.disc_factor
    )


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, 10·log10(range² / MSE); range 2 for [−1, 1]."""
    if x.shape != x_hat.shape or x.ndim != 4:
        raise ValueError(
            f"psnr expects two (b, c, h, w) images, got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_energy(x: Tensor) -> Tensor:
    """Mean squared Sobel gradient magnitude per image, over channels and pixels."""
    if x.ndim != 4:
        raise ValueError(f"expected (b, c, h, w) images, got {tuple(x.shape)}")
    c = x.shape[1]
    kernel_x = _SOBEL_X.to(x)
    kernels = torch.stack([kernel_x, kernel_x.t()]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2c, 1, 3, 3)
    gradients = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=c)
    return gradients.pow(2).flatten(1).mean(1)


def hf_ratio(x_hat: Tensor, x: Tensor) -> Tensor:
    """High-frequency energy ratio Σ sobel_energy(x̂) / Σ sobel_energy(x) over the batch.

    Below 1: reconstructions smoother than the data (blur); about 1: edges kept.
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat and x differ in shape: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
    return sobel_energy(x_hat).sum() / sobel_energy(x).sum().clamp_min(1e-12)
