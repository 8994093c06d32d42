"""The toy's paired data: single plain sprites with captions ("a red circle"), and exact edits.

Chapter 6 asks whether samples show the *requested* shape and colour, judged by classifiers
trained on real sprites at 16×16. With textures and small objects even a real sprite's shape is
hard to tell at that size, so the toy draws plain sprites at a larger scale; position, scale and
rotation stay random and are not in the caption: they are the residual the translator must model.
"""

from __future__ import annotations

import math

import torch

from esser_lab.data import sprites

__all__ = ["captioned_sprites", "recolour"]


def captioned_sprites(
    n: int,
    size: int,
    *,
    generator: torch.Generator,
    scale_range: tuple[float, float] = (0.3, 0.45),
) -> sprites.Sprites:
    """``n`` plain single sprites with uniform shape, colour and rotation, a scale uniform in
    ``scale_range`` and a centre that keeps the object inside the image."""
    lo, hi = scale_range
    if not 0 < lo <= hi < 0.5:
        raise ValueError(f"scale_range must satisfy 0 < lo <= hi < 0.5, got {scale_range}")
    shape = torch.randint(len(sprites.SHAPES), (n, 1), generator=generator)
    colour = torch.randint(len(sprites.COLOURS), (n, 1), generator=generator)
    scale = lo + (hi - lo) * torch.rand(n, 1, generator=generator)
    margin = scale[..., None]  # (n, 1, 1): keep the circumscribed circle inside
    position = margin + (1 - 2 * margin) * torch.rand(n, 1, 2, generator=generator)
    rotation = 2 * math.pi * torch.rand(n, 1, generator=generator)
    texture = torch.zeros_like(shape)  # plain
    return sprites.render(shape, colour, texture, position, scale, rotation, size)


def recolour(batch: sprites.Sprites, colour: torch.Tensor) -> sprites.Sprites:
    """The exact ground truth of a colour edit: the sprites re-rendered in ``colour`` (b, 1)."""
    return sprites.render(
        batch.shape,
        colour,
        batch.texture,
        batch.position,
        batch.scale,
        batch.rotation,
        batch.image.shape[-1],
    )
