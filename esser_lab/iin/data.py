"""Pairs of sprites that share one known factor: the supervision of the dIIN.

The official ``ColorfulMNIST`` pairs (``iin/data.py``) show two images that share one factor (the
digit, or the colour) and differ in everything else. Here the factors are the sprites' own
(``esser_lab.data.sprites``): a pair shares its ``colour`` or its ``position``, and everything
else (the other factor, shape, scale, rotation) is drawn anew. The second image is *re-rendered*
from the first one's shared factor, so the pairing is exact. Textures are plain: at 16×16 pixels
the stripes and dots of ``sprites`` are not legible, so they would only add noise.

The last factor of the interpretation network is the *residual*: whatever the named factors do
not explain (here shape, scale and rotation). No pair shares it. Shape is not a named factor
because at 16×16 pixels it is barely legible (a small classifier we trained on real sprites read it
with well under 50 % accuracy), so an edit of it could not be judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.data import sprites
from esser_lab.data._raster import uniform

FACTORS = ("colour", "position")  # the named factors, in the order of T(z)'s chunks; then residual


BACKGROUND = (-0.5, -0.5, -0.5)  # dark grey, see plain_sprites


def factor_values(batch: sprites.Sprites, factor: str) -> Tensor:
    """A named factor's true values as numbers ``(b, m)`` for a linear read-out of the first
    object: ``"colour"`` its RGB in [-1, 1] (b, 3), ``"position"`` its centre (x, y) (b, 2)."""
    if factor == "colour":
        table = torch.tensor(list(sprites.COLOURS.values()), device=batch.colour.device)
        return table[batch.colour[:, 0]]
    if factor == "position":
        return batch.position[:, 0]
    raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")


def plain_sprites(n: int, size: int, *, generator: torch.Generator) -> sprites.Sprites:
    """``n`` one-object sprites with random shape, colour, position, scale, rotation; plain texture.

    The factors are drawn as ``sprites.sample`` draws them (uniform tables, scale in [0.2, 0.4),
    the object kept inside the image). The background is dark grey, not the black of
    ``sprites``: black (-1) sits where the autoencoder's final ``tanh`` saturates, and a tiny
    autoencoder then tends to collapse onto an all-black output whose gradient vanishes.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    shape = torch.randint(len(sprites.SHAPES), (n, 1), generator=generator)
    colour = torch.randint(len(sprites.COLOURS), (n, 1), generator=generator)
    scale = uniform((n, 1), 0.2, 0.4, generator)
    rotation = uniform((n, 1), 0.0, 2 * math.pi, generator)
    position = scale[..., None] + (1 - 2 * scale[..., None]) * uniform((n, 1, 2), 0, 1, generator)
    texture = torch.zeros_like(shape)
    return sprites.render(shape, colour, texture, position, scale, rotation, size, BACKGROUND)


def rerender(batch: sprites.Sprites, size: int, **factors: Tensor) -> sprites.Sprites:
    """``batch`` rendered again with some factors replaced, e.g. ``colour=other.colour``.

    This is the exact ground truth of an edit: everything not named is kept.
    """
    known = ("shape", "colour", "texture", "position", "scale", "rotation")
    unknown = sorted(set(factors) - set(known))
    if unknown:
        raise ValueError(f"unknown sprite factor(s) {unknown}; expected some of {list(known)}")
    values = {name: factors.get(name, getattr(batch, name)) for name in known}
    return sprites.render(**values, size=size, background=batch.background)


@dataclass(frozen=True)
class FactorPairs:
    """``n`` pairs: ``first`` and ``second`` share factor ``FACTORS[shared[i]]``, nothing else."""

    first: sprites.Sprites
    second: sprites.Sprites
    shared: Tensor  # (n,) long: index into FACTORS

    def to(self, device: torch.device | str) -> FactorPairs:
        """The same pairs on ``device`` (where the models train and are measured)."""
        return FactorPairs(self.first.to(device), self.second.to(device), self.shared.to(device))


def factor_pairs(n: int, size: int, *, generator: torch.Generator) -> FactorPairs:
    """Pairs sharing a uniformly chosen named factor (the official pair sampler's scheme).

    ``second`` is an independent sprite re-rendered with ``first``'s colour (``shared == 0``) or
    position (``shared == 1``), so the two share exactly that factor (and, for colour, by chance
    1/8, both; as two random MNIST digits of one colour may show the same digit). A shared
    position keeps ``second``'s own scale, so a large object near the border may be clipped.
    """
    first = plain_sprites(n, size, generator=generator)
    other = plain_sprites(n, size, generator=generator)
    shared = torch.randint(len(FACTORS), (n,), generator=generator)
    replaced = {}
    for index, name in enumerate(FACTORS):
        mine, theirs = getattr(first, name), getattr(other, name)
        keep = (shared == index).view(-1, *[1] * (mine.dim() - 1))  # (n, 1[, 1])
        replaced[name] = torch.where(keep, mine, theirs)
    return FactorPairs(first, rerender(other, size, **replaced), shared)
