"""The explicit baseline of chapter 12: warp the source with (estimated) depth, then fill holes.

The paper compares its geometry-free transformers with methods that put geometry in by hand:
estimate the source's depth with a monocular network (MiDaS), warp the source into the target
camera, and let a network fill what the warp leaves empty (SynSin, 3D-photo inpainting, its own
``expl_img`` variant). Here: :func:`~esser_lab.geofree.warp.forward_warp` with a depth that has
the errors a monocular estimator makes (:class:`DepthErrorModel`), then :class:`HoleFiller`, a
small CNN trained on the same pairs, for the same steps, as the transformer.

The depth errors are fixed here, before any result, from what is known of monocular estimators:
MiDaS predicts inverse depth only up to scale and shift; the official code aligns it to the
sparse COLMAP points of each frame, which leaves a per-image scale error and low-frequency
errors, and monocular depth is over-smoothed at object boundaries. Zero-shot relative errors
(AbsRel) of such estimators are ~0.1–0.3 across data sets (MiDaS, Ranftl et al., TPAMI 2020;
unverified), so the model below has a per-image log-scale error of sd 0.15, a smooth relative
error of sd 0.10 on a 4×4 grid (bilinear), and a 3×3 box blur of the depth map. Never tuned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields
from esser_lab.geofree.warp import forward_warp
from esser_lab.nn import placement

__all__ = ["DepthErrorModel", "ExplicitBaseline", "HoleFiller"]


@dataclass(frozen=True)
class DepthErrorModel:
    """What a scale-aligned monocular depth estimate gets wrong (module doc; fixed in advance)."""

    log_scale_sd: float = 0.15  # per-image scale error left after aligning to sparse points
    smooth_sd: float = 0.10  # smooth relative error, drawn on a coarse grid
    smooth_cells: int = 4  # that grid: 4×4 cells, upsampled bilinearly
    blur: int = 3  # box blur (pixels): boundaries smoothed across depth edges

    def __post_init__(self) -> None:
        check_fields(self)
        if self.log_scale_sd < 0 or self.smooth_sd < 0:
            raise ValueError("log_scale_sd and smooth_sd must be ≥ 0")
        if self.smooth_cells < 1 or self.blur < 1 or self.blur % 2 == 0:
            raise ValueError("smooth_cells must be ≥ 1 and blur an odd size ≥ 1")

    def __call__(self, depth: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """An estimate of ``depth`` (b, 1, H, W) > 0 with this model's errors."""
        if depth.dim() != 4 or depth.shape[1] != 1:
            raise ValueError(f"depth must be (b, 1, H, W), got {tuple(depth.shape)}")
        b, _, h, w = depth.shape
        if self.blur > 1:
            pad = self.blur // 2
            depth = F.avg_pool2d(F.pad(depth, (pad,) * 4, mode="replicate"), self.blur, stride=1)
        n = self.smooth_cells
        kw = {"generator": generator, "device": depth.device}
        scale = placement.randn((b, 1, 1, 1), **kw) * self.log_scale_sd
        smooth = placement.randn((b, 1, n, n), **kw) * self.smooth_sd
        smooth = F.interpolate(smooth, size=(h, w), mode="bilinear", align_corners=False)
        return depth * torch.exp(scale + smooth)


class HoleFiller(nn.Module):
    """A small CNN: (warped view, validity mask) (b, 4, H, W) → the target view (b, 3, H, W).

    Four 3×3 convolutions (the middle two dilated, so a hole several pixels wide sees its rim).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=4, dilation=4),
            nn.SiLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, warped: Tensor, valid: Tensor) -> Tensor:
        return self.net(torch.cat([warped, valid.to(warped.dtype)], 1))


class ExplicitBaseline(nn.Module):
    """Depth estimate → forward warp → hole filling: the explicit pipeline, end to end."""

    def __init__(self, depth_error: DepthErrorModel | None = None, width: int = 32) -> None:
        super().__init__()
        self.depth_error = DepthErrorModel() if depth_error is None else depth_error
        self.filler = HoleFiller(width)

    def warp(
        self,
        source: Tensor,
        source_depth: Tensor,
        camera: dict[str, Tensor],
        generator: torch.Generator | None = None,
    ):
        """The source warped with an *estimated* depth (ground truth + the error model)."""
        estimate = self.depth_error(source_depth, generator)
        return forward_warp(source, estimate, camera["R"], camera["t"], camera["K"])

    def forward(
        self,
        source: Tensor,
        source_depth: Tensor,
        camera: dict[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The predicted target view (b, 3, H, W)."""
        check_tensor(source, "source", ("b", 3, "h", "w"), like=self, training=self.training)
        b, h, w = source.shape[0], source.shape[2], source.shape[3]
        check_tensor(source_depth, "source_depth", (b, 1, h, w), like=self, training=self.training)
        if not isinstance(camera, dict) or any(k not in camera for k in ("R", "t", "K")):
            got = sorted(camera) if isinstance(camera, dict) else type(camera).__name__
            raise ValueError(f"camera must be a dict with 'R', 't' and 'K', got {got}")
        for key, shape in (("R", (b, 3, 3)), ("t", (b, 3)), ("K", (b, 3, 3))):
            check_tensor(camera[key], f"camera[{key!r}]", shape, training=self.training)
        warped = self.warp(source, source_depth, camera, generator)
        return self.filler(warped.image, warped.valid)
