"""Signed-distance functions and texture patterns of the sprite shapes (see ``sprites.py``).

Every function takes object-frame coordinates ``u, v`` (any shape, y down) in which the shape's
circumscribed circle is the unit circle centred on the shape's area centroid, and returns a signed
distance in the same units: negative inside, zero on the boundary. Distances are exact inside;
outside, some are lower bounds (sharp corners), which is all a hard mask needs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SQUARE_HALF_SIDE = 1 / math.sqrt(2)
_CROSS_HALF_WIDTH = 0.3
_CROSS_HALF_LENGTH = math.sqrt(1 - _CROSS_HALF_WIDTH**2)
# Inigo Quilez's heart (tip at the origin, y up) has its area centroid at y = 0.6567 and its
# circumscribed circle about that centroid has radius 0.6564 (measured on a 4000x4000 grid)
_HEART_CENTROID_Y = 0.6567
_HEART_RADIUS = 0.6564
_STAR_POINTS = 5
_STAR_INNER_RADIUS = 0.45


def _box(u: Tensor, v: Tensor, half_u: float, half_v: float) -> Tensor:
    qu, qv = u.abs() - half_u, v.abs() - half_v
    outside = torch.sqrt(qu.clamp_min(0) ** 2 + qv.clamp_min(0) ** 2)
    return outside + torch.maximum(qu, qv).clamp_max(0)


def circle(u: Tensor, v: Tensor) -> Tensor:
    return torch.sqrt(u * u + v * v) - 1


def square(u: Tensor, v: Tensor) -> Tensor:
    return _box(u, v, _SQUARE_HALF_SIDE, _SQUARE_HALF_SIDE)


def triangle(u: Tensor, v: Tensor) -> Tensor:
    """Equilateral, apex up; the maximum over its three edges' line distances (inradius 1/2)."""
    distances = [u * math.sin(a) + v * math.cos(a) for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]
    return torch.maximum(torch.maximum(distances[0], distances[1]), distances[2]) - 0.5


def cross(u: Tensor, v: Tensor) -> Tensor:
    """A plus sign: the union of two bars."""
    bar = _box(u, v, _CROSS_HALF_LENGTH, _CROSS_HALF_WIDTH)
    return torch.minimum(bar, _box(u, v, _CROSS_HALF_WIDTH, _CROSS_HALF_LENGTH))


def heart(u: Tensor, v: Tensor) -> Tensor:
    """Inigo Quilez's exact heart SDF, re-centred on its centroid and scaled to unit radius."""
    x = (u * _HEART_RADIUS).abs()
    y = _HEART_CENTROID_Y - v * _HEART_RADIUS  # y up in Quilez's frame
    lobe = torch.sqrt((x - 0.25) ** 2 + (y - 0.75) ** 2) - math.sqrt(2) / 4
    diagonal = 0.5 * (x + y).clamp_min(0)
    lower = torch.sqrt(
        torch.minimum(x * x + (y - 1) ** 2, (x - diagonal) ** 2 + (y - diagonal) ** 2)
    )
    distance = torch.where(x + y > 1, lobe, lower * torch.sign(x - y))
    return distance / _HEART_RADIUS


def star(u: Tensor, v: Tensor) -> Tensor:
    """Five-pointed star, one point up; distance to the nearest edge line within each fold."""
    sector = 2 * math.pi / _STAR_POINTS
    angle = torch.atan2(u, -v)  # 0 points up
    folded = (torch.remainder(angle + sector / 2, sector) - sector / 2).abs()  # [0, sector / 2]
    radius = torch.sqrt(u * u + v * v)
    qx, qy = radius * folded.cos(), radius * folded.sin()
    # the edge from the outer point (1, 0) to the inner point at angle sector / 2
    inner_x = _STAR_INNER_RADIUS * math.cos(sector / 2)
    inner_y = _STAR_INNER_RADIUS * math.sin(sector / 2)
    ex, ey = inner_x - 1, inner_y
    length = math.hypot(ex, ey)
    nx, ny = ey / length, -ex / length  # normal pointing away from the origin
    return (qx - 1) * nx + qy * ny


SHAPE_FUNCTIONS = (circle, square, triangle, cross, heart, star)


def texture_pattern(texture: int, u: Tensor, v: Tensor) -> Tensor:
    """Bool pattern in the object frame: True where the object shows its full colour.

    0 plain (everywhere), 1 stripes (period 0.8), 2 checker (cells 0.5), 3 dots (radius 0.18 on
    a 0.6 lattice; the dots are shaded, the rest is full colour).
    """
    if texture == 0:
        return torch.ones_like(u, dtype=torch.bool)
    if texture == 1:
        return torch.remainder(torch.floor(u / 0.4), 2) == 0
    if texture == 2:
        return torch.remainder(torch.floor(u / 0.5) + torch.floor(v / 0.5), 2) == 0
    if texture == 3:
        du = torch.remainder(u + 0.3, 0.6) - 0.3
        dv = torch.remainder(v + 0.3, 0.6) - 0.3
        return du * du + dv * dv > 0.18**2
    raise ValueError(f"texture index must be in [0, 4), got {texture}")
