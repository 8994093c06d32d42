"""Errors of generated images against procedural ground truth (shape/appearance chapters), and
the pooled PSNR of reconstructions and predictions (chapters 12 and 17)."""

from __future__ import annotations

import torch
from torch import Tensor


def part_colour_error(
    images: torch.Tensor, part_masks: torch.Tensor, colours: torch.Tensor
) -> torch.Tensor:
    """Per-image mean |mean colour on each part mask − the part's target colour|.

    ``images (b, 3, h, w)`` and ``colours (b, p, 3)`` in [-1, 1]; ``part_masks (b, p, h, w)``
    bool. The error is reported in [0, 1] RGB units (half the [-1, 1] distance), averaged over
    the channels and over the parts that are visible. Returns ``(b,)``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (b, 3, h, w), got {tuple(images.shape)}")
    b, p = colours.shape[:2]
    if part_masks.shape != (b, p, *images.shape[2:]) or images.shape[0] != b:
        raise ValueError(
            f"part_masks must be ({b}, {p}, {images.shape[2]}, {images.shape[3]}) to match "
            f"images {tuple(images.shape)} and colours {tuple(colours.shape)}, got "
            f"{tuple(part_masks.shape)}"
        )
    masks = part_masks.to(images.dtype)  # (b, p, h, w)
    area = masks.sum(dim=(2, 3))  # (b, p)
    mean_colour = torch.einsum("bphw,bchw->bpc", masks, images) / area.clamp_min(1)[..., None]
    error = (mean_colour - colours).abs().mean(dim=-1) / 2  # (b, p)
    visible = (area > 0).to(images.dtype)
    return (error * visible).sum(dim=1) / visible.sum(dim=1).clamp_min(1)


def ssim(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, for images in [-1, 1]. Returns ``(b,)``.

    torchmetrics' ``structural_similarity_index_measure`` on the images mapped to [0, 1] with a
    data range of 1 (no clamping): a Gaussian window of σ = 1.5 (11 × 11, torchmetrics' size
    ``2 · int(3.5σ + 0.5) + 1``), constants k₁ = 0.01, k₂ = 0.03, and the mean over the positions
    where the whole window lies inside the image ('valid'). Images must be at least as large as
    the window.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"expected two (b, c, h, w) batches of equal shape, "
            f"got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    window = 2 * int(3.5 * sigma + 0.5) + 1
    if min(x.shape[-2:]) < window:
        raise ValueError(
            f"SSIM with sigma={sigma} needs images of at least {window}×{window} pixels, "
            f"got {tuple(x.shape[-2:])}"
        )
    return structural_similarity_index_measure(
        (x.float() + 1) / 2,
        (y.float() + 1) / 2,
        gaussian_kernel=True,
        sigma=sigma,
        data_range=1.0,
        reduction="none",
    )


def psnr(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """PSNR (dB) of images in [−1, 1] over all pixels, or over ``mask`` (b, 1, H, W) bool."""
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    error = (prediction.clamp(-1, 1) - target).pow(2).mean(1, keepdim=True)  # (b, 1, H, W)
    if mask is not None:
        if mask.shape != error.shape:
            raise ValueError(f"mask must be {tuple(error.shape)}, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("the mask selects no pixel")
        error = error[mask]
    return float(10 * torch.log10(4.0 / error.mean()))
