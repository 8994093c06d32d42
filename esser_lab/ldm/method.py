"""The latent-diffusion objective and sampler, as plain functions (chapter 14).

With the frozen encoder E and z₀ = scale_factor · E(x), a condition c (a class label here), the
DDPM forward process q(z_t | z₀) = N(√ᾱ_t z₀, (1 − ᾱ_t) I) (chapter 14's (L1)) and a UNet ε_θ,
the paper's conditional objective (its Sec. 3.3) is the "simple" loss

    L_LDM = E_{z₀, c, ε ~ N(0, I), n ~ U{0..T−1}} ‖ε − ε_θ(z_n, n, τ_θ(c))‖²            (L2)

(``p_losses`` with ``l_simple_weight 1``, ``original_elbo_weight 0``: no VLB term). For
classifier-free guidance the label is replaced by the null class with probability ``cond_drop``
(the official code does this in the data pipeline of the guided models), and sampling mixes the
two predictions,

    ε̃ = ε_θ(z_t, ∅) + s · (ε_θ(z_t, c) − ε_θ(z_t, ∅))                                  (L4)

inside a DDIM sampler (:func:`esser_lab.diffusion.ddim_sample`); s = 1 is the plain conditional
model. Images are decoded with D(z / scale_factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.diffusion import (
    classifier_free_guidance,
    ddim_sample,
    drop_labels,
    index_to_time,
    q_sample,
    simple_loss,
)
from esser_lab.ldm.model import LatentDiffusion
from esser_lab.nn.placement import randint, randn

__all__ = ["LDMLoss", "ldm_loss", "sample_latents", "sample_images"]


@dataclass
class LDMLoss:
    loss: Tensor  # L_simple, (L2)
    timesteps: Tensor  # the DDPM steps drawn, (b,)


def ldm_loss(
    ldm: LatentDiffusion,
    z0: Tensor,
    labels: Tensor | None,
    generator: torch.Generator | None = None,
) -> LDMLoss:
    """(L2) on a batch of *scaled* latents ``z0`` (``ldm.encode(x)``) with class ``labels``.

    Steps, noise and the label dropout are drawn from ``generator`` on the CPU and moved to the
    latents' device (the same numbers on any device).
    """
    c = ldm.config
    b = z0.shape[0]
    n = randint(c.timesteps, (b,), generator=generator, device=z0.device)
    noise = randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    if labels is not None and c.cond_drop > 0:
        labels = drop_labels(labels, c.cond_drop, c.null_class, generator)
    alpha_bar = ldm.alphas_cumprod[n]
    z_t = q_sample(z0, alpha_bar, noise)
    pred = ldm.denoise(z_t, index_to_time(n, c.timesteps), labels)
    if c.parameterization == "eps":
        target = noise
    elif c.parameterization == "x0":
        target = z0
    else:  # v = √ᾱ ε − √(1 − ᾱ) z₀
        a = alpha_bar.view(-1, *([1] * (z0.dim() - 1)))
        target = a.sqrt() * noise - (1 - a).sqrt() * z0
    return LDMLoss(simple_loss(pred, target, c.loss_type), n)


@torch.no_grad()
def sample_latents(
    ldm: LatentDiffusion,
    labels: Tensor | None,
    shape: tuple[int, ...],
    *,
    steps: int = 50,
    eta: float = 0.0,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DDIM samples of scaled latents ``(len(labels), *shape)``, guided by (L4) when s ≠ 1."""
    c = ldm.config
    device = ldm.betas.device
    n = len(labels) if labels is not None else shape[0]
    shape = (n, *shape) if labels is not None else shape
    noise = randn(shape, generator=generator, device=device, dtype=ldm.betas.dtype)
    denoiser = ldm.denoise
    if guidance_scale != 1.0:
        if labels is None:
            raise ValueError("guidance needs class labels (and a model trained with cond_drop)")
        null = torch.full_like(labels, c.null_class)
        denoiser = classifier_free_guidance(ldm.denoise, guidance_scale, null)
    return ddim_sample(
        denoiser,
        noise,
        ldm.schedule,
        steps=steps,
        eta=eta,
        cond=None if labels is None else labels.to(device),
        generator=generator,
        parameterization=c.parameterization,
    )


@torch.no_grad()
def sample_images(
    ldm: LatentDiffusion, labels: Tensor | None, shape: tuple[int, ...], **kw
) -> Tensor:
    """:func:`sample_latents`, decoded by the first stage (``D(z / scale_factor)``)."""
    return ldm.decode(sample_latents(ldm, labels, shape, **kw))
