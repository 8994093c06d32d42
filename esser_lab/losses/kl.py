"""KL divergences between diagonal Gaussians: summed over latent dimensions, batch-averaged."""

from __future__ import annotations

import torch


def gaussian_kl(
    mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per sample, summed over every axis but the first."""
    kl = 0.5 * (
        torch.exp(logvar_q - logvar_p)
        - 1.0
        + (mean_q - mean_p).pow(2) * torch.exp(-logvar_p)
        + logvar_p
        - logvar_q
    )
    return kl.flatten(1).sum(dim=1)


def unit_variance_kl(means_q: list[torch.Tensor], means_p: list[torch.Tensor]) -> torch.Tensor:
    """Σ_scales ½‖μ_q − μ_p‖², batch mean: the KL of two unit-variance Gaussians.

    This is the VUNet's KL term (official ``models.latent_kl``): posterior and prior both have
    σ = 1, so only their means enter.
    """
    if len(means_q) != len(means_p):
        raise ValueError(f"{len(means_q)} posterior scales but {len(means_p)} prior scales")
    if not means_q:
        raise ValueError("no latent scales: the KL term needs at least one")
    total = 0.0
    for mean_q, mean_p in zip(means_q, means_p, strict=True):
        if mean_q.shape != mean_p.shape:
            raise ValueError(
                f"posterior {tuple(mean_q.shape)} and prior {tuple(mean_p.shape)} differ"
            )
        total = total + 0.5 * (mean_q - mean_p).pow(2).flatten(1).sum(dim=1)
    return total.mean()
