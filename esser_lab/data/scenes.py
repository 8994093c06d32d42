"""A toy 3-D world seen from known cameras, with exact depth and disocclusion masks.

The data of chapter 12, geometry-free view synthesis (Rombach, Esser & Ommer, ICCV 2021, arXiv
2104.07652): pairs of views of one scene, a *source* from a camera at the origin and a *target*
from a moved and turned camera, with everything a view-synthesis model may or may not be given:
the relative camera (R, t), the intrinsics K and K⁻¹, the depth of both views, and which target
pixels the source does not see (disocclusions).

The world: a textured back wall (two colours of a six-colour ``PALETTE`` mixed by a
sinusoidal grating) on the plane Z = ``WALL_DEPTH`` and ``NUM_BOXES`` flat-coloured squares
facing the camera at depths in ``BOX_DEPTHS`` (palette colours, all distinct within a scene),
all of the same physical size (``BOX_HALF``), so that, as in real rooms, how big a thing looks
tells how far it is. Views are ray-cast analytically (no rasteriser): every pixel's ray meets
each plane at a closed-form point, the nearest hit wins (a z-buffer over surfaces).

Conventions a reader could get wrong:

* cameras are OpenCV-style: x right, y **down**, z forward; a camera with rotation ``R`` and
  centre ``C`` maps a world point X to camera coordinates ``R (X − C)``; the source camera is the
  identity, so source camera coordinates are world coordinates;
* the relative pose maps source to target camera coordinates: X_t = R X_s + t, t = −R C (the
  official ``R_rel``, ``t_rel``);
* pixel (i, j) has its centre at (j + 0.5, i + 0.5); K = [[f, 0, s/2], [0, f, s/2], [0, 0, 1]]
  with f = ``FOCAL`` · s (a 53° field of view);
* depth is the camera-space z of the visible point (not the distance along the ray);
* images are float32 (b, 3, s, s) in [−1, 1]; point sampling at pixel centres (no
  anti-aliasing), so every relation between the two views is exact at those centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.data._batching import Indexable
from esser_lab.data._raster import check_generator, check_positive_int, uniform

__all__ = [
    "BOX_DEPTHS",
    "BOX_HALF",
    "FOCAL",
    "NUM_BOXES",
    "WALL_DEPTH",
    "Cameras",
    "Scenes",
    "ViewPairs",
    "cast",
    "identity_cameras",
    "intrinsics",
    "pixel_grid",
    "project",
    "render",
    "sample_cameras",
    "sample_pairs",
    "sample_scenes",
    "view_pairs",
    "visible_from",
    "yaw_rotation",
]

WALL_DEPTH = 4.0  # the back wall's plane Z = 4
BOX_HALF = 0.5  # every box is a 1 × 1 square facing the camera
BOX_DEPTHS = (1.5, 3.0)  # box depths are uniform in this range
NUM_BOXES = 2
FOCAL = 1.0  # focal length in image widths (f = s pixels)
# six saturated colours in [−1, 1] (red, green, blue, yellow, cyan, magenta at 80 % / 20 %)
PALETTE = (
    (0.6, -0.6, -0.6), (-0.6, 0.6, -0.6), (-0.6, -0.6, 0.6),
    (0.6, 0.6, -0.6), (-0.6, 0.6, 0.6), (0.6, -0.6, 0.6),
)  # fmt: skip
WALL_WAVES = (1.5, 3.5)  # the grating's spatial frequency, radians per world unit
# the target camera's centre (x, y, z) and yaw are uniform in these ranges (world units, radians)
CENTRE_RANGE = ((-0.9, 0.9), (-0.3, 0.3), (-0.3, 0.5))
YAW_RANGE = (-0.15, 0.15)


@dataclass(frozen=True)
class Scenes(Indexable):
    """A batch of worlds.

    Attributes:
        wall_colours: (b, 2, 3) the grating's two colours in [−1, 1].
        wall_wave: (b, 2) the grating's wave vector (radians per world unit, in X and Y).
        wall_phase: (b,) its phase.
        box_centres: (b, n, 3) the boxes' centres (X, Y, Z), world units.
        box_colours: (b, n, 3) their colours in [−1, 1].
    """

    wall_colours: Tensor
    wall_wave: Tensor
    wall_phase: Tensor
    box_centres: Tensor
    box_colours: Tensor


@dataclass(frozen=True)
class Cameras(Indexable):
    """A batch of cameras: world-to-camera rotation ``R`` (b, 3, 3) and centre (b, 3)."""

    R: Tensor
    centre: Tensor

    @property
    def t(self) -> Tensor:
        """The translation (b, 3) of X ↦ R X + t, t = −R C."""
        return -(self.R @ self.centre[..., None])[..., 0]


@dataclass(frozen=True)
class ViewPairs(Indexable):
    """Source and target views of the same scenes, with the camera and the ground truth.

    Attributes:
        source, target: (b, 3, s, s) images in [−1, 1].
        source_depth, target_depth: (b, 1, s, s) camera-space depth.
        R, t: (b, 3, 3), (b, 3): the relative pose, X_target = R X_source + t.
        K, K_inv: (b, 3, 3) the intrinsics (the same for both views) and their inverse.
        visible: (b, 1, s, s) bool: target pixels whose surface point the source sees (inside
            its frame and not occluded there); ``disoccluded`` is the rest.
    """

    source: Tensor
    target: Tensor
    source_depth: Tensor
    target_depth: Tensor
    R: Tensor
    t: Tensor
    K: Tensor
    K_inv: Tensor
    visible: Tensor

    @property
    def disoccluded(self) -> Tensor:
        """(b, 1, s, s) bool: target pixels the source does not show."""
        return ~self.visible

    @property
    def camera(self) -> dict[str, Tensor]:
        """The official camera keys ``R``, ``t``, ``K``, ``K_inv`` (the ``emb_stage_key``)."""
        return {"R": self.R, "t": self.t, "K": self.K, "K_inv": self.K_inv}

    @property
    def motion(self) -> Tensor:
        """(b,) |t|, how far the camera moved (world units)."""
        return self.t.norm(dim=-1)


def intrinsics(size: int, device: torch.device | str = "cpu") -> Tensor:
    """K (3, 3) of a square ``size``-pixel image: focal ``FOCAL · size``, centre ``size / 2``."""
    check_positive_int(size, "size")
    f = FOCAL * size
    return torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]], device=device)


def yaw_rotation(angle: Tensor) -> Tensor:
    """Rotations (b, 3, 3) about the camera's y axis (down) by ``angle`` (b,) radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rows = [torch.stack(r, -1) for r in ((c, zero, -s), (zero, one, zero), (s, zero, c))]
    return torch.stack(rows, -2)


def sample_scenes(n: int, *, generator: torch.Generator) -> Scenes:
    """``n`` random worlds (the module's ranges), drawn from ``generator``."""
    check_positive_int(n, "n")
    generator = check_generator(generator)
    # distinct palette entries for the wall's two colours and the boxes
    order = torch.rand((n, len(PALETTE)), generator=generator, device=generator.device).argsort(1)
    palette = torch.tensor(PALETTE, device=generator.device)
    colours = palette[order[:, : 2 + NUM_BOXES]]  # (n, 2 + boxes, 3)
    frequency = uniform((n,), *WALL_WAVES, generator)
    direction = uniform((n,), 0.0, math.pi, generator)
    wave = torch.stack([torch.cos(direction), torch.sin(direction)], -1) * frequency[:, None]
    phase = uniform((n,), 0.0, 2 * math.pi, generator)
    depth = uniform((n, NUM_BOXES), *BOX_DEPTHS, generator)
    # centres project inside the middle 60 % of the source frame (|X / Z| ≤ 0.3, f = s)
    xy = uniform((n, NUM_BOXES, 2), -0.3, 0.3, generator) * depth[..., None]
    centres = torch.cat([xy, depth[..., None]], -1)
    return Scenes(colours[:, :2], wave, phase, centres, colours[:, 2:])


def sample_cameras(n: int, *, generator: torch.Generator) -> Cameras:
    """``n`` target cameras: centres and yaws uniform in ``CENTRE_RANGE`` and ``YAW_RANGE``."""
    check_positive_int(n, "n")
    generator = check_generator(generator)
    centre = torch.stack([uniform((n,), lo, hi, generator) for lo, hi in CENTRE_RANGE], -1)
    yaw = uniform((n,), *YAW_RANGE, generator)
    return Cameras(yaw_rotation(yaw), centre)


def identity_cameras(n: int, device: torch.device | str = "cpu") -> Cameras:
    """``n`` cameras at the origin looking down +z: the source views."""
    return Cameras(torch.eye(3, device=device).expand(n, 3, 3), torch.zeros(n, 3, device=device))


def cast(scenes: Scenes, cameras: Cameras, uv: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Ray-cast pixel positions ``uv`` (b, m, 2) (continuous, pixel units) of ``size``-pixel views.

    Returns the colour (b, m, 3), the camera-space depth (b, m) and the world point (b, m, 3) of
    the nearest surface along each ray (the wall is always hit: every camera looks at it).
    """
    if uv.dim() != 3 or uv.shape[-1] != 2 or uv.shape[0] != len(scenes):
        raise ValueError(f"uv must be (b={len(scenes)}, m, 2), got {tuple(uv.shape)}")
    K_inv = torch.linalg.inv(intrinsics(size, uv.device))
    pixels = torch.cat([uv, torch.ones_like(uv[..., :1])], -1)  # (b, m, 3)
    rays_cam = pixels @ K_inv.T  # (b, m, 3), z = 1: a step of s along the ray is depth s
    rays = rays_cam @ cameras.R  # R^T d for each row: world directions (b, m, 3)
    origin = cameras.centre[:, None, :]  # (b, 1, 3)
    # the wall Z = WALL_DEPTH
    depth = (WALL_DEPTH - origin[..., 2]) / rays[..., 2]  # (b, m)
    point = origin + depth[..., None] * rays
    grating = (point[..., :2] * scenes.wall_wave[:, None, :]).sum(-1) + scenes.wall_phase[:, None]
    mix = 0.5 * (1.0 + torch.sin(grating))[..., None]  # (b, m, 1)
    c0, c1 = scenes.wall_colours[:, None, 0], scenes.wall_colours[:, None, 1]
    colour = c0 + mix * (c1 - c0)
    for k in range(scenes.box_centres.shape[1]):  # z-buffer over the boxes
        centre = scenes.box_centres[:, None, k]  # (b, 1, 3)
        s = (centre[..., 2] - origin[..., 2]) / rays[..., 2]  # (b, m)
        hit = origin + s[..., None] * rays
        inside = ((hit[..., :2] - centre[..., :2]).abs() <= BOX_HALF).all(-1)
        nearer = inside & (s > 0) & (s < depth)
        depth = torch.where(nearer, s, depth)
        point = torch.where(nearer[..., None], hit, point)
        colour = torch.where(nearer[..., None], scenes.box_colours[:, None, k], colour)
    return colour, depth, point


def pixel_grid(size: int, device: torch.device | str = "cpu") -> Tensor:
    """Pixel centres (size², 2) as (x, y), row-major."""
    centres = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], -1)


def render(scenes: Scenes, cameras: Cameras, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Views (b, 3, s, s), depth (b, 1, s, s) and world points (b, s·s, 3) at pixel centres."""
    check_positive_int(size, "size")
    b = len(scenes)
    uv = pixel_grid(size, scenes.box_centres.device).expand(b, -1, -1)
    colour, depth, point = cast(scenes, cameras, uv, size)
    image = colour.transpose(1, 2).reshape(b, 3, size, size)
    return image, depth.reshape(b, 1, size, size), point


def project(points: Tensor, cameras: Cameras, size: int) -> tuple[Tensor, Tensor]:
    """Pixel positions (b, m, 2) and depths (b, m) of world ``points`` (b, m, 3) in ``cameras``."""
    camera_points = (points - cameras.centre[:, None, :]) @ cameras.R.transpose(1, 2)
    z = camera_points[..., 2]
    pixels = camera_points @ intrinsics(size, points.device).T
    return pixels[..., :2] / z[..., None], z


def visible_from(
    scenes: Scenes, cameras: Cameras, points: Tensor, size: int, tolerance: float = 1e-4
) -> Tensor:
    """(b, m) bool: whether ``cameras`` see world ``points`` (b, m, 3) inside their frame.

    A point is seen when it projects inside the image and the ray through its projection meets
    no nearer surface (its depth equals the cast depth within a relative ``tolerance``).
    """
    uv, z = project(points, cameras, size)
    inside = (z > 0) & (uv >= 0).all(-1) & (uv < size).all(-1)
    _, cast_depth, _ = cast(scenes, cameras, uv, size)
    return inside & ((cast_depth - z).abs() <= tolerance * z.abs())


def sample_pairs(n: int, size: int = 16, *, generator: torch.Generator) -> ViewPairs:
    """``n`` (source, target) pairs of ``size``-pixel views of random scenes, with ground truth.

    Deterministic for a seeded ``generator``: the scenes are drawn first, then the cameras.
    """
    check_positive_int(size, "size")
    scenes = sample_scenes(n, generator=generator)
    return view_pairs(scenes, sample_cameras(n, generator=generator), size)


def view_pairs(scenes: Scenes, target_cameras: Cameras, size: int = 16) -> ViewPairs:
    """The source view (the identity camera) and the ``target_cameras``' views of ``scenes``."""
    check_positive_int(size, "size")
    n = len(scenes)
    if len(target_cameras) != n:
        raise ValueError(f"one target camera per scene: {n} scenes, {len(target_cameras)} cameras")
    source_cameras = identity_cameras(n, scenes.box_centres.device)
    source, source_depth, _ = render(scenes, source_cameras, size)
    target, target_depth, target_points = render(scenes, target_cameras, size)
    visible = visible_from(scenes, source_cameras, target_points, size)
    K = intrinsics(size, source.device).expand(n, 3, 3)
    # relative pose source → target: the source camera is the identity
    return ViewPairs(
        source=source,
        target=target,
        source_depth=source_depth,
        target_depth=target_depth,
        R=target_cameras.R.contiguous(),
        t=target_cameras.t,
        K=K.contiguous(),
        K_inv=torch.linalg.inv(K),
        visible=visible.reshape(n, 1, size, size),
    )
