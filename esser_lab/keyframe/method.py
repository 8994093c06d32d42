"""The keyframe propagation task and its objective (chapter 15).

Esser, Michael & Sengupta 2022 (arXiv 2205.09731). A target frame has a hole; keyframes of the
same clip are known; a flow from the target to each keyframe (RAFT in the paper) comes with a
per-pixel error estimate (RAFT's forward–backward inconsistency). The generator fills the hole.

The toy's data (:func:`keyframe_samples`) come from :mod:`esser_lab.data.video`, whose motion is
exact. Outside the hole the flow is the exact backward flow plus a smooth noise field (a RAFT-like
small error), and the error channel is the noise's magnitude plus 1 where the exact flow is not
valid (the point is occluded in, or outside, the keyframe), as a forward–backward check would
flag it. Inside the hole the official pipeline (``gi/modules/warp/raft.py``: RAFT on the
whole target, then ``inpaint_flows`` of ``gi/modules/RAFT/flow_utils.py``) replaces the flow by
an inverse-distance interpolation (weights 1/d⁶) of its values at 20 points drawn on the hole's
inner edge (:func:`inpaint_flows`, the same procedure); the toy does the same to the flow, and
fills its error channel from the same points (it has no backward flow to check: the official
error inside the hole is the forward–backward consistency of the two filled flows, as
:class:`~esser_lab.keyframe.raft.RaftFlow` computes it). An object that moves differently inside
the hole is not in the flow, but for what reaches the edge.

``corrupt`` is an *adversarial* failure, not a RAFT-like one: over a box that covers the hole
(grown by a quarter of the side), a keyframe's flow is replaced by a translation of 25–45 % of
the side in a random direction, and the error channel does **not** flag it (a wrong flow that is
consistent in both directions passes the forward–backward check; here the channel even keeps the
small noise magnitude of the exact flow). Many of the wrong samples fall outside the keyframe
(zero padding). Only a model that compares what the flow brings with what it otherwise knows can
notice.

The loss (:func:`inpainting_loss`) is the toy's: L1 in the hole plus L1 on the known pixels. The
official recipe (``configs/ours.yaml``, :data:`PAPER_LOSS`) puts no L1 on the hole at all (weight
0; known region 10) and trains the fill with LaMa's adversarial loss (R1-regularised), feature
matching and a perceptual loss through a pretrained ADE20k ResNet-50: a GAN a minute on a CPU
cannot train, and a network the tiny scale may not download. The deviation is the toy's, stated
in the chapter; the architecture and its inputs are the paper's. At ``small``/``full`` the
paper's objective is trained (:mod:`esser_lab.keyframe.losses`, ``LitKeyframe(objective=
"paper")``, chosen by :func:`~esser_lab.keyframe.training.fit_keyframe`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.data.video import Clips, flow_between

__all__ = [
    "PAPER_LOSS",
    "KeyframeSamples",
    "box_masks",
    "composite",
    "hole_highfreq_error",
    "hole_psnr",
    "hole_edge",
    "inpaint_flows",
    "official_edge_draws",
    "inpainting_loss",
    "keyframe_samples",
    "laplacian",
    "smooth_noise",
]

#: The official loss weights and optimiser settings (``configs/ours.yaml``), trained at
#: small/full (:mod:`esser_lab.keyframe.losses`); the tiny toy trains with
#: :func:`inpainting_loss` instead. ``base_learning_rate`` is
#: the config's; the official ``main.py`` multiplies it by accumulate_grad_batches × GPUs ×
#: batch_size (2 × GPUs × 8: 1.6e-4 on one GPU, 3.2e-4 on the README's two) and the schedule
#: warms it up over ``warm_up_steps``, then decays it along a cosine.
PAPER_LOSS = {
    "l1_weight_missing": 0.0,
    "l1_weight_known": 10.0,
    "adversarial_weight": 10.0,  # non-saturating, R1 penalty
    "r1_gp_coef": 0.001,
    "feature_matching_weight": 100.0,
    "resnet_perceptual_weight": 30.0,  # ADE20k ResNet-50 dilated encoder
    "base_learning_rate": 1e-5,
    "discriminator_lr_factor": 0.1,
    "batch_size": 8,
    "accumulate_grad_batches": 2,
    "warm_up_steps": 1000,
}


@dataclass(frozen=True)
class KeyframeSamples:
    """One fill problem per row, images in [0, 1].

    ``image`` (n, 3, H, W) the target frame; ``mask`` (n, 1, H, W) 1 in the hole; ``keys``
    (n, f, 3, H, W) the keyframes; ``flows`` (n, f, 2, H, W) target → keyframe in pixels;
    ``flow_errors`` (n, f, 1, H, W); ``target`` (n,) the target's frame index; ``distance``
    (n,) frames to the nearest keyframe; ``corrupted`` (n, f) bool: which flows are wrong."""

    image: Tensor
    mask: Tensor
    keys: Tensor
    flows: Tensor
    flow_errors: Tensor
    target: Tensor
    distance: Tensor
    corrupted: Tensor

    def __len__(self) -> int:
        return self.image.shape[0]

    def __getitem__(self, rows: slice | Tensor) -> KeyframeSamples:
        """The problems at ``rows`` (a slice, or an index or boolean tensor)."""
        return KeyframeSamples(**{k: v[rows] for k, v in self.as_dict().items()})

    def inputs(self) -> tuple[Tensor, Tensor]:
        """The generator's image and keyframes: RGB·(1 − m) and m (keyframes: m = 0)."""
        masked = torch.cat((self.image * (1 - self.mask), self.mask), dim=1)
        zeros = torch.zeros_like(self.keys[:, :, :1])
        return masked, torch.cat((self.keys, zeros), dim=2)

    def as_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, batch: dict[str, Tensor]) -> KeyframeSamples:
        missing = sorted(set(cls.__dataclass_fields__) - set(batch))
        if missing:
            raise KeyError(f"a keyframe batch needs the fields {missing}, got {sorted(batch)}")
        return cls(**{name: batch[name] for name in cls.__dataclass_fields__})


def box_masks(n: int, size: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
    """(n, 1, size, size) float masks, 1 inside one random axis-aligned box whose sides are
    drawn in [lo, hi]·size (LaMa's box masks, one per image)."""
    sides = (lo + (hi - lo) * torch.rand(n, 2, generator=generator)) * size
    sides = sides.round().clamp(1, size)
    corner = (torch.rand(n, 2, generator=generator) * (size - sides + 1)).floor()
    grid = torch.arange(size, dtype=torch.float32)
    inside_x = (grid >= corner[:, :1]) & (grid < corner[:, :1] + sides[:, :1])  # (n, W)
    inside_y = (grid >= corner[:, 1:]) & (grid < corner[:, 1:] + sides[:, 1:])  # (n, H)
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def smooth_noise(n: int, size: int, scale: float, generator: torch.Generator) -> Tensor:
    """(n, 2, size, size) a smooth random flow error: a 4×4 Gaussian field (std ``scale``
    pixels per component) upsampled bilinearly."""
    coarse = torch.randn(n, 2, 4, 4, generator=generator) * scale
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)


def hole_edge(mask: Tensor) -> Tensor:
    """(n, 1, H, W) bool: the hole's inner edge, as the official ``_inpaint_flows`` finds it:
    hole pixels (``mask`` > 0.5) that a 3×3 cross erosion of the mask removes (a 4-neighbour
    outside the hole; outside the frame counts as hole, kornia's geodesic border), less the
    frame's outermost rows and columns."""
    m = mask.float()
    padded = F.pad(m, (1, 1, 1, 1), value=1.0)  # the frame's outside never erodes
    eroded = torch.stack(
        (
            m,
            padded[..., :-2, 1:-1],
            padded[..., 2:, 1:-1],
            padded[..., 1:-1, :-2],
            padded[..., 1:-1, 2:],
        )
    ).amin(dim=0)
    edge = (m > 0.5) & (eroded <= 0.5)
    edge[..., 0, :] = False
    edge[..., -1, :] = False
    edge[..., :, 0] = False
    edge[..., :, -1] = False
    return edge


def official_edge_draws(count: int, n_samples: int = 20) -> Tensor:
    """(n_samples,) long: which of ``count`` edge pixels (0-based, raster order) the official
    ``_inpaint_flows`` picks, with replacement: ``np.random.default_rng(1).choice(count,
    n_samples)``, the generator made afresh for every image, so the same edge count always
    gives the same points (count 0: the official falls back to the pixel (0, 0), index 0)."""
    if count < 0 or n_samples < 1:
        raise ValueError(f"count must be ≥ 0 and n_samples ≥ 1, got {count} and {n_samples}")
    return _official_draws(max(int(count), 1), int(n_samples)).clone()


@functools.lru_cache(maxsize=4096)
def _official_draws(count: int, n_samples: int) -> Tensor:
    draws = np.random.default_rng(1).choice(count, n_samples)  # official: seed 1, per image
    return torch.from_numpy(draws.astype(np.int64))


def inpaint_flows(values: Tensor, mask: Tensor, *, n_samples: int = 20) -> Tensor:
    """``values`` (n, c, H, W) with the hole (``mask`` (n, 1, H, W), 1 in the hole) filled as
    the official ``_inpaint_flows`` (``gi/modules/RAFT/flow_utils.py``) fills a flow's: per
    image, ``n_samples`` points are drawn *with replacement* from the hole's inner edge
    (:func:`hole_edge`, raster order) by the official call, numpy's ``default_rng(1)`` made
    afresh for each image (:func:`official_edge_draws`; no edge: the pixel (0, 0), as the
    official), and every pixel gets the average of their values weighted by 1/d⁶ (d the
    distance to the point; d = 0 counts 1e10, the official 1/1e-10); the result is
    (1 − m)·values + m·interpolation. The edge counts are read on the host, as the official
    reads its ``nonzero``. Memory O(n·n_samples·H·W); any H×W."""
    n, c, h, w = values.shape
    if mask.shape != (n, 1, h, w):
        raise ValueError(
            f"values must be (n, c, H, W) and mask (n, 1, H, W), got {tuple(values.shape)} "
            f"and {tuple(mask.shape)}"
        )
    if n_samples < 1:
        raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
    edge = hole_edge(mask).flatten(1)  # (n, H·W)
    count = edge.sum(dim=1)  # (n,)
    rank = torch.stack([official_edge_draws(k, n_samples) for k in count.tolist()])  # (n, K)
    rank = rank.to(values.device)  # which edge pixel, 0-based in raster order
    cumulative = edge.long().cumsum(dim=1)  # (n, H·W)
    where = torch.searchsorted(cumulative, rank + 1)  # first index reaching rank + 1
    where = torch.where(count[:, None] > 0, where, torch.zeros_like(where))  # official (0, 0)
    picked = values.flatten(2).gather(2, where[:, None].expand(n, c, n_samples))  # (n, c, K)
    py, px = (where // w).to(values.dtype), (where % w).to(values.dtype)  # (n, K)
    ys = torch.arange(h, device=values.device, dtype=values.dtype)
    xs = torch.arange(w, device=values.device, dtype=values.dtype)
    d2 = (ys.view(1, 1, h, 1) - py[..., None, None]).square() + (
        xs.view(1, 1, 1, w) - px[..., None, None]
    ).square()  # (n, K, H, W)
    cube = d2 * d2 * d2
    weight = 1 / torch.where(cube == 0, torch.full_like(cube, 1e-10), cube)
    total = torch.einsum("nkhw,nck->nchw", weight, picked)
    interpolated = total / weight.sum(dim=1, keepdim=True)
    m = mask.to(values.dtype)
    return (1 - m) * values + m * interpolated


def keyframe_samples(
    clips: Clips,
    generator: torch.Generator,
    *,
    keys: tuple[int, ...] = (0, -1),
    noise: float = 0.3,
    corrupt: float = 0.0,
    corrupt_count: int | None = None,
    wrong: tuple[float, float] = (0.25, 0.45),
    hole: tuple[float, float] = (0.35, 0.6),
    target: int | None = None,
) -> KeyframeSamples:
    """One fill problem per clip: a target frame strictly between the keyframes ``keys``
    (frame indices, negative from the end) unless ``target`` fixes it, a box hole, noisy flows.

    ``noise``: std of the smooth flow noise in pixels; ``corrupt``: the probability that a
    keyframe's flow is corrupted (independently per keyframe: an adversarial wrong translation
    of ``wrong``·size pixels over a box covering the hole, unflagged in the error channel);
    ``corrupt_count``: instead, exactly this many keyframes of every sample, chosen at random.
    """
    n, frames, size = clips.video.shape[0], clips.frames, clips.size
    key_idx = sorted(k % frames for k in keys)
    if len(set(key_idx)) != len(key_idx) or not key_idx:
        raise ValueError(f"keys must name distinct frames of {frames}, got {keys}")
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt is a probability, got {corrupt}")
    if corrupt_count is not None and not 0 <= corrupt_count <= len(key_idx):
        raise ValueError(f"corrupt_count must lie in 0..{len(key_idx)}, got {corrupt_count}")
    if target is None:
        free = [t for t in range(key_idx[0] + 1, key_idx[-1]) if t not in key_idx]
        if not free:
            raise ValueError(f"no frame lies between the keyframes {key_idx}")
        pick = torch.randint(len(free), (n,), generator=generator)
        t_idx = torch.tensor(free)[pick]
    else:
        t_idx = torch.full((n,), target % frames, dtype=torch.long)
    rows = torch.arange(n)
    video = (clips.video + 1) / 2
    mask = box_masks(n, size, *hole, generator)
    # the corrupted region: the hole's bounding box grown by a quarter of the side
    grow = max(1, size // 4)
    region = F.max_pool2d(mask, 2 * grow + 1, stride=1, padding=grow)
    draw = torch.rand(n, len(key_idx), generator=generator)
    if corrupt_count is None:
        corrupted = draw < corrupt
    else:  # the corrupt_count keyframes with the smallest draws
        corrupted = draw.argsort(dim=1).argsort(dim=1) < corrupt_count
    flows, errors = [], []
    for i, k in enumerate(key_idx):
        exact, valid = flow_between(clips, t_idx, k)
        eps = smooth_noise(n, size, noise, generator)
        angle = torch.rand(n, generator=generator) * 2 * math.pi
        length = (wrong[0] + (wrong[1] - wrong[0]) * torch.rand(n, generator=generator)) * size
        bad = torch.stack((angle.cos(), angle.sin()), dim=1) * length[:, None]  # (n, 2)
        use_bad = region * corrupted[:, i, None, None, None].float()
        flow = exact + eps
        flow = flow * (1 - use_bad) + (exact + bad[:, :, None, None]) * use_bad
        error = eps.norm(dim=1, keepdim=True) + (~valid).float()
        # the hole's flow: the official inpaint_flows (20 points of the hole's inner edge,
        # weights 1/d⁶); its error: filled from the same points (the toy's stand-in)
        flows.append(inpaint_flows(flow, mask))
        errors.append(inpaint_flows(error, mask))
    key_t = torch.tensor(key_idx)
    distance = (t_idx[:, None] - key_t[None]).abs().min(dim=1).values
    return KeyframeSamples(
        image=video[rows, t_idx],
        mask=mask,
        keys=video[:, key_idx],
        flows=torch.stack(flows, dim=1),
        flow_errors=torch.stack(errors, dim=1),
        target=t_idx,
        distance=distance,
        corrupted=corrupted,
    )


def composite(prediction: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """m·prediction + (1 − m)·image: the known pixels are kept (official ``inpainted``)."""
    return mask * prediction + (1 - mask) * image


def inpainting_loss(
    prediction: Tensor, image: Tensor, mask: Tensor, known_weight: float = 1.0
) -> Tensor:
    """Mean L1 over the hole + ``known_weight`` · mean L1 over the known pixels (the toy's
    objective; the paper's is :data:`PAPER_LOSS`)."""
    if prediction.shape != image.shape or mask.shape[1] != 1:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and image {tuple(image.shape)} must match, "
            f"mask must be (b, 1, H, W), got {tuple(mask.shape)}"
        )
    error = (prediction - image).abs().mean(dim=1, keepdim=True)
    hole = (error * mask).sum() / mask.sum().clamp_min(1)
    known = (error * (1 - mask)).sum() / (1 - mask).sum().clamp_min(1)
    return hole + known_weight * known


def laplacian(images: Tensor) -> Tensor:
    """The 3×3 discrete Laplacian of each channel, replicate padding."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    c = images.shape[1]
    kernel = kernel.to(images).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def hole_psnr(filled: Tensor, image: Tensor, mask: Tensor) -> float:
    """PSNR (dB, peak 1) of the mean squared error over the hole pixels of all images."""
    squared = ((filled - image) ** 2).mean(dim=1, keepdim=True)
    mse = (squared * mask).sum() / mask.sum().clamp_min(1)
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def hole_highfreq_error(filled: Tensor, image: Tensor, mask: Tensor) -> float:
    """Mean |Δ filled − Δ image| over the hole pixels (Δ: :func:`laplacian`): the
    high-frequency error; a blurry fill misses the texture's Laplacian."""
    diff = (laplacian(filled) - laplacian(image)).abs().mean(dim=1, keepdim=True)
    return float((diff * mask).sum() / mask.sum().clamp_min(1))
