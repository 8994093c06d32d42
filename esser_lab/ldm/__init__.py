"""Latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR 2022): chapter 14.

* ``model``: :class:`LatentDiffusion` (frozen first stage, class embedder, UNet, EMA, schedule
  buffers and ``scale_factor`` under the official names) and its :class:`LDMConfig`;
* ``method``: the objective ``L_simple`` and the (guided) DDIM sampler as functions;
* ``training``: :class:`LitLatentDiffusion`, the Lightning system;
* ``checkpoint``: the released LDM / Stable Diffusion 1.x files, split and loaded strictly;
* ``diffusers_layout``: the same weights exported by diffusers, renamed back and loaded strictly;
* ``claims``: what chapter 14 measures.

The UNet is :mod:`esser_lab.nn.unet`, the autoencoders :mod:`esser_lab.nn.first_stage`, the
schedules and samplers :mod:`esser_lab.diffusion`.
"""

from esser_lab.ldm.method import ldm_loss, sample_images, sample_latents
from esser_lab.ldm.model import (
    ClassEmbedder,
    DiffusionWrapper,
    IdentityFirstStage,
    LatentDiffusion,
    LDMConfig,
    RescaledFirstStage,
)

__all__ = [
    "ClassEmbedder",
    "DiffusionWrapper",
    "IdentityFirstStage",
    "LDMConfig",
    "LatentDiffusion",
    "RescaledFirstStage",
    "ldm_loss",
    "sample_images",
    "sample_latents",
]
