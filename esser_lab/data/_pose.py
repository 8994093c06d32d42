"""The skeleton of the stick figures and its kinematic pose sampler (see ``figures.py``).

Body model, in units of the torso length (neck to mid-hip): shoulders 0.84 apart, hips 0.52 apart,
head 0.62 above the neck, upper arm 0.62, forearm 0.55, thigh 0.9, shin 0.85. Angles are measured
from "straight down", positive towards the image's +x, so a limb at angle ``a`` points along
``(sin a, cos a)`` (y down).
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.data._raster import check_generator, check_positive_int, uniform

KEYPOINT_NAMES = (
    "head",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
)
PART_NAMES = ("head", "torso", "arms", "legs")
# (joint_a, joint_b, part index): the neck segment (the head adds a disc on "head"), the torso's
# outline (render fills the polygon TORSO_POLYGON), and the limbs
LIMBS = (
    ("neck", "head", 0),
    ("right_shoulder", "left_shoulder", 1),
    ("left_shoulder", "left_hip", 1),
    ("left_hip", "right_hip", 1),
    ("right_hip", "right_shoulder", 1),
    ("right_shoulder", "right_elbow", 2),
    ("right_elbow", "right_wrist", 2),
    ("left_shoulder", "left_elbow", 2),
    ("left_elbow", "left_wrist", 2),
    ("right_hip", "right_knee", 3),
    ("right_knee", "right_ankle", 3),
    ("left_hip", "left_knee", 3),
    ("left_knee", "left_ankle", 3),
)
TORSO_POLYGON = ("right_shoulder", "left_shoulder", "left_hip", "right_hip")

# thickness in torso lengths (render also keeps every half-width >= MIN_HALF_WIDTH_PX pixels)
HEAD_RADIUS = 0.38
HALF_WIDTH = {"neck": 0.15, "torso": 0.1, "arms": 0.2, "legs": 0.24}
MARGIN = 0.05  # the figure, thickness included, stays this far inside the image
TORSO_LENGTH = (0.16, 0.25)  # range of the torso length as a fraction of the image side

_SHOULDER, _HIP, _NECK_TO_HEAD = 0.42, 0.26, 0.62
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.62, 0.55, 0.9, 0.85


def _direction(angle: Tensor) -> Tensor:
    """Unit vectors ``(..., 2)`` for angles from straight down (y down)."""
    return torch.stack([angle.sin(), angle.cos()], -1)


def sample_pose(n: int, *, generator: torch.Generator) -> Tensor:
    """Random poses built kinematically from joint angles: keypoints ``(n, K, 2)`` in ``[0, 1]``.

    Arms swing from slightly across the body to straight up (upper arm -0.3..3.0 rad outwards) and
    bend either way at the elbow (up to 2.4 rad); legs spread or cross (-0.25..0.8 rad outwards) and
    bend at the knee (up to 0.9 rad either way); the head tilts by up to 0.35 rad and the whole body
    rotates by up to 0.3 rad. The torso length is drawn from ``TORSO_LENGTH`` and shrunk if needed
    so the figure fits inside the image with ``MARGIN``; the position is uniform over all places
    where it fits. Keypoint order is ``KEYPOINT_NAMES``.
    """
    check_positive_int(n, "n")
    generator = check_generator(generator)
    device = generator.device
    side = torch.tensor([-1.0, 1.0], device=device)  # right limbs on the image's left (-x)

    def u(low: float, high: float, *shape: int) -> Tensor:
        return uniform((n, *shape), low, high, generator)

    neck = torch.tensor([0.0, -1.0], device=device).expand(n, 2)  # pelvis at the origin
    shoulders = torch.stack([side * _SHOULDER, torch.full_like(side, -1.0)], -1).expand(n, 2, 2)
    hips = torch.stack([side * _HIP, torch.zeros_like(side)], -1).expand(n, 2, 2)  # (n, 2, 2)
    head = neck + _NECK_TO_HEAD * _direction(torch.pi + u(-0.35, 0.35))
    upper = side * u(-0.3, 3.0, 2)  # (n, 2) right, left
    elbows = shoulders + _UPPER_ARM * _direction(upper)
    wrists = elbows + _FOREARM * _direction(upper + u(-2.4, 2.4, 2))
    thigh = side * u(-0.25, 0.8, 2)
    knees = hips + _THIGH * _direction(thigh)
    ankles = knees + _SHIN * _direction(thigh + u(-0.9, 0.9, 2))
    joints = {"head": head, "neck": neck}
    for i, side_name in enumerate(("right", "left")):
        joints |= {
            f"{side_name}_shoulder": shoulders[:, i],
            f"{side_name}_elbow": elbows[:, i],
            f"{side_name}_wrist": wrists[:, i],
            f"{side_name}_hip": hips[:, i],
            f"{side_name}_knee": knees[:, i],
            f"{side_name}_ankle": ankles[:, i],
        }
    body = torch.stack([joints[name] for name in KEYPOINT_NAMES], 1)  # (n, K, 2), torso lengths
    angle = u(-0.3, 0.3)
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    body = torch.stack(
        [cos * body[..., 0] - sin * body[..., 1], sin * body[..., 0] + cos * body[..., 1]], -1
    )

    # extent including thickness, in torso lengths
    radius = torch.full((len(KEYPOINT_NAMES),), HALF_WIDTH["legs"], device=device)
    radius[0] = HEAD_RADIUS
    low = (body - radius[None, :, None]).amin(1)  # (n, 2)
    high = (body + radius[None, :, None]).amax(1)
    fit = (1 - 2 * MARGIN) / (high - low).amax(-1)  # (n,) largest torso length that fits
    torso = torch.minimum(u(*TORSO_LENGTH), fit)
    lowest = MARGIN - low * torso[:, None]  # (n, 2) range of the pelvis position
    highest = 1 - MARGIN - high * torso[:, None]
    pelvis = lowest + (highest - lowest) * u(0.0, 1.0, 2)
    return (pelvis[:, None] + torso[:, None, None] * body).float()
