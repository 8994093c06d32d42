"""Explicit geometry: forward-warping a view with its depth and a relative camera (chapter 12).

What the geometry-free transformer does *without*: every source pixel (u, v) with depth d is
lifted to X_s = d K⁻¹ (u, v, 1)ᵀ, moved into the target camera, X_t = R X_s + t, and projected,
(u', v') ~ K X_t ((W1) of the chapter). It lands in the target pixel that contains (u', v')
(nearest splatting; pixel (i, j) covers [j, j + 1) × [i, i + 1)); where several land in one
pixel the nearest (smallest z, a z-buffer) wins. Target pixels nothing lands in are *holes*:
disocclusions, the parts outside the source frame, and cracks where a surface is magnified.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Warped", "forward_warp"]


@dataclass(frozen=True)
class Warped:
    """A forward-warped view: ``image`` (b, c, H, W) (zeros in holes), ``valid`` (b, 1, H, W)
    bool (something landed there) and the landed ``depth`` (b, 1, H, W) (inf in holes)."""

    image: Tensor
    valid: Tensor
    depth: Tensor


def forward_warp(image: Tensor, depth: Tensor, R: Tensor, t: Tensor, K: Tensor) -> Warped:
    """(W1): splat ``image`` (b, c, H, W) with ``depth`` (b, 1, H, W) into the camera (R, t, K).

    ``R`` (b, 3, 3), ``t`` (b, 3): source to target camera coordinates; ``K`` (b, 3, 3) or
    (3, 3), the intrinsics of both views.
    """
    if image.dim() != 4 or depth.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(
            f"image must be (b, c, H, W) and depth (b, 1, H, W), got {tuple(image.shape)} and "
            f"{tuple(depth.shape)}"
        )
    b, c, h, w = image.shape
    if R.shape != (b, 3, 3) or t.shape != (b, 3):
        raise ValueError(
            f"R must be (b, 3, 3) and t (b, 3), got {tuple(R.shape)}, {tuple(t.shape)}"
        )
    K = K.expand(b, 3, 3) if K.dim() == 2 else K
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=image.dtype) + 0.5,
        torch.arange(w, device=image.device, dtype=image.dtype) + 0.5,
        indexing="ij",
    )
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, h * w, 3)  # (1, hw, 3)
    rays = pixels @ torch.linalg.inv(K).transpose(1, 2)  # (b, hw, 3)
    points = depth.reshape(b, h * w, 1) * rays  # source camera coordinates
    moved = points @ R.transpose(1, 2) + t[:, None, :]  # target camera coordinates
    z = moved[..., 2]  # (b, hw)
    projected = moved @ K.transpose(1, 2)
    uv = projected[..., :2] / z.clamp_min(1e-6)[..., None]
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    lands = (z > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    batch = torch.arange(b, device=image.device)[:, None].expand(b, h * w)
    index = (batch * h * w + row.clamp(0, h - 1) * w + col.clamp(0, w - 1))[lands]  # (m,)
    z_landed = z[lands]
    zbuffer = torch.full((b * h * w,), float("inf"), device=image.device, dtype=image.dtype)
    zbuffer = zbuffer.scatter_reduce(0, index, z_landed, reduce="amin")
    winner = z_landed <= zbuffer[index]  # ties average their colours
    colours = image.reshape(b, c, h * w).transpose(1, 2)[lands][winner]  # (m', c)
    total = torch.zeros(b * h * w, c, device=image.device, dtype=image.dtype)
    count = torch.zeros(b * h * w, device=image.device, dtype=image.dtype)
    total.index_add_(0, index[winner], colours)
    count.index_add_(0, index[winner], torch.ones_like(colours[:, 0]))
    valid = count > 0
    warped = total / count.clamp_min(1)[:, None]
    return Warped(
        image=warped.reshape(b, h, w, c).permute(0, 3, 1, 2),
        valid=valid.reshape(b, 1, h, w),
        depth=zbuffer.reshape(b, 1, h, w),
    )
