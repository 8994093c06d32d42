"""Cue-conflict images: a shape filled with a texture, with shape and texture known.

The data of chapter 11 (Islam, Kowal, Esser et al., *Shape or Texture*, ICLR 2021). The paper
measures how much of a CNN's pooled features encode an object's *shape* and how much its
*texture*, on Stylized PASCAL VOC: VOC objects re-rendered with five texture images. Here a
procedural stand-in: one of four shapes (the sprites' signed-distance functions) at a random
position, size and rotation, filled with one of four image-frame textures in a random colour,
on a background that carries a texture of its own. Every factor is returned, with the binary
foreground mask and the per-pixel shape-class map that the shape-decoding readouts are scored
against.

The whole image is stylised, as in the official ``generate_stylized_voc`` (``make_stl_voc.py``
runs AdaIN on the entire VOC photograph, so the background is as textured as the object).
Here the background is drawn from the same texture family as the object (one of
``TEXTURES``, the same two-tone rendering) with its own texture type, hue and phase, drawn
independently of the object's in both regimes (so it never predicts the class). The reason:
with a plain background the object is the only coloured, patterned region, and each pixel's
3×3 neighbourhood already tells object from background, so a binary readout on raw pixels
is near perfect and says nothing about shape; with both regions drawn from one distribution,
no pixel statistic tells which region is the object, only its outline does. In Stylized VOC
one style covers object and background alike and the photograph's own structure keeps the
outline visible; a toy image has no such structure, so the two regions get independent
draws, and the outline shows as a change of colour, pattern or phase. The two are not forced
to differ: the type matches one time in four, but the hues and phases are continuous and
independent, so the outline vanishes only in the rare image where all three nearly
coincide.

Two training regimes, as in the paper's ImageNet vs Stylized-ImageNet backbones:

* ``"shortcut"`` ("ImageNet-like"): texture ``i`` goes with shape ``i`` with probability
  ``shortcut_p`` (0.9), so a classifier of shape can get far with texture alone;
* ``"randomised"`` ("Stylized-ImageNet-like"): texture is independent of shape, so only shape
  predicts the class.

Pairs for the dimension estimate follow the official ``StylizedVoc`` dataset
(``dim_estimation/datasets/svoc.py``), where a pair is the same photograph in two styles
(shape) or two photographs of different classes in one style (texture); the style is the
whole image's: factor 0 (shape) pairs are the *same* object (shape, position, size, rotation)
in another texture (type and colour) on a newly drawn background texture (type, colour,
phase); factor 1 (texture) pairs keep the object's and the background's texture types and
colours (new phases) and show another shape class elsewhere.

Conventions: images are float32 ``(b, 3, size, size)`` in ``[-1, 1]``; ``position`` is the
(x, y) centre in ``[0, 1]``, y down; ``scale`` is the circumscribed radius as a fraction of the
side; ``semantic`` is 0 on the background and ``1 + shape`` on the object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from esser_lab.data import _sdf
from esser_lab.data._batching import Indexable
from esser_lab.data._raster import (
    check_generator,
    check_positive_int,
    hsv_to_rgb,
    pixel_centres,
    uniform,
)

__all__ = [
    "REGIMES",
    "SHAPES",
    "TEXTURES",
    "CueConflict",
    "CuePairs",
    "factor_pairs",
    "render",
    "sample",
]

SHAPES = ("circle", "square", "triangle", "cross")  # _sdf.SHAPE_FUNCTIONS[0:4]
TEXTURES = ("horizontal stripes", "vertical stripes", "checker", "dots")
REGIMES = ("shortcut", "randomised")
SHAPE_FACTOR, TEXTURE_FACTOR = 0, 1  # the official factor indices (2 is the residual)
_SCALE_RANGE = (0.28, 0.42)
_DARK = 0.35  # the texture's second colour is this fraction of the first


@dataclass(frozen=True)
class CueConflict(Indexable):
    """A batch of cue-conflict images with their factors and ground-truth maps.

    Attributes:
        image: ``(b, 3, size, size)`` float32 in ``[-1, 1]``.
        mask: ``(b, size, size)`` bool, the object's pixels.
        semantic: ``(b, size, size)`` long, 0 background, ``1 + shape`` on the object.
        shape: ``(b,)`` long index into ``SHAPES``.
        texture: ``(b,)`` long index into ``TEXTURES``.
        hue: ``(b,)`` the texture colour's hue in ``[0, 1)``.
        phase: ``(b, 2)`` the texture's offset in periods.
        position, scale, rotation: ``(b, 2)``, ``(b,)``, ``(b,)``.
        background_texture, background_hue, background_phase: ``(b,)``, ``(b,)``, ``(b, 2)``,
            the background's texture, as the object's.
    """

    image: Tensor
    mask: Tensor
    semantic: Tensor
    shape: Tensor
    texture: Tensor
    hue: Tensor
    phase: Tensor
    position: Tensor
    scale: Tensor
    rotation: Tensor
    background_texture: Tensor
    background_hue: Tensor
    background_phase: Tensor


@dataclass(frozen=True)
class CuePairs:
    """Pairs ``(a[i], b[i])`` sharing factor ``factor[i]`` (0 shape, 1 texture)."""

    a: CueConflict
    b: CueConflict
    factor: Tensor  # (n,) long


def _pattern(texture: Tensor, phase: Tensor, size: int) -> Tensor:
    """``(b, size, size)`` bool: where each image's texture shows its full colour."""
    period = size / 4  # pixels: 4 periods across the image
    coords = pixel_centres(size, texture.device) / period
    x = coords[None, None, :] + phase[:, 0, None, None]  # (b, 1, w)
    y = coords[None, :, None] + phase[:, 1, None, None]  # (b, h, 1)
    stripes_h = torch.remainder(torch.floor(2 * y), 2).expand(-1, -1, size) == 0
    stripes_v = torch.remainder(torch.floor(2 * x), 2).expand(-1, size, -1) == 0
    checker = torch.remainder(torch.floor(2 * x) + torch.floor(2 * y), 2) == 0
    dx, dy = torch.remainder(x, 1) - 0.5, torch.remainder(y, 1) - 0.5
    dots = dx * dx + dy * dy > 0.3**2
    patterns = torch.stack([stripes_h, stripes_v, checker, dots], 1)  # (b, 4, h, w)
    return patterns[torch.arange(len(texture)), texture]


def _fill(texture: Tensor, hue: Tensor, phase: Tensor, size: int) -> Tensor:
    """``(b, 3, size, size)``: the two-tone texture in its colour (full and ``_DARK`` of it)."""
    colour = 2 * hsv_to_rgb(hue, torch.ones_like(hue), torch.ones_like(hue)) - 1  # (b, 3)
    full = _pattern(texture, phase, size)[:, None]  # (b, 1, h, w)
    return torch.where(full, colour[:, :, None, None], _DARK * colour[:, :, None, None])


def render(
    shape: Tensor,
    texture: Tensor,
    hue: Tensor,
    phase: Tensor,
    position: Tensor,
    scale: Tensor,
    rotation: Tensor,
    background_texture: Tensor,
    background_hue: Tensor,
    background_phase: Tensor,
    *,
    size: int,
) -> CueConflict:
    """Render ``size × size`` cue-conflict images from explicit factors (see
    :class:`CueConflict`): the object in its texture over the background in its own."""
    check_positive_int(size, "size")
    if not isinstance(shape, Tensor) or shape.dim() != 1:
        got = tuple(shape.shape) if isinstance(shape, Tensor) else type(shape).__name__
        raise ValueError(f"shape must be a (b,) tensor of class indices, got {got}")
    b = len(shape)
    expected = {"texture": (b,), "hue": (b,), "phase": (b, 2), "position": (b, 2)}
    expected |= {"scale": (b,), "rotation": (b,), "background_texture": (b,)}
    expected |= {"background_hue": (b,), "background_phase": (b, 2)}
    values = dict(texture=texture, hue=hue, phase=phase, position=position, scale=scale)
    values |= dict(rotation=rotation, background_texture=background_texture)
    values |= dict(background_hue=background_hue, background_phase=background_phase)
    for name, value in values.items():
        if not isinstance(value, Tensor) or tuple(value.shape) != expected[name]:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must have shape {expected[name]}, got {got}")
    if shape.min() < 0 or shape.max() >= len(SHAPES):
        raise ValueError(f"shape indices must lie in [0, {len(SHAPES)}), got {shape.tolist()}")
    for name, index in (("texture", texture), ("background_texture", background_texture)):
        if index.min() < 0 or index.max() >= len(TEXTURES):
            raise ValueError(f"{name} indices must lie in [0, {len(TEXTURES)})")
    coords = pixel_centres(size, shape.device) / size
    cos = (rotation.cos() / scale)[:, None, None]
    sin = (rotation.sin() / scale)[:, None, None]
    dx = coords[None, None, :] - position[:, 0, None, None]  # (b, 1, w)
    dy = coords[None, :, None] - position[:, 1, None, None]  # (b, h, 1)
    u, v = cos * dx - sin * dy, sin * dx + cos * dy  # (b, h, w) object frame
    distance = torch.stack([f(u, v) for f in _sdf.SHAPE_FUNCTIONS[: len(SHAPES)]], 1)
    mask = distance[torch.arange(b), shape] <= 0  # (b, h, w)
    fill = _fill(texture, hue, phase, size)
    background = _fill(background_texture, background_hue, background_phase, size)
    image = torch.where(mask[:, None], fill, background)
    semantic = torch.where(mask, shape[:, None, None] + 1, torch.zeros_like(shape)[:, None, None])
    return CueConflict(
        image=image.float(),
        mask=mask,
        semantic=semantic.long(),
        shape=shape.long(),
        texture=texture.long(),
        hue=hue,
        phase=phase,
        position=position,
        scale=scale,
        rotation=rotation,
        background_texture=background_texture.long(),
        background_hue=background_hue,
        background_phase=background_phase,
    )


def _geometry(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    scale = uniform((n,), *_SCALE_RANGE, generator)
    position = scale[:, None] + (1 - 2 * scale[:, None]) * uniform((n, 2), 0, 1, generator)
    rotation = uniform((n,), 0.0, 2 * math.pi, generator)
    return position, scale, rotation


def _background(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The background's texture type, hue and phase: uniform, whatever the object is."""
    texture = torch.randint(len(TEXTURES), (n,), generator=generator, device=generator.device)
    return texture, uniform((n,), 0, 1, generator), uniform((n, 2), 0, 1, generator)


def _other(index: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """A uniformly drawn index in ``[0, count)`` different from ``index``, per element."""
    step = torch.randint(1, count, index.shape, generator=generator, device=generator.device)
    return (index + step) % count


def sample(
    n: int,
    size: int,
    *,
    generator: torch.Generator,
    regime: Literal["shortcut", "randomised"] = "randomised",
    shortcut_p: float = 0.9,
) -> CueConflict:
    """``n`` random images: shapes uniform; textures by ``regime`` (see the module docstring)."""
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    generator = check_generator(generator)
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    if not 0.0 <= shortcut_p <= 1.0:
        raise ValueError(f"shortcut_p must lie in [0, 1], got {shortcut_p}")
    device = generator.device
    shape = torch.randint(len(SHAPES), (n,), generator=generator, device=device)
    texture = torch.randint(len(TEXTURES), (n,), generator=generator, device=device)
    tied = uniform((n,), 0, 1, generator) < shortcut_p  # drawn in both regimes: same stream
    if regime == "shortcut":
        texture = torch.where(tied, shape, texture)
    hue = uniform((n,), 0, 1, generator)
    phase = uniform((n, 2), 0, 1, generator)
    position, scale, rotation = _geometry(n, generator)
    background = _background(n, generator)
    return render(shape, texture, hue, phase, position, scale, rotation, *background, size=size)


def factor_pairs(n: int, size: int, *, generator: torch.Generator) -> CuePairs:
    """``n`` pairs for the dimension estimate, half sharing shape, half sharing texture.

    Factor 0 (shape): the same object (shape, position, size, rotation) in another texture
    type, colour and phase, on a newly drawn background texture: the whole image restyled.
    Factor 1 (texture): the object's and the background's texture types and colours kept (new
    phases) on another shape class at another place: the same style on another object. Pair
    ``i`` shares factor ``i % 2``.
    """
    check_positive_int(n, "n")
    if n < 4:
        raise ValueError(f"n must be at least 4 (two pairs per factor), got {n}")
    generator = check_generator(generator)
    a = sample(n, size, generator=generator, regime="randomised")
    factor = torch.arange(n, device=generator.device) % 2
    same_shape = factor == SHAPE_FACTOR
    other_texture = _other(a.texture, len(TEXTURES), generator)
    other_shape = _other(a.shape, len(SHAPES), generator)
    new_hue = uniform((n,), 0, 1, generator)
    new_phase = uniform((n, 2), 0, 1, generator)
    position, scale, rotation = _geometry(n, generator)
    background_texture, background_hue, background_phase = _background(n, generator)
    keep = same_shape[:, None]
    b = render(
        shape=torch.where(same_shape, a.shape, other_shape),
        texture=torch.where(same_shape, other_texture, a.texture),
        hue=torch.where(same_shape, new_hue, a.hue),
        phase=new_phase,
        position=torch.where(keep, a.position, position),
        scale=torch.where(same_shape, a.scale, scale),
        rotation=torch.where(same_shape, a.rotation, rotation),
        background_texture=torch.where(same_shape, background_texture, a.background_texture),
        background_hue=torch.where(same_shape, background_hue, a.background_hue),
        background_phase=background_phase,
        size=size,
    )
    return CuePairs(a=a, b=b, factor=factor)
