"""Sampling a released SD3 file: chapter 17's full-scale cell, as a tested function.

Esser et al., *Scaling Rectified Flow Transformers for High-Resolution Image Synthesis* (ICML 2024,
arXiv 2403.03206). :func:`sample_released` reads an official single file
(``sd3_medium.safetensors``: ``model.diffusion_model.*`` and ``first_stage_model.*``), samples the
rectified flow with Euler on the reference sampler's shifted grid
(:func:`esser_lab.diffusion.time_grid`, ``grid="sd3"``), optionally with classifier-free guidance
(one batched call), and decodes with the file's VAE and SD3's latent format
(``z/1.5305 + 0.0609``). The prompt's condition comes from the caller
(:class:`esser_lab.sd3.text.SD3TextEncoders`); without one, an all-zero encoding shows what the
model draws unprompted. The official ``sd3_infer`` samples SD3-medium with DPM-Solver++(2M),
50 steps, guidance 5; diffusers with Euler, shift 3.0, 28 steps (the defaults here).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from esser_lab.diffusion import classifier_free_guidance
from esser_lab.diffusion.formulations import formulation
from esser_lab.nn.first_stage import AutoencoderKLConfig
from esser_lab.sd3.checkpoint import load_mmdit, split_sd3_checkpoint

__all__ = ["sample_released"]


def sample_released(
    source: str | Path | dict[str, Tensor],
    *,
    cond: dict[str, Tensor] | None = None,
    null_cond: dict[str, Tensor] | None = None,
    guidance: float = 1.0,
    steps: int = 28,
    shift: float = 3.0,
    size: int = 1024,
    seed: int = 0,
    device: torch.device | str = "cpu",
    vae_config: AutoencoderKLConfig | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Latents ``(b, c, size/f, size/f)`` and, where the file holds its VAE, images
    ``(b, 3, size, size)`` in [−1, 1] (else None), sampled from the released file ``source``.

    ``cond``: ``{"context": (b, L, d), "pooled": (b, p)}`` (None: one all-zero encoding, L = 154);
    ``null_cond``: the unconditional input for ``guidance`` ≠ 1 (e.g. the empty prompt's
    encoding); ``vae_config``: None is SD3's VAE (f = 8), another for tiny test files.
    """
    from esser_lab.sd3.first_stage import decode_latents, load_sd3_vae

    parts = split_sd3_checkpoint(source)
    mmdit = load_mmdit(parts).to(device)
    config = mmdit.config
    factor = 8 if vae_config is None else vae_config.factor
    if size % (factor * config.patch_size):
        raise ValueError(f"size must be a multiple of {factor * config.patch_size}, got {size}")
    if cond is None:
        cond = {
            "context": torch.zeros(1, 154, config.context_dim),
            "pooled": torch.zeros(1, config.adm_in),
        }
    cond = {key: value.to(device) for key, value in cond.items()}
    batch = cond["pooled"].shape[0]
    generator = torch.Generator().manual_seed(seed)
    latent = size // factor
    noise = torch.randn(batch, config.in_channels, latent, latent, generator=generator)
    model = mmdit
    if guidance != 1.0:
        if null_cond is None:
            raise ValueError("guidance ≠ 1 needs null_cond (e.g. the empty prompt's encoding)")
        model = classifier_free_guidance(
            mmdit, guidance, {key: value.to(device) for key, value in null_cond.items()}
        )
    with torch.no_grad():
        z = formulation("rf").sample(model, noise.to(device), steps, cond, shift=shift)
        if not parts.first_stage:
            return z, None
        vae = load_sd3_vae(parts.first_stage, config=vae_config).to(device)
        return z, decode_latents(vae, z).clamp(-1, 1)
