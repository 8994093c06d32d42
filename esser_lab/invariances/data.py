"""The chapter's toy: single plain sprites whose shape is the class and everything else a nuisance.

``shape_sprites`` draws one plain (untextured, unrotated) sprite per image: shape uniform over
the first ``num_shapes`` of ``sprites.SHAPES`` (circle, square, triangle, cross), colour uniform
over the 8 palette colours, scale in [0.3, 0.4), position uniform inside the image. With
``biased=True`` the colour is *determined by the class* (shape k has palette colour k): the data
of a classifier that can solve the task from colour alone (the analogue of the texture bias of
ImageNet CNNs that the paper reveals). ``swap_truth`` renders the exact ground truth of a swap:
the shape of b with the colour, position and scale of a.
"""

from __future__ import annotations

import torch

from esser_lab.data import sprites

NUM_SHAPES = 4
SCALE_RANGE = (0.3, 0.4)


def shape_sprites(
    n: int,
    size: int,
    *,
    generator: torch.Generator,
    biased: bool = False,
    num_shapes: int = NUM_SHAPES,
) -> sprites.Sprites:
    """``n`` sprites (one object each) with exact factors; see the module docstring."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 2 <= num_shapes <= len(sprites.SHAPES):
        raise ValueError(f"num_shapes must lie in [2, {len(sprites.SHAPES)}], got {num_shapes}")
    if biased and num_shapes > len(sprites.COLOURS):
        raise ValueError("a biased set needs at most one shape per palette colour")
    shape = torch.randint(num_shapes, (n, 1), generator=generator)
    colour = (
        shape.clone()
        if biased
        else torch.randint(len(sprites.COLOURS), (n, 1), generator=generator)
    )
    low, high = SCALE_RANGE
    scale = low + (high - low) * torch.rand(n, 1, generator=generator)
    margin = scale[..., None]  # keep the circumscribed circle inside the image
    position = margin + (1 - 2 * margin) * torch.rand(n, 1, 2, generator=generator)
    plain, upright = torch.zeros_like(shape), torch.zeros(n, 1)
    return sprites.render(shape, colour, plain, position, scale, upright, size)


def swap_truth(a: sprites.Sprites, b: sprites.Sprites) -> sprites.Sprites:
    """The ground truth of "a's invariances, b's shape": ``render(shape of b, rest of a)``."""
    if a.shape.shape != b.shape.shape:
        raise ValueError(
            f"a and b must hold the same number of sprites, got {a.shape.shape} and {b.shape.shape}"
        )
    size = a.image.shape[-1]
    return sprites.render(b.shape, a.colour, a.texture, a.position, a.scale, a.rotation, size)


def palette_rgb(colour: torch.Tensor) -> torch.Tensor:
    """Palette indices ``(...)`` → their RGB values in [-1, 1], ``(..., 3)``."""
    return torch.tensor(list(sprites.COLOURS.values()))[colour]
