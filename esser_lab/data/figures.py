"""Articulated stick figures with exact shape and appearance ground truth.

The data of the shape/appearance chapters: VUNet (Esser, Sutter, Ommer, CVPR 2018, arXiv
1804.04694), RoDi (Esser, Haux, Ommer, ICCV 2019), part-based disentangling (Lorenz, Bereska,
Milbich, Ommer, CVPR 2019, arXiv 1903.06946) and part discovery (Braun, Esser, Ommer, GCPR 2020).
A pose is a set of 2-D keypoints, an appearance one colour (and optional stripe texture) per body
part; as both are known, the ground truth of any swap, ``render(keypoints_of_y, appearance_of_x,
size)``, is exact.

Conventions a reader could get wrong:

* keypoints are (x, y) in normalised image coordinates ``[0, 1]``, x to the right, **y down**;
* "left"/"right" are the figure's own sides; the figure faces the viewer, so its left side is on
  the image's right;
* images are float32 ``(b, 3, h, w)`` in ``[-1, 1]`` and colours are given in the same range;
* limb thickness is proportional to the torso length (neck to mid-hip) and never thinner than
  ``MIN_HALF_WIDTH_PX`` pixels, so no limb vanishes at 16x16;
* ``image`` and ``part_masks`` are rendered hard (pixel centre inside or not, no anti-aliasing) so
  the mean colour of the image on a part's mask is exactly the part colour; only the ``stickman``
  shape code is anti-aliased.

Occlusion: parts are painted in the order legs, torso, arms, head (head on top); ``part_masks``
holds the visible pixels of each part and is mutually exclusive. Visibility at 16x16 (measured on
16,384 samples, checked by the tests on 2,048): >= 99 % of samples show every part with >= 3
pixels (99.5 %); head >= 3 and arms and legs >= 6 pixels in every sample; only the torso, which
arms and head can cover, vanishes completely, in about 1 sample in 10^4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.data._batching import Indexable
from esser_lab.data._pose import (
    HALF_WIDTH,
    HEAD_RADIUS,
    KEYPOINT_NAMES,
    LIMBS,
    PART_NAMES,
    TORSO_POLYGON,
    sample_pose,
)
from esser_lab.data._raster import (
    check_generator,
    check_positive_int,
    pixel_centres,
    point_distance2,
    polygon_signed_distance,
    segment_distance2,
    uniform,
)
from esser_lab.data._raster import hsv_to_rgb as _hsv_to_rgb

__all__ = [
    "KEYPOINT_NAMES",
    "LIMBS",
    "PART_NAMES",
    "Appearance",
    "Figures",
    "render",
    "sample",
    "sample_appearance",
    "sample_pose",
    "same_appearance_pairs",
    "same_pose_pairs",
]

NUM_PARTS = len(PART_NAMES)
DRAW_ORDER = (3, 1, 2, 0)  # legs, torso, arms, head: later parts occlude earlier ones
MIN_HALF_WIDTH_PX = 0.75  # > half a pixel diagonal (0.707): every limb point has a pixel within it
_CHUNK_PIXELS = 2**17  # pixels rendered at once
STICKMAN_HALF_WIDTH = 0.5  # fraction of the body's half-width, at least half a pixel
# fixed stripe pattern per part: period (normalised image units) and orientation (radians)
STRIPE_PERIOD = (0.12, 0.16, 0.1, 0.14)
STRIPE_ANGLE = (0.0, 0.785, 1.571, 2.356)


@dataclass(frozen=True)
class Appearance(Indexable):
    """One colour (and stripe amplitude) per part of ``PART_NAMES``, plus a background colour.

    Attributes:
        colours: ``(n, 4, 3)`` part colours in ``[-1, 1]``.
        background: ``(n, 3)`` background colour in ``[-1, 1]``.
        texture: ``(n, 4)`` stripe amplitude per part in ``[0, 1)``; 0 means a plain colour.
    """

    colours: Tensor
    background: Tensor
    texture: Tensor

    def __post_init__(self) -> None:
        for name in ("colours", "background", "texture"):
            if not isinstance(getattr(self, name), Tensor):
                got = type(getattr(self, name)).__name__
                raise ValueError(f"Appearance.{name} must be a tensor, got {got}")
        n = self.colours.shape[0] if self.colours.dim() > 0 else 0
        expected = {"colours": (n, NUM_PARTS, 3), "background": (n, 3), "texture": (n, NUM_PARTS)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                got = tuple(getattr(self, name).shape)
                raise ValueError(f"Appearance.{name} must have shape {shape}, got {got}")
        for name in ("colours", "background"):
            value = getattr(self, name)
            if value.numel() and (value.min() < -1 or value.max() > 1):
                raise ValueError(
                    f"Appearance.{name} must lie in [-1, 1], got values in "
                    f"[{value.min().item():.3f}, {value.max().item():.3f}]"
                )
        if self.texture.numel() and (self.texture.min() < 0 or self.texture.max() >= 1):
            raise ValueError(
                "Appearance.texture must lie in [0, 1), got values in "
                f"[{self.texture.min().item():.3f}, {self.texture.max().item():.3f}]"
            )


@dataclass(frozen=True)
class Figures(Indexable):
    """A batch of rendered figures with every ground-truth factor.

    Attributes:
        image: ``(b, 3, size, size)`` float32 in ``[-1, 1]``.
        stickman: ``(b, 4, size, size)`` float32 in ``[0, 1]``: the shape code ŷ, one anti-aliased
            channel per part, a function of the keypoints only (VUNet's shape input).
        part_masks: ``(b, 4, size, size)`` bool: visible pixels of each part, mutually exclusive.
        keypoints: ``(b, K, 2)`` float32, (x, y) in ``[0, 1]``, y down.
        colours: ``(b, 4, 3)``; background: ``(b, 3)``; texture: ``(b, 4)`` (the appearance).
    """

    image: Tensor
    stickman: Tensor
    part_masks: Tensor
    keypoints: Tensor
    colours: Tensor
    background: Tensor
    texture: Tensor

    @property
    def appearance(self) -> Appearance:
        """The appearance these figures were rendered with."""
        return Appearance(self.colours, self.background, self.texture)


def sample_appearance(n: int, *, generator: torch.Generator, textured: bool = False) -> Appearance:
    """Random part colours on a dark background.

    Part hues are spread around the colour wheel (a random offset, quarter turns apart, jittered by
    at most 0.05 turns, randomly assigned to parts), saturation and value in ``[0.65, 1]``; the
    background is a dark, weakly tinted grey (value at most 0.25). So parts differ from each other
    (hues at least 0.15 turns apart) and from the background (some channel differs by at least 0.8).
    """
    check_positive_int(n, "n")
    generator = check_generator(generator)
    offset = uniform((n, 1), 0.0, 1.0, generator)
    jitter = uniform((n, NUM_PARTS), -0.05, 0.05, generator)
    order = torch.rand((n, NUM_PARTS), generator=generator, device=generator.device).argsort(-1)
    hue = offset + order.float() / NUM_PARTS + jitter  # (n, 4)
    saturation = uniform((n, NUM_PARTS), 0.65, 1.0, generator)
    value = uniform((n, NUM_PARTS), 0.65, 1.0, generator)
    colours = _hsv_to_rgb(hue % 1.0, saturation, value) * 2 - 1  # (n, 4, 3)
    background = _hsv_to_rgb(
        uniform((n,), 0.0, 1.0, generator),  # hue
        uniform((n,), 0.0, 0.4, generator),  # saturation
        uniform((n,), 0.0, 0.25, generator),  # value: dark
    )  # (n, 3) in [0, 1]
    background = background * 2 - 1
    amplitude = uniform((n, NUM_PARTS), 0.2, 0.8, generator)
    texture = amplitude if textured else torch.zeros_like(amplitude)
    return Appearance(colours.clamp(-1, 1), background.clamp(-1, 1), texture)


def _body_geometry(keypoints: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Per-part occupancy (hard) and stickman (soft) for ``(b, K, 2)`` keypoints at ``size``.

    Returns the occupancy ``(b, 4, size, size)`` bool (before occlusion) and the stickman
    ``(b, 4, size, size)`` float.
    """
    kp = keypoints.float() * size  # (b, K, 2) in pixel units
    coords = pixel_centres(size, kp.device)
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    hips = (kp[:, index["left_hip"]] + kp[:, index["right_hip"]]) / 2
    torso = (kp[:, index["neck"]] - hips).norm(dim=-1)  # (b,)

    def half_width(fraction: float) -> Tensor:  # (b, 1, 1) in pixels
        return (fraction * torso).clamp_min(MIN_HALF_WIDTH_PX)[:, None, None]

    def stick(distance: Tensor, width: Tensor) -> Tensor:  # 1-px linear anti-aliasing ramp
        stick_width = (STICKMAN_HALF_WIDTH * width).clamp_min(0.5)
        return (stick_width + 0.5 - distance).clamp(0, 1)

    occupancy, stickman = [], []
    # head: a disc on the head keypoint plus the neck segment
    head_radius = half_width(HEAD_RADIUS).clamp_min(1.0)
    neck_width = half_width(HALF_WIDTH["neck"])
    d2_head = point_distance2(kp[:, index["head"]], coords)
    d2_neck = segment_distance2(kp[:, index["neck"]], kp[:, index["head"]], coords)
    occupancy.append((d2_head <= head_radius**2) | (d2_neck <= neck_width**2))
    stickman.append(
        torch.maximum(stick(d2_head.sqrt(), head_radius), stick(d2_neck.sqrt(), neck_width))
    )
    # torso: the shoulder-hip quadrilateral with slightly rounded edges
    polygon = kp[:, [index[name] for name in TORSO_POLYGON]]  # (b, 4, 2)
    signed = polygon_signed_distance(polygon, coords)
    occupancy.append(signed <= half_width(HALF_WIDTH["torso"]))
    stickman.append((0.5 - signed).clamp(0, 1))
    # arms and legs: thick segments; one distance per part (the minimum over its limbs)
    for part in (2, 3):
        d2 = None
        for joint_a, joint_b, limb_part in LIMBS:
            if limb_part != part:
                continue
            d2_limb = segment_distance2(kp[:, index[joint_a]], kp[:, index[joint_b]], coords)
            d2 = d2_limb if d2 is None else torch.minimum(d2, d2_limb)
        assert d2 is not None
        width = half_width(HALF_WIDTH[PART_NAMES[part]])
        occupancy.append(d2 <= width**2)
        stickman.append(stick(d2.sqrt(), width))
    return torch.stack(occupancy, 1), torch.stack(stickman, 1)


def _stripes(size: int, device: torch.device) -> Tensor:
    """The fixed stripe pattern of each part, ``(4, size, size)`` in ``[0, 1]``."""
    coords = pixel_centres(size, device) / size
    angle = torch.tensor(STRIPE_ANGLE, device=device)
    period = torch.tensor(STRIPE_PERIOD, device=device)
    phase = (
        coords[None, None, :] * angle.cos()[:, None, None]
        + coords[None, :, None] * angle.sin()[:, None, None]
    )  # (4, h, w)
    return 0.5 + 0.5 * torch.sin(2 * torch.pi * phase / period[:, None, None])


def render(keypoints: Tensor, appearance: Appearance, size: int) -> Figures:
    """Render figures of the given poses and appearances at ``size x size`` pixels.

    Args:
        keypoints: ``(b, K, 2)`` keypoints as returned by :func:`sample_pose`.
        appearance: an :class:`Appearance` of the same batch size.
        size: image side in pixels.

    Textured parts blend their colour towards black by ``texture * stripe`` where ``stripe`` in
    ``[0, 1]`` is the part's fixed sinusoidal stripe pattern; with ``texture == 0`` the image is
    exactly the part colour on the part's mask and the background elsewhere.
    """
    check_positive_int(size, "size")
    expected = (len(KEYPOINT_NAMES), 2)
    if not isinstance(keypoints, Tensor) or keypoints.dim() != 3 or keypoints.shape[1:] != expected:
        got = tuple(keypoints.shape) if isinstance(keypoints, Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints must have shape (b, {expected[0]}, 2), got {got}")
    if not torch.isfinite(keypoints).all():
        raise ValueError("keypoints must be finite, got NaN or inf")
    if not isinstance(appearance, Appearance):
        raise ValueError(f"appearance must be an Appearance, got {type(appearance).__name__}")
    if appearance.colours.shape[0] != keypoints.shape[0]:
        raise ValueError(
            f"keypoints and appearance must have the same batch size, got "
            f"{keypoints.shape[0]} and {appearance.colours.shape[0]}"
        )
    device = keypoints.device
    keypoints = keypoints.float()
    colours = appearance.colours.to(device=device, dtype=torch.float32)
    background = appearance.background.to(device=device, dtype=torch.float32)
    texture = appearance.texture.to(device=device, dtype=torch.float32)
    b = keypoints.shape[0]
    image = torch.empty(b, 3, size, size, device=device)
    stickman = torch.empty(b, NUM_PARTS, size, size, device=device)
    visible = torch.empty(b, NUM_PARTS, size, size, device=device, dtype=torch.bool)
    stripes = _stripes(size, device) if bool((texture > 0).any()) else None
    chunk = max(1, _CHUNK_PIXELS // (size * size))  # small chunks stay in cache: ~2x faster
    for start in range(0, b, chunk):
        rows = slice(start, start + chunk)
        occupancy, stickman[rows] = _body_geometry(keypoints[rows], size)
        covered = torch.zeros_like(occupancy[:, 0])
        for part in reversed(DRAW_ORDER):  # top-most first: visible where nothing above it is
            visible[rows, part] = occupancy[:, part] & ~covered
            covered = covered | occupancy[:, part]
        painted = background[rows, :, None, None]  # (chunk, 3, 1, 1), broadcast by torch.where
        for part in DRAW_ORDER:
            colour = colours[rows, part, :, None, None]  # (chunk, 3, 1, 1)
            if stripes is not None:  # blend towards black (-1) by texture * stripe
                blend = texture[rows, part, None, None, None] * stripes[part]  # (chunk, 1, h, w)
                colour = colour + blend * (-1.0 - colour)
            painted = torch.where(visible[rows, part, None], colour, painted)
        image[rows] = painted
    return Figures(
        image=image,
        stickman=stickman,
        part_masks=visible,
        keypoints=keypoints,
        colours=colours,
        background=background,
        texture=texture,
    )


def sample(n: int, size: int, *, generator: torch.Generator, textured: bool = False) -> Figures:
    """``n`` random figures: ``render(sample_pose(n), sample_appearance(n), size)``."""
    check_positive_int(size, "size")
    keypoints = sample_pose(n, generator=generator)
    appearance = sample_appearance(n, generator=generator, textured=textured)
    return render(keypoints, appearance, size)


def same_appearance_pairs(
    n: int, size: int, *, generator: torch.Generator, textured: bool = False
) -> tuple[Figures, Figures]:
    """Pairs with identical appearance and independent poses (RoDi, part-based chapters)."""
    check_positive_int(size, "size")
    appearance = sample_appearance(n, generator=generator, textured=textured)
    first = render(sample_pose(n, generator=generator), appearance, size)
    second = render(sample_pose(n, generator=generator), appearance, size)
    return first, second


def same_pose_pairs(
    n: int, size: int, *, generator: torch.Generator, textured: bool = False
) -> tuple[Figures, Figures]:
    """Pairs with identical pose and independent appearances."""
    check_positive_int(size, "size")
    keypoints = sample_pose(n, generator=generator)
    first = render(keypoints, sample_appearance(n, generator=generator, textured=textured), size)
    second = render(keypoints, sample_appearance(n, generator=generator, textured=textured), size)
    return first, second
