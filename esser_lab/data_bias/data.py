"""Procedural "data sets" of sprites with known, designed biases between them.

The data-bias note (Esser, Rombach & Ommer, 2020) translates between real data sets (CelebA,
CelebA-HQ, FFHQ; photographs, anime, oil portraits) whose biases are unknown and can only be
looked at. Here every bias is *designed*, so a translation can be checked factor by factor:

* ``A`` ("uniform"): shapes and colours uniform, sizes in ``[0.22, 0.42)``;
* ``B`` ("red, round"): half of all objects are red (A: 1 in 8), and circles, squares and
  triangles make up 90 % of the shapes (crosses, hearts and stars are rare: 1 in 30 each);
* ``C`` ("large"): like A but every object is large, sizes in ``[0.34, 0.42)``.

Position is uniform in every data set: it is the *shared* factor, which a translation should
keep (and so are shape and colour wherever a data set does not bias them). Objects are plain (no
texture) and upright (no rotation): at 16×16 neither textures nor rotated stars would read.
Images are ``(b, 3, h, w)`` in ``[-1, 1]`` on a black background (:mod:`esser_lab.data.sprites`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.data import sprites
from esser_lab.data._raster import check_generator, check_positive_int, uniform

__all__ = ["DOMAINS", "BiasedSprites", "DomainSpec", "foreground_readout", "sample_domains"]

RED = list(sprites.COLOURS).index("red")
COMMON_SHAPES = ("circle", "square", "triangle")  # common in B
RARE_SHAPES = ("cross", "heart", "star")  # rare in B


@dataclass(frozen=True)
class DomainSpec:
    """One data set: categorical priors over shapes and colours, and a size range."""

    name: str
    shape_probs: tuple[float, ...]
    colour_probs: tuple[float, ...]
    scale_range: tuple[float, float]

    def __post_init__(self) -> None:
        for field, probs, table in (
            ("shape_probs", self.shape_probs, sprites.SHAPES),
            ("colour_probs", self.colour_probs, sprites.COLOURS),
        ):
            if len(probs) != len(table) or min(probs) < 0 or not math.isclose(sum(probs), 1.0):
                raise ValueError(
                    f"{field} must be {len(table)} non-negative numbers summing to 1, got {probs}"
                )
        low, high = self.scale_range
        if not 0 < low < high < 0.5:
            raise ValueError(
                f"scale_range must satisfy 0 < low < high < 0.5, got {self.scale_range}"
            )


def _uniform(n: int) -> tuple[float, ...]:
    return (1.0 / n,) * n


def _b_shapes() -> tuple[float, ...]:
    return tuple(0.3 if s in COMMON_SHAPES else 0.1 / 3 for s in sprites.SHAPES)


def _b_colours() -> tuple[float, ...]:
    others = len(sprites.COLOURS) - 1
    return tuple(0.5 if i == RED else 0.5 / others for i in range(len(sprites.COLOURS)))


DOMAINS: tuple[DomainSpec, ...] = (
    DomainSpec("A", _uniform(len(sprites.SHAPES)), _uniform(len(sprites.COLOURS)), (0.22, 0.42)),
    DomainSpec("B", _b_shapes(), _b_colours(), (0.22, 0.42)),
    DomainSpec("C", _uniform(len(sprites.SHAPES)), _uniform(len(sprites.COLOURS)), (0.34, 0.42)),
)


@dataclass(frozen=True)
class BiasedSprites:
    """Sprites from several data sets: images, the data-set label and every factor.

    ``image`` ``(n, 3, s, s)``; ``domain``, ``shape``, ``colour`` ``(n,)`` long; ``position``
    ``(n, 2)`` (x, y) in ``[0, 1]``, y down; ``scale`` ``(n,)`` (circumradius / image side).
    """

    image: Tensor
    domain: Tensor
    shape: Tensor
    colour: Tensor
    position: Tensor
    scale: Tensor


def sample_domains(
    domain: Tensor,
    size: int,
    *,
    generator: torch.Generator,
    domains: tuple[DomainSpec, ...] = DOMAINS,
) -> BiasedSprites:
    """One sprite per entry of ``domain`` (``(n,)`` long indices into ``domains``), drawn from
    that data set's priors; all images in one vectorised render."""
    check_positive_int(size, "size")
    generator = check_generator(generator)
    if not isinstance(domain, Tensor) or domain.dim() != 1 or domain.is_floating_point():
        raise ValueError(
            f"domain must be a 1-d integer tensor, got {getattr(domain, 'shape', domain)}"
        )
    if domain.numel() == 0 or domain.min() < 0 or domain.max() >= len(domains):
        raise ValueError(f"domain indices must lie in [0, {len(domains)}) and be non-empty")
    n = domain.shape[0]
    shape_probs = torch.tensor([d.shape_probs for d in domains])[domain]  # (n, shapes)
    colour_probs = torch.tensor([d.colour_probs for d in domains])[domain]  # (n, colours)
    shape = torch.multinomial(shape_probs, 1, generator=generator).squeeze(1)
    colour = torch.multinomial(colour_probs, 1, generator=generator).squeeze(1)
    ranges = torch.tensor([d.scale_range for d in domains])[domain]  # (n, 2)
    scale = ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * uniform((n,), 0, 1, generator)
    # centres keep the circumscribed circle inside the image
    position = scale[:, None] + (1 - 2 * scale[:, None]) * uniform((n, 2), 0, 1, generator)
    drawn = sprites.render(
        shape[:, None],
        colour[:, None],
        torch.zeros_like(shape)[:, None],  # plain
        position[:, None],
        scale[:, None],
        torch.zeros(n, 1),  # upright
        size,
    )
    return BiasedSprites(drawn.image, domain.long(), shape, colour, position, scale)


def foreground_readout(image: Tensor) -> tuple[Tensor, Tensor]:
    """Read the object's area and centre off images on the black background.

    A pixel is foreground when its brightest channel is above 0 (mid-grey), which holds for
    every colour of :data:`esser_lab.data.sprites.COLOURS`. Returns the foreground fraction
    ``(n,)`` and the foreground centroid ``(n, 2)`` as (x, y) in ``[0, 1]`` (y down; 0.5 where
    an image has no foreground).
    """
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (n, 3, h, w), got {getattr(image, 'shape', image)}")
    h, w = image.shape[2:]
    foreground = (image.max(dim=1).values > 0).float()  # (n, h, w)
    mass = foreground.sum(dim=(1, 2))
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    cx = (foreground * xs[None, None, :]).sum(dim=(1, 2)) / mass.clamp_min(1)
    cy = (foreground * ys[None, :, None]).sum(dim=(1, 2)) / mass.clamp_min(1)
    centre = torch.where(
        mass[:, None] > 0, torch.stack([cx, cy], dim=1), torch.full_like(cx, 0.5)[:, None]
    )
    return mass / (h * w), centre
