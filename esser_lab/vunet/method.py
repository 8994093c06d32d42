"""The VUNet method as plain functions: part crops, the objective, the schedules, transfer.

Equation numbers refer to Esser, Sutter & Ommer (CVPR 2018, arXiv:1804.04694). The paper's
eqs. (3)–(5) carry sign typos (confirmed in ``CompVis/vunet`` issue #17); the code is followed:
``loss = likelihood + kl_weight · KL`` with the likelihood entering as a reconstruction loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.losses.kl import unit_variance_kl
from esser_lab.nn import placement
from esser_lab.vunet.model import VUNet, VUNetConfig


@dataclass(frozen=True)
class PartBox:
    """An oriented crop along the axis from joint group ``a`` to joint group ``b``.

    Each end is the mean of the listed joint indices (e.g. the two shoulders); ``width`` is the
    crop's width across the axis relative to the axis length (the official code uses 0.5).
    """

    a: tuple[int, ...]
    b: tuple[int, ...]
    width: float = 0.5


def figure_boxes() -> list[PartBox]:
    """The paper's 8 boxes on the articulated figures: torso, head, 4 arm segments, 2 thighs."""
    from esser_lab.data.figures import KEYPOINT_NAMES

    j = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    side = ("left", "right")
    boxes = [
        PartBox((j["left_shoulder"], j["right_shoulder"]), (j["left_hip"], j["right_hip"]), 0.8),
        PartBox((j["neck"],), (j["head"],), 1.0),
    ]
    for s in side:
        boxes.append(PartBox((j[f"{s}_shoulder"],), (j[f"{s}_elbow"],)))
        boxes.append(PartBox((j[f"{s}_elbow"],), (j[f"{s}_wrist"],)))
    for s in side:
        boxes.append(PartBox((j[f"{s}_hip"],), (j[f"{s}_knee"],)))
    return boxes


def _box_ends(keypoints: torch.Tensor, boxes: list[PartBox], end: str) -> torch.Tensor:
    """Mean position of each box's joint group ``end`` (``"a"`` or ``"b"``): ``(b, p, 2)``."""
    num_joints = keypoints.shape[1]
    weights = keypoints.new_zeros(len(boxes), num_joints)
    for row, box in enumerate(boxes):
        joints = getattr(box, end)
        if not joints or max(joints) >= num_joints or min(joints) < 0:
            raise ValueError(f"part box {box} names joints outside 0..{num_joints - 1}")
        weights[row, list(joints)] = 1.0 / len(joints)
    return torch.einsum("pk,bkd->bpd", weights, keypoints)


def normalize_parts(
    image: torch.Tensor, keypoints: torch.Tensor, boxes: list[PartBox], crop_size: int
) -> torch.Tensor:
    """In-plane normalisation: warp each body part into its own ``crop_size²`` square.

    Mirrors the official ``batches.normalize``: every part (torso, head, upper/lower arms,
    thighs) is cut out along its own axis, so the appearance encoder sees *what* each part looks
    like but hardly *where* it is. ``keypoints`` are (x, y) in [0, 1], shape ``(b, k, 2)``.
    Returns ``(b, 3·len(boxes), crop_size, crop_size)``.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (b, 3, h, w), got {tuple(image.shape)}")
    if keypoints.ndim != 3 or keypoints.shape[0] != image.shape[0] or keypoints.shape[2] != 2:
        raise ValueError(
            f"keypoints must have shape ({image.shape[0]}, k, 2), got {tuple(keypoints.shape)}"
        )
    width = torch.tensor([box.width for box in boxes], dtype=image.dtype)
    width = placement.to_device(width, image.device)  # no host sync on a GPU
    a = _box_ends(keypoints, boxes, "a") * 2 - 1  # (b, p, 2) in grid_sample's [-1, 1] coordinates
    b = _box_ends(keypoints, boxes, "b") * 2 - 1
    centre = (a + b) / 2
    along = (b - a) / 2  # half the axis: u ∈ [-1, 1] runs from a to b
    length = along.norm(dim=-1, keepdim=True).clamp_min(1e-3)
    across = torch.stack([-along[..., 1], along[..., 0]], dim=-1) / length  # unit normal
    across = across * (width[None, :, None] * length)  # half-width = width · half-length
    # affine map from crop coordinates (u, v) to image coordinates: centre + u·along + v·across
    theta = torch.stack([along, across, centre], dim=-1)  # (b, p, 2, 3)
    num_parts = len(boxes)
    grid = F.affine_grid(
        theta.flatten(0, 1),
        [image.shape[0] * num_parts, 3, crop_size, crop_size],
        align_corners=False,
    )
    repeated = image.repeat_interleave(num_parts, dim=0)
    crops = F.grid_sample(
        repeated, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return crops.reshape(image.shape[0], num_parts * 3, crop_size, crop_size)


def kl_weight(step: int, config: VUNetConfig) -> float:
    """KL weight: ``kl_weight_min`` until ``lr_decay_end/2``, linear to ``kl_weight_max`` at 3/4.

    Official ``main.py``: ``make_linear_var(step, end // 2, 3 * end // 4, 1e-6, 1.0)``.
    Keeping the KL weight near zero first lets the decoder learn to use z (``vunet`` issue #5).
    """
    start, end = config.lr_decay_end // 2, 3 * config.lr_decay_end // 4
    fraction = min(max((step - start) / max(end - start, 1), 0.0), 1.0)
    return config.kl_weight_min + fraction * (config.kl_weight_max - config.kl_weight_min)


def learning_rate_factor(step: int, config: VUNetConfig) -> float:
    """1 until ``lr_decay_begin``, then linear to 0 at ``lr_decay_end`` (official schedule)."""
    span = config.lr_decay_end - config.lr_decay_begin
    return min(max(1.0 - (step - config.lr_decay_begin) / span, 0.0), 1.0)


@dataclass
class VUNetLoss:
    """The objective's terms for one batch."""

    loss: torch.Tensor
    likelihood: torch.Tensor
    kl: torch.Tensor
    kl_weight: float
    reconstruction: torch.Tensor


def pixel_likelihood(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-image summed squared error, batch mean: a Gaussian negative log-likelihood up to scale.

    The stand-in for VGG19 features at tiny/small scale (no VGG weights offline).
    """
    return (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()


def vunet_loss(
    model: VUNet,
    image: torch.Tensor,
    shape: torch.Tensor,
    appearance: torch.Tensor,
    step: int,
    perceptual: nn.Module | None = None,
) -> VUNetLoss:
    """Eq. (4)–(5) as the code implements them: ``w · likelihood + kl_weight(step) · KL``.

    ``likelihood`` is ``perceptual(x, x̂)`` (VGG19 features, paper scale) when given, else the
    summed squared error. ``KL = Σ ½‖μ_q − μ_p‖²`` over the latent scales. Training uses a
    sample z ~ q(z | x) and teacher-forces the autoregressive prior with it.
    """
    config = model.config
    output = model(shape, appearance, sample=True)
    if config.likelihood == "vgg19":
        if perceptual is None:
            raise ValueError("config.likelihood='vgg19' needs a VGG19FeatureLoss as `perceptual`")
        likelihood = perceptual(image, output.image)
    else:
        likelihood = pixel_likelihood(image, output.image)
    weight = kl_weight(step, config)
    if output.posterior_means:
        kl = unit_variance_kl(output.posterior_means, output.prior_means)
    else:
        kl = image.new_zeros(())  # the baseline has no latent
    loss = config.likelihood_weight * likelihood + weight * kl
    return VUNetLoss(loss, likelihood.detach(), kl.detach(), weight, output.image.detach())


def _decode_means(model: VUNet, shape: torch.Tensor, appearance: torch.Tensor) -> torch.Tensor:
    # a chunk at a time (placement.images_per_pass: one pass at tiny, 128 figures at 64 px)
    n = placement.images_per_pass(shape.shape[-2], shape.shape[-1])
    if shape.shape[0] <= n or appearance.shape[0] != shape.shape[0]:  # (the model names a misfit)
        return model(shape, appearance, sample=False).image
    pairs = zip(shape.split(n), appearance.split(n), strict=True)
    return torch.cat([model(s, a, sample=False).image for s, a in pairs])


@torch.no_grad()
def transfer(model: VUNet, appearance_of_x: torch.Tensor, shape_of_y: torch.Tensor) -> torch.Tensor:
    """Appearance of x, shape of y: decode the posterior means of x's crops with ŷ of y."""
    return _decode_means(model, shape_of_y, appearance_of_x)


@torch.no_grad()
def reconstruct(model: VUNet, appearance: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Decode an image's own appearance (posterior means) with its own shape."""
    return _decode_means(model, shape, appearance)
