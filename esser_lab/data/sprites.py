"""Coloured, textured shapes with every generative factor known, and captions.

The data of the INN, text-to-image and later chapters: one or two objects on a plain background,
each with a shape, colour, texture, position, scale and rotation; ``render`` re-renders from
explicit factors, so changing one factor gives the exact ground truth of an edit.

Conventions a reader could get wrong:

* images are float32 ``(b, 3, h, w)`` in ``[-1, 1]``; colours are given in the same range;
* ``position`` is the (x, y) centre in ``[0, 1]``, x to the right, **y down**; it is the area
  centroid of the shape, so the centroid of the mask is close to it;
* ``scale`` is the radius of the shape's circumscribed circle as a fraction of the image side;
* textures live in the object frame (they rotate and scale with the object) and alternate the
  named colour with its half (``0.5 * colour``, halfway to mid-grey); they read well from 32x32;
* masks are hard (pixel centre inside the shape), later objects are drawn on top and ``mask`` holds
  the visible pixels, so with ``texture == plain`` the image is exactly the colour on the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

from esser_lab.data import _sdf
from esser_lab.data._batching import Indexable
from esser_lab.data._raster import check_generator, check_positive_int, pixel_centres, uniform

__all__ = ["BACKGROUND", "COLOURS", "SHAPES", "TEXTURES", "Sprites", "caption", "render", "sample"]

SHAPES = ("circle", "square", "triangle", "cross", "heart", "star")
COLOURS = MappingProxyType(
    {
        "red": (1.0, -1.0, -1.0),
        "green": (-1.0, 1.0, -1.0),
        "blue": (-1.0, -1.0, 1.0),
        "yellow": (1.0, 1.0, -1.0),
        "magenta": (1.0, -1.0, 1.0),
        "cyan": (-1.0, 1.0, 1.0),
        "white": (1.0, 1.0, 1.0),
        "orange": (1.0, 0.0, -1.0),
    }
)
TEXTURES = ("plain", "stripes", "checker", "dots")
BACKGROUND = (-1.0, -1.0, -1.0)  # black
_ADJECTIVES = {"plain": "", "stripes": "striped", "checker": "checkered", "dots": "dotted"}
_SCALE_RANGE = {1: (0.2, 0.4), 2: (0.13, 0.23)}
_CANDIDATES = 128  # pairs of positions tried for two objects
_CHUNK_PIXELS = 2**17


@dataclass(frozen=True)
class Sprites(Indexable):
    """A batch of sprite images with their factors (``k`` objects per image).

    Attributes:
        image: ``(b, 3, size, size)`` float32 in ``[-1, 1]``.
        mask: ``(b, k, size, size)`` bool, visible pixels of each object.
        shape, colour, texture: ``(b, k)`` long indices into ``SHAPES``, ``COLOURS``, ``TEXTURES``.
        position: ``(b, k, 2)`` centre (x, y) in ``[0, 1]``; scale: ``(b, k)`` circumradius as a
            fraction of the image; rotation: ``(b, k)`` radians (counter-clockwise on screen).
        background: ``(b, 3)`` in ``[-1, 1]``.
        caption: one string per image, e.g. "a red striped circle left of a blue square".
    """

    image: Tensor
    mask: Tensor
    shape: Tensor
    colour: Tensor
    texture: Tensor
    position: Tensor
    scale: Tensor
    rotation: Tensor
    background: Tensor
    caption: tuple[str, ...]


def _phrase(shape: int, colour: int, texture: int) -> str:
    colour_name = list(COLOURS)[colour]
    words = [colour_name, _ADJECTIVES[TEXTURES[texture]], SHAPES[shape]]
    article = "an" if colour_name[0] in "aeiou" else "a"
    return " ".join([article, *[word for word in words if word]])


def _relation(first: list[float], second: list[float]) -> str:
    """Where ``first`` is relative to ``second`` along the axis of the larger offset (y down)."""
    dx, dy = first[0] - second[0], first[1] - second[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def caption(shape: Tensor, colour: Tensor, texture: Tensor, position: Tensor) -> tuple[str, ...]:
    """Captions of ``(b, k)`` factors: "a red striped circle", or with two objects the relation of
    the first to the second, "a red circle left of a blue square"; more objects are joined by
    "and"."""
    captions = []
    for s, c, t, p in zip(
        shape.tolist(), colour.tolist(), texture.tolist(), position.tolist(), strict=True
    ):
        phrases = [_phrase(*factors) for factors in zip(s, c, t, strict=True)]
        if len(phrases) == 2:
            captions.append(f"{phrases[0]} {_relation(p[0], p[1])} {phrases[1]}")
        else:
            captions.append(" and ".join(phrases))
    return tuple(captions)


def _check_factors(
    shape: Tensor,
    colour: Tensor,
    texture: Tensor,
    position: Tensor,
    scale: Tensor,
    rotation: Tensor,
) -> None:
    for name, value in (("shape", shape), ("colour", colour), ("texture", texture)):
        if not isinstance(value, Tensor) or value.dim() != 2 or value.is_floating_point():
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else value
            raise ValueError(f"{name} must be an integer tensor of shape (b, k), got {got}")
        if value.shape != shape.shape or value.numel() == 0:
            raise ValueError(
                f"{name} must have the non-empty shape (b, k) of shape {tuple(shape.shape)}, "
                f"got {tuple(value.shape)}"
            )
    for name, value, table in (
        ("shape", shape, SHAPES),
        ("colour", colour, COLOURS),
        ("texture", texture, TEXTURES),
    ):
        if value.numel() and (value.min() < 0 or value.max() >= len(table)):
            raise ValueError(
                f"{name} indices must lie in [0, {len(table)}), got values in "
                f"[{value.min().item()}, {value.max().item()}]"
            )
    expected = {"position": (*shape.shape, 2), "scale": shape.shape, "rotation": shape.shape}
    for name, value in (("position", position), ("scale", scale), ("rotation", rotation)):
        if not isinstance(value, Tensor) or tuple(value.shape) != tuple(expected[name]):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must have shape {tuple(expected[name])}, got {got}")
    if scale.numel() and scale.min() <= 0:
        raise ValueError(f"scale must be positive, got minimum {scale.min().item()}")


def render(
    shape: Tensor,
    colour: Tensor,
    texture: Tensor,
    position: Tensor,
    scale: Tensor,
    rotation: Tensor,
    size: int,
    background: Tensor | None = None,
) -> Sprites:
    """Render sprites from explicit factors (each ``(b, k)``, position ``(b, k, 2)``).

    ``background`` is ``(b, 3)`` or ``(3,)`` in ``[-1, 1]``; None means ``BACKGROUND``.
    """
    check_positive_int(size, "size")
    _check_factors(shape, colour, texture, position, scale, rotation)
    b, k = shape.shape
    device = position.device
    if background is None:
        background = torch.tensor(BACKGROUND, device=device)
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    if background.shape == (3,):
        background = background.expand(b, 3)
    if tuple(background.shape) != (b, 3):
        raise ValueError(
            f"background must have shape ({b}, 3) or (3,), got {tuple(background.shape)}"
        )
    if background.min() < -1 or background.max() > 1:
        raise ValueError(
            "background must lie in [-1, 1], got values in "
            f"[{background.min().item():.3f}, {background.max().item():.3f}]"
        )
    palette = torch.tensor(list(COLOURS.values()), device=device)  # (num_colours, 3)
    rgb = palette[colour]  # (b, k, 3)
    position, scale, rotation = position.float(), scale.float(), rotation.float()
    coords = pixel_centres(size, device) / size
    image = torch.empty(b, 3, size, size, device=device)
    mask = torch.empty(b, k, size, size, device=device, dtype=torch.bool)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, b, chunk):
        rows = slice(start, start + chunk)
        painted = background[rows, :, None, None]  # (chunk, 3, 1, 1), broadcast by torch.where
        inside = []
        for obj in range(k):
            # object frame: rotate by -rotation (counter-clockwise on screen, y down), unit radius
            cos = (rotation[rows, obj].cos() / scale[rows, obj])[:, None, None]
            sin = (rotation[rows, obj].sin() / scale[rows, obj])[:, None, None]
            dx = coords[None, None, :] - position[rows, obj, 0, None, None]  # (chunk, 1, w)
            dy = coords[None, :, None] - position[rows, obj, 1, None, None]  # (chunk, h, 1)
            u = cos * dx - sin * dy  # (chunk, h, w)
            v = sin * dx + cos * dy
            distance = torch.empty_like(u)
            full = torch.empty_like(u, dtype=torch.bool)
            for index, function in enumerate(_sdf.SHAPE_FUNCTIONS):
                selected = (shape[rows, obj] == index).nonzero().squeeze(1)
                if selected.numel():
                    distance[selected] = function(u[selected], v[selected])
            for index in range(len(TEXTURES)):
                selected = (texture[rows, obj] == index).nonzero().squeeze(1)
                if selected.numel():
                    full[selected] = _sdf.texture_pattern(index, u[selected], v[selected])
            inside.append(distance <= 0)
            colour_full = rgb[rows, obj, :, None, None]  # (chunk, 3, 1, 1)
            shaded = torch.where(full[:, None], colour_full, 0.5 * colour_full)
            painted = torch.where(inside[-1][:, None], shaded, painted)
        covered = torch.zeros_like(inside[0])
        for obj in reversed(range(k)):  # later objects are on top
            mask[rows, obj] = inside[obj] & ~covered
            covered = covered | inside[obj]
        image[rows] = painted.expand(-1, 3, size, size)
    return Sprites(
        image=image,
        mask=mask,
        shape=shape.long(),
        colour=colour.long(),
        texture=texture.long(),
        position=position,
        scale=scale,
        rotation=rotation,
        background=background,
        caption=caption(shape, colour, texture, position),
    )


def _place(scale: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Positions ``(n, k, 2)`` keeping each object inside the image and, for two objects, their
    circumscribed circles disjoint (so the objects never overlap): the first of ``_CANDIDATES``
    random pairs of positions whose circles are disjoint is taken; if none is (about 1 in 10^10
    draws), the farthest pair is taken and both objects shrink until their circles touch.
    Returns the positions and the (possibly shrunk) scales."""
    n, k = scale.shape
    low, high = scale[:, None, :, None], 1 - scale[:, None, :, None]  # (n, 1, k, 1)
    candidates = low + (high - low) * uniform((n, _CANDIDATES, k, 2), 0, 1, generator)
    if k == 1:
        return candidates[:, 0], scale
    distance = (candidates[:, :, 0] - candidates[:, :, 1]).norm(dim=-1)  # (n, candidates)
    clear = distance >= scale.sum(-1, keepdim=True)
    choice = torch.where(clear.any(-1), clear.float().argmax(-1), distance.argmax(-1))  # (n,)
    position = candidates[torch.arange(n, device=scale.device), choice]  # (n, k, 2)
    separation = distance.gather(1, choice[:, None])  # (n, 1)
    shrink = (separation / scale.sum(-1, keepdim=True)).clamp_max(1.0)
    return position, scale * shrink


def sample(n: int, size: int, *, generator: torch.Generator, num_objects: int = 1) -> Sprites:
    """``n`` random sprite images with ``num_objects`` (1 or 2) objects each.

    Shapes, colours and textures are uniform over their tables; scales are uniform in
    ``[0.2, 0.4)`` for one object and ``[0.13, 0.23)`` for two (see :func:`_place` for how two
    objects are kept apart); rotations are uniform in ``[0, 2 pi)``; the background is
    ``BACKGROUND``.
    """
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    generator = check_generator(generator)
    if num_objects not in _SCALE_RANGE:
        raise ValueError(f"num_objects must be 1 or 2, got {num_objects!r}")
    device = generator.device
    shape_index = torch.randint(len(SHAPES), (n, num_objects), generator=generator, device=device)
    colour_index = torch.randint(len(COLOURS), (n, num_objects), generator=generator, device=device)
    texture_index = torch.randint(
        len(TEXTURES), (n, num_objects), generator=generator, device=device
    )
    scale = uniform((n, num_objects), *_SCALE_RANGE[num_objects], generator)
    rotation = uniform((n, num_objects), 0.0, 2 * math.pi, generator)
    position, scale = _place(scale, generator)
    return render(shape_index, colour_index, texture_index, position, scale, rotation, size)
