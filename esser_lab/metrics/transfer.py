"""Errors of generated images against procedural ground truth (shape/appearance chapters)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, for images in [-1, 1]. Returns ``(b,)``.

    Gaussian window (11, σ = 1.5), constants for a data range of 1 after mapping to [0, 1],
    'valid' filtering; the window shrinks to the image size for tiny images.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"expected two (b, c, h, w) batches of equal shape, "
            f"got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x = (x.float() + 1) / 2
    y = (y.float() + 1) / 2
    size = min(window, x.shape[-1], x.shape[-2])
    kernel = _gaussian_window(size, sigma, x.device).repeat(x.shape[1], 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=x.shape[1])

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return score.flatten(1).mean(dim=1)
