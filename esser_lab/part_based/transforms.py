"""The two transformations that define what is shape and what is appearance.

* The **spatial transform** s (``transformations.py`` of ``CompVis/unsupervised-disentangling``):
  a thin-plate spline through 8 jittered control points, composed with a random zoom, rotation
  and offsets. It is stored as the map from a *view* pixel to the *source* point it shows, which
  is exactly what ``grid_sample`` needs; its inverse (source → view, for keypoints) is solved
  numerically to float precision.
* The **appearance transform** a (``ops.augm``): random contrast, brightness, saturation and hue.

Coordinates are (x, y) in [-1, 1] (``align_corners=False``); images are in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from esser_lab.nn import placement

# ``tps_parameters``: the 8 control points before jitter
CONTROL_POINTS = ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5))
CONTROL_POINTS += ((0.2, -0.2), (-0.2, 0.2), (0.2, 0.2), (-0.2, -0.2))


def _radial(r2: torch.Tensor) -> torch.Tensor:
    """The thin-plate kernel U(r) = r² log r² (0 at r = 0)."""
    return r2 * torch.log(r2.clamp_min(1e-12))


@dataclass
class SpatialTransform:
    """A batch of thin-plate splines ``f(p) = a + p·A + Σ_i w_i U(‖p − c_i‖)``: view → source."""

    control: torch.Tensor  # (b, n, 2) control points c_i
    weights: torch.Tensor  # (b, n, 2) spline weights w_i
    affine: torch.Tensor  # (b, 3, 2): rows a, A

    def to_source(self, points: torch.Tensor) -> torch.Tensor:
        """Map view points ``(b, ..., 2)`` to the source points they show."""
        flat = points.reshape(points.shape[0], -1, 2)  # (b, l, 2)
        r2 = (flat[:, :, None] - self.control[:, None]).pow(2).sum(-1)  # (b, l, n)
        out = self.affine[:, :1] + flat @ self.affine[:, 1:] + _radial(r2) @ self.weights
        return out.reshape(points.shape)

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """∂f/∂p at view points ``(b, l, 2)``: ``(b, l, 2, 2)`` with [i, j] = ∂f_j / ∂p_i."""
        diff = points[:, :, None] - self.control[:, None]  # (b, l, n, 2)
        r2 = diff.pow(2).sum(-1)
        grad_u = 2 * diff * (torch.log(r2.clamp_min(1e-12)) + 1)[..., None]  # (b, l, n, 2)
        return self.affine[:, None, 1:] + torch.einsum("blni,bnj->blij", grad_u, self.weights)

    def to_view(self, points: torch.Tensor, iterations: int = 60) -> torch.Tensor:
        """The exact inverse: where source points ``(b, l, 2)`` (e.g. keypoints) land in the view.

        Newton's method on ``f(p) = x``, started from the inverse of the affine part.
        """
        linear = self.affine[:, 1:]  # (b, 2, 2)
        p = (points - self.affine[:, :1]) @ torch.linalg.inv(linear)
        for _ in range(iterations):
            residual = self.to_source(p) - points  # (b, l, 2)
            step = torch.linalg.solve(self.jacobian(p).transpose(-1, -2), residual[..., None])
            p = p - step[..., 0]
        return p

    def warp(self, image: torch.Tensor) -> torch.Tensor:
        """The view: ``image`` resampled at ``f(p)``; outside the source is black (-1)."""
        from esser_lab.part_based.model import coordinate_grid

        b, _, h, w = image.shape
        grid = coordinate_grid(h, image.device).expand(b, h, w, 2)
        source = self.to_source(grid.to(image.dtype))
        sampled = F.grid_sample(image + 1, source, mode="bilinear", align_corners=False)
        return sampled - 1

    def __getitem__(self, index: torch.Tensor | slice) -> SpatialTransform:
        return SpatialTransform(self.control[index], self.weights[index], self.affine[index])

    def to(self, device: torch.device | str) -> SpatialTransform:
        """The same splines on ``device`` (drawn on the generator's device, used on the data's)."""
        return SpatialTransform(
            self.control.to(device), self.weights.to(device), self.affine.to(device)
        )


def thin_plate_spline(control: torch.Tensor, target: torch.Tensor) -> SpatialTransform:
    """Fit the spline with ``f(control_i) = target_i`` (``ThinPlateSpline._solve_system``)."""
    b, n, _ = control.shape
    r2 = (control[:, :, None] - control[:, None]).pow(2).sum(-1)  # (b, n, n)
    ones = control.new_ones(b, n, 1)
    P = torch.cat([ones, control], -1)  # (b, n, 3)
    top = torch.cat([_radial(r2), P], -1)  # (b, n, n + 3)
    bottom = torch.cat([P.transpose(1, 2), control.new_zeros(b, 3, 3)], -1)
    system = torch.cat([top, bottom], 1)  # (b, n + 3, n + 3)
    rhs = torch.cat([target, control.new_zeros(b, 3, 2)], 1)
    # ``solve`` checks for a singular system by reading a flag back to the host (a sync per step
    # on a GPU); the same solver without that check there (on the CPU the check is free)
    solution = torch.linalg.solve_ex(system, rhs, check_errors=system.device.type == "cpu").result
    return SpatialTransform(control, solution[:, :n], solution[:, n:])


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator):
    return low + (high - low) * torch.rand(shape, generator=generator, device=generator.device)


def sample_spatial_transform(
    n: int,
    *,
    tps_scale: float,
    rotation_scale: float,
    offset_scale: float,
    zoom: float,
    zoom_variation: float,
    generator: torch.Generator,
) -> SpatialTransform:
    """``tps_parameters`` + ``make_input_tps_param``: random spline, zoom, rotation, offsets.

    Target of control point c: ``R (s ⊙ (c + v − o) + o − o₂) + o₂`` with v ~ U(±tps_scale),
    s ~ zoom·U(1 ± zoom_variation) per axis, R a rotation by U(±rotation_scale), o, o₂ ~
    U(±offset_scale); the control points are jittered by U(±0.2).
    """
    base = placement.to_device(torch.tensor(CONTROL_POINTS), generator.device)
    control = base + _uniform((n, len(CONTROL_POINTS), 2), -0.2, 0.2, generator)
    vector = _uniform(control.shape, -tps_scale, tps_scale, generator)
    offset = _uniform((n, 1, 2), -offset_scale, offset_scale, generator)
    offset_2 = _uniform((n, 1, 2), -offset_scale, offset_scale, generator)
    scale = _uniform((n, 1, 2), zoom * (1 - zoom_variation), zoom * (1 + zoom_variation), generator)
    angle = _uniform((n,), -rotation_scale, rotation_scale, generator)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    moved = scale * (control + vector - offset) + offset - offset_2
    target = torch.einsum("bij,bnj->bni", rotation, moved) + offset_2
    return thin_plate_spline(control, target)


def colour_jitter(
    image: torch.Tensor,
    *,
    contrast: float,
    brightness: float,
    saturation: float,
    hue: float,
    generator: torch.Generator,
    group: int = 1,
) -> torch.Tensor:
    """``ops.augm``: random contrast, brightness, saturation and hue, one draw per ``group``
    consecutive images (``group=2``: both views of one image share a colouring).

    In [0, 1] units as ``tf.image``: contrast scales around each image's channel means by
    U(1 ± c); brightness adds U(±b); saturation scales the distance from the grey level by
    U(1 ± s); hue turns the chroma by U(±h) of a full turn (a rotation in YIQ space, which stands
    in for ``tf.image.random_hue``'s HSV shift). The result is clipped, as ``prepare_pairs`` does.
    """
    b = image.shape[0]
    if b % group:
        raise ValueError(f"batch size {b} is not a multiple of group={group}")

    def draw(low: float, high: float) -> torch.Tensor:  # (b,), one value per group
        value = _uniform((b // group,), low, high, generator).to(image)
        return value.repeat_interleave(group)

    x = (image + 1) / 2  # [0, 1]
    mean = x.mean((2, 3), keepdim=True)
    x = (x - mean) * draw(1 - contrast, 1 + contrast)[:, None, None, None] + mean
    x = x + draw(-brightness, brightness)[:, None, None, None]
    luma = placement.to_device(torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype), x.device)
    grey = (x * luma[:, None, None]).sum(1, keepdim=True)
    x = grey + (x - grey) * draw(1 - saturation, 1 + saturation)[:, None, None, None]
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype
    )
    to_yiq = placement.to_device(to_yiq, x.device)  # constants without a host sync
    angle = 2 * math.pi * draw(-hue, hue)
    rotation = torch.zeros(b, 3, 3, dtype=x.dtype, device=x.device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = angle.cos(), -angle.sin()
    rotation[:, 2, 1], rotation[:, 2, 2] = angle.sin(), angle.cos()
    from_yiq = torch.linalg.inv_ex(to_yiq, check_errors=x.device.type == "cpu").inverse
    matrix = from_yiq @ rotation @ to_yiq  # (b, 3, 3)
    x = torch.einsum("bij,bjhw->bihw", matrix, x)
    return x.clamp(0, 1) * 2 - 1
