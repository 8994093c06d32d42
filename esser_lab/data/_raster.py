"""Small vectorised rasterisation helpers shared by the procedural data sets.

Conventions: pixel ``(i, j)`` (row, column) has its centre at ``(j + 0.5, i + 0.5)`` in pixel units,
x to the right and y down. Every function works on whole batches ``(b, h, w)`` at once; distances
are separable outer sums of a row term ``(b, 1, w)`` and a column term ``(b, h, 1)`` wherever
possible, which is what keeps thousands of images under a second on one core.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is a positive Python int, else raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_generator(generator: object) -> torch.Generator:
    """Return ``generator`` if it is a ``torch.Generator``; randomness is always explicit here."""
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}"
        )
    return generator


def uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> Tensor:
    """Uniform samples in ``[low, high)`` on the generator's device."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return low + (high - low) * u


def pixel_centres(size: int, device: torch.device) -> Tensor:
    """Pixel-centre coordinates ``0.5, 1.5, ..., size - 0.5`` in pixel units, shape ``(size,)``."""
    return torch.arange(size, device=device, dtype=torch.float32) + 0.5


def segment_distance2(a: Tensor, b: Tensor, coords: Tensor) -> Tensor:
    """Squared distance from every pixel centre to the segment ``a -> b``.

    Args:
        a, b: end points ``(n, 2)`` as (x, y) in pixel units.
        coords: pixel centres ``(size,)`` from :func:`pixel_centres`.

    Returns:
        ``(n, size, size)`` squared distances in pixel units.
    """
    d = b - a  # (n, 2)
    length2 = (d * d).sum(-1).clamp_min(1e-12)  # (n,)
    dx, dy = d[:, 0, None, None], d[:, 1, None, None]  # (n, 1, 1)
    rel_x = coords[None, None, :] - a[:, 0, None, None]  # (n, 1, w)
    rel_y = coords[None, :, None] - a[:, 1, None, None]  # (n, h, 1)
    # projection parameter of the closest point, clamped to the segment
    t = (rel_x * (dx / length2[:, None, None]) + rel_y * (dy / length2[:, None, None])).clamp(0, 1)
    ex = rel_x - t * dx  # (n, h, w)
    ey = rel_y - t * dy
    return ex * ex + ey * ey


def point_distance2(centre: Tensor, coords: Tensor) -> Tensor:
    """Squared distance from every pixel centre to ``centre`` ``(n, 2)``: ``(n, size, size)``."""
    dx = coords[None, None, :] - centre[:, 0, None, None]  # (n, 1, w)
    dy = coords[None, :, None] - centre[:, 1, None, None]  # (n, h, 1)
    return dx * dx + dy * dy


def polygon_signed_distance(vertices: Tensor, coords: Tensor) -> Tensor:
    """Signed distance to a convex polygon, as the maximum of the edges' line distances.

    Exact inside (negative) and on the boundary; outside it is a lower bound that makes corners
    sharp rather than rounded, which is what a filled polygon needs.

    Args:
        vertices: ``(n, v, 2)`` vertices of convex polygons in either winding order, pixel units.
        coords: pixel centres ``(size,)``.

    Returns:
        ``(n, size, size)``; ``<= 0`` inside.
    """
    nxt = vertices.roll(-1, dims=1)
    edge = nxt - vertices  # (n, v, 2)
    # shoelace: the sign of the area tells the winding, so outward normals point the right way
    area2 = (vertices[..., 0] * nxt[..., 1] - nxt[..., 0] * vertices[..., 1]).sum(-1)  # (n,)
    winding = torch.where(area2 >= 0, 1.0, -1.0)[:, None]  # (n, 1)
    length = edge.norm(dim=-1).clamp_min(1e-6)  # (n, v)
    # outward unit normal of edge (ex, ey) for positive winding (y down): (ey, -ex)
    nx = winding * edge[..., 1] / length  # (n, v)
    ny = -winding * edge[..., 0] / length
    offset = nx * vertices[..., 0] + ny * vertices[..., 1]  # (n, v)
    signed = None
    for k in range(vertices.shape[1]):
        term_x = coords[None, None, :] * nx[:, k, None, None]  # (n, 1, w)
        term_y = (
            coords[None, :, None] * ny[:, k, None, None] - offset[:, k, None, None]
        )  # (n, h, 1)
        dist_k = term_x + term_y  # (n, h, w)
        signed = dist_k if signed is None else torch.maximum(signed, dist_k)
    assert signed is not None
    return signed


def hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """HSV in ``[0, 1]`` (hue wraps) to RGB in ``[0, 1]``, shape ``(..., 3)``."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device)
    k = (n + hue[..., None] * 6.0) % 6.0  # (..., 3)
    ramp = torch.minimum(torch.minimum(k, 4.0 - k), torch.ones_like(k)).clamp_min(0.0)
    return value[..., None] - value[..., None] * saturation[..., None] * ramp
