"""The part-based method as plain functions: views, equivariance, localised reconstruction.

Lorenz, Bereska, Milbich & Ommer, CVPR 2019 (arXiv:1903.06946). Equation numbers are the
paper's as our notes give them (not yet checked against the PDF). Where paper and released
code differ, the code is followed:

* the reconstruction loss is a squared pixel error under a mask around the part means
  (``ops.fold_img_with_mu``), not the paper's VGG perceptual loss (eq. 8);
* the equivariance terms compare the two views' part means and covariances *mapped back to
  the source image* through the known warp (``model.py``: ``mu_t``, ``stddev_t``), with the
  area change of the warp as a weight; the paper writes the same constraint as ``μ[s(x)] =
  s(μ[x])`` (eq. 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esser_lab.part_based.model import PartBased, PartBasedConfig, coordinate_grid
from esser_lab.part_based.transforms import (
    SpatialTransform,
    colour_jitter,
    sample_spatial_transform,
)


@dataclass
class Views:
    """Two views of each of b images, stacked as 2b rows (view 1 of every image, then view 2).

    ``inputs[i]`` is view s_v(x) in colours a_v; ``targets[i]`` is the same spatial view in the
    *other* view's colours: shape from row i and appearance from its partner row reconstruct it.
    """

    inputs: torch.Tensor  # (2b, 3, h, w)
    targets: torch.Tensor  # (2b, 3, h, w)
    transform: SpatialTransform  # 2b splines, view → source


def make_views(image: torch.Tensor, config: PartBasedConfig, generator: torch.Generator) -> Views:
    """``prepare_pairs`` in ``--static`` mode: two warps s₁, s₂ and two colourings a₁, a₂.

    inputs = (a₁ s₁ x, a₂ s₂ x); targets = (a₂ s₁ x, a₁ s₂ x).
    """
    b = image.shape[0]
    transform = sample_spatial_transform(
        2 * b,
        tps_scale=config.tps_scale,
        rotation_scale=config.rotation_scale,
        offset_scale=config.offset_scale,
        zoom=config.zoom,
        zoom_variation=config.zoom_variation,
        generator=generator,
    )
    transform = SpatialTransform(*(t.to(image) for t in vars(transform).values()))
    warped = transform.warp(torch.cat([image, image]))  # (2b, 3, h, w)
    jitter = dict(
        contrast=config.contrast,
        brightness=config.brightness,
        saturation=config.saturation,
        hue=config.hue,
    )
    # two colourings per image, each shared by both spatial views (``augm`` maps over pairs)
    pairs = torch.stack([warped[:b], warped[b:]], 1).flatten(0, 1)  # (2b): views of x_i adjacent
    colours = [
        colour_jitter(pairs, generator=generator, group=2, **jitter).view(b, 2, *image.shape[1:])
        for _ in range(2)
    ]
    a1, a2 = colours  # (b, 2 views, 3, h, w)
    inputs = torch.cat([a1[:, 0], a2[:, 1]])
    targets = torch.cat([a2[:, 0], a1[:, 1]])
    return Views(inputs, targets, transform)


def partner(x: torch.Tensor) -> torch.Tensor:
    """Row i of view 1 ↔ row i of view 2 (``reverse_batch`` in the code's static mode)."""
    b = x.shape[0] // 2
    return torch.cat([x[b:], x[:b]])


def source_moments(
    part_maps: torch.Tensor, transform: SpatialTransform
) -> tuple[torch.Tensor, torch.Tensor]:
    """A view's part means and covariances in source coordinates (``mu_t``, ``stddev_t``).

    Each part map is reweighted by the warp's area change |det ∂f/∂p| (``AbsDetJacobian``) and
    renormalised; then μ_t = Σ_p q(p) f(p), Σ_t = Σ_p q(p) f(p) f(p)ᵀ − μ_t μ_tᵀ.
    """
    b, k, m, _ = part_maps.shape
    grid = coordinate_grid(m, part_maps.device).to(part_maps).reshape(1, m * m, 2).expand(b, -1, -1)
    mesh = transform.to_source(grid)  # (b, m², 2)
    volume = torch.linalg.det(transform.jacobian(grid)).abs()  # (b, m²)
    weights = part_maps.flatten(2) * volume[:, None]  # (b, K, m²)
    weights = weights / weights.sum(-1, keepdim=True)
    mu = torch.einsum("bkl,bli->bki", weights, mesh)
    second = torch.einsum("bkl,bli,blj->bkij", weights, mesh, mesh)
    return mu, second - mu[..., :, None] * mu[..., None, :]


def equivariance_losses(
    mu_t: torch.Tensor, sigma_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (6) as the code writes it: ``L_μ = mean ‖μ_t¹ − μ_t²‖²`` (mean over parts and axes)
    and ``L_Σ = mean √(‖Σ_t¹ − Σ_t²‖²_F + ε)``, the two views stacked as halves of the batch."""
    b = mu_t.shape[0] // 2
    loss_mu = (mu_t[:b] - mu_t[b:]).pow(2).mean()
    loss_sigma = ((sigma_t[:b] - sigma_t[b:]).pow(2).sum((-1, -2)) + 1e-6).sqrt().mean()
    return loss_mu, loss_sigma


def reconstruction_mask(
    mu: torch.Tensor, size: int, scale: float, threshold: float
) -> torch.Tensor:
    """``fold_img_with_mu``'s mask: Σ_k 1/(1 + ‖u − μ_k‖²/scale²), clipped to 1, zero below
    ``threshold``, normalised to sum 1 per image; μ is not differentiated through. (b, h, w)."""
    grid = coordinate_grid(size, mu.device).to(mu)
    d2 = (grid[None, None] - mu.detach()[:, :, None, None]).pow(2).sum(-1)  # (b, K, h, w)
    heat = (1 / (1 + d2 / scale**2)).sum(1).clamp(0, 1)
    heat = torch.where(heat > threshold, heat, torch.zeros_like(heat))
    return heat / heat.sum((1, 2), keepdim=True).clamp_min(1e-12)


def localised_reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, config: PartBasedConfig
) -> torch.Tensor:
    """Eq. (8) as the code implements it: the masked pixel error, summed over pixels,
    averaged over images and channels (``reduce_mean(reduce_sum(fold_img, [1, 2]))``)."""
    difference = reconstruction - target
    distance = difference.abs() if config.l1 else difference.pow(2)
    mask = reconstruction_mask(
        mu, target.shape[-1], config.reconstruction_scale, config.reconstruction_threshold
    )
    return (distance * mask[:, None]).sum((2, 3)).mean()


@dataclass
class PartBasedLoss:
    """The objective's terms for one batch."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    equivariance_mu: torch.Tensor
    equivariance_sigma: torch.Tensor
    image: torch.Tensor  # the swapped reconstructions (2b, 3, h, w), detached


def part_based_loss(
    model: PartBased, image: torch.Tensor, generator: torch.Generator
) -> PartBasedLoss:
    """Eq. (9), the code's total: ``c_l2 L_rec + c_trans L_μ + c_precision L_Σ``.

    Shape of each view and appearance of the other view reconstruct the first view in the
    second view's colours (``reverse_batch`` of the features).
    """
    model.check_image(image, "image")
    config = model.config
    views = make_views(image, config, generator)
    encoding = model.encode(views.inputs)
    swapped = model.decoder(encoding.mu, encoding.L_inv, partner(encoding.features))
    rec = localised_reconstruction_loss(swapped, views.targets, encoding.mu, config)
    mu_t, sigma_t = source_moments(encoding.part_maps, views.transform)
    loss_mu, loss_sigma = equivariance_losses(mu_t, sigma_t)
    loss = config.c_l2 * rec + config.c_trans * loss_mu + config.c_precision * loss_sigma
    return PartBasedLoss(
        loss, rec.detach(), loss_mu.detach(), loss_sigma.detach(), swapped.detach()
    )


@torch.no_grad()
def swap(model: PartBased, shape_of: torch.Tensor, appearance_of: torch.Tensor) -> torch.Tensor:
    """The shape (part means) of ``shape_of`` rendered with the appearance of ``appearance_of``."""
    return model.decode(model.encode(shape_of), model.encode(appearance_of))
