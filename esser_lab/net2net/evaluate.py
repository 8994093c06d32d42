"""What chapter 6 measures on text → image samples and caption edits.

Every score compares a set of generated images with real sprites *of the same caption*, so it
rewards following the caption and covering what the caption leaves open (position, size,
rotation) at once:

* :func:`caption_fd`: the book's FID-style score (:mod:`esser_lab.metrics.fid`) per caption,
  averaged over captions: a class-conditional FID, the toy's version of the paper's FID on COCO
  (Table 1 of arXiv:2005.13580, where it is computed unconditionally over captions);
* :func:`diversity_gap`: how far a model's within-caption diversity (per-pixel standard
  deviation among one caption's images) is from the real sprites' of that caption,
  ``mean |log(div_model / div_real)|``; zero when they match, large for a model that is too
  narrow *or* too wide;
* :func:`conditional_nll_per_dim`: the flow's held-out −log p(z_Θ | z_Φ) in nats per dimension.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from esser_lab.data import sprites
from esser_lab.metrics.fid import FeatureNet, frechet_distance
from esser_lab.net2net.data import captioned_sprites
from esser_lab.nn.flows import ConditionalFlow

__all__ = [
    "caption_fd",
    "conditional_nll_per_dim",
    "every_caption",
    "diversity_gap",
    "within_caption_diversity",
]


def every_caption(per_caption: int, size: int, *, generator: torch.Generator) -> sprites.Sprites:
    """Real sprites for all 48 (colour, shape) captions, ``per_caption`` consecutive rows each
    (colour-major), with fresh random position, size and rotation as in
    :func:`~esser_lab.net2net.data.captioned_sprites`."""
    if per_caption < 2:
        raise ValueError(f"per_caption must be >= 2 to measure a spread, got {per_caption}")
    n_colours, n_shapes = len(sprites.COLOURS), len(sprites.SHAPES)
    colour, shape = torch.meshgrid(torch.arange(n_colours), torch.arange(n_shapes), indexing="ij")
    colour = colour.reshape(-1, 1).repeat_interleave(per_caption, 0)
    shape = shape.reshape(-1, 1).repeat_interleave(per_caption, 0)
    draw = captioned_sprites(len(shape), size, generator=generator)
    return sprites.render(
        shape, colour, draw.texture, draw.position, draw.scale, draw.rotation, size
    )


def _groups(x: Tensor, per_caption: int) -> Tensor:
    if x.shape[0] % per_caption:
        raise ValueError(f"{x.shape[0]} rows do not split into groups of {per_caption}")
    return x.reshape(x.shape[0] // per_caption, per_caption, -1)


def within_caption_diversity(images: Tensor, per_caption: int) -> Tensor:
    """``(captions,)``: the per-pixel std among each caption's images, averaged over pixels."""
    return _groups(images, per_caption).std(1).mean(1)


def diversity_gap(images: Tensor, real: Tensor, per_caption: int) -> float:
    """``mean over captions of |log(div_model / div_real)|`` (0 = the data's own spread).

    A model with no spread (a deterministic translator) gets ``|log 1e-6 / div_real|``, large
    but finite. Each set's spread is computed on its own device (the images' may be a GPU).
    """
    if images.shape != real.shape:
        raise ValueError(f"shapes differ: {tuple(images.shape)} vs {tuple(real.shape)}")
    ours = within_caption_diversity(images, per_caption).clamp(min=1e-6)
    data = within_caption_diversity(real, per_caption).clamp(min=1e-6).to(ours.device)
    return float((ours / data).log().abs().mean())


@torch.no_grad()
def caption_fd(images: Tensor, real: Tensor, per_caption: int, feature_net: FeatureNet) -> float:
    """The FID-style score of each caption's images against the real ones, averaged.

    The features are computed where ``feature_net`` is (the images move there in chunks), the
    Fréchet distances in float64 on the CPU.
    """
    if images.shape != real.shape:
        raise ValueError(f"shapes differ: {tuple(images.shape)} vs {tuple(real.shape)}")
    device = next(feature_net.parameters()).device
    features = [
        _groups(
            torch.cat([feature_net.features(c.to(device)).cpu() for c in x.split(512)]),
            per_caption,
        )
        for x in (images, real)
    ]
    distances = [frechet_distance(a, b) for a, b in zip(*features, strict=True)]
    return sum(distances) / len(distances)


@torch.no_grad()
def conditional_nll_per_dim(flow: ConditionalFlow, z_target: Tensor, z_cond: Tensor) -> float:
    """−log p(z_Θ | z_Φ) = ½‖v‖² + (d/2) log 2π − log|det ∂v/∂z_Θ|, nats per dimension.

    Computed where the flow's weights are (the codes move there).
    """
    device = next(flow.parameters()).device
    v, logdet = flow(z_target.to(device), z_cond.to(device))
    dim = v.shape[1]
    nll = 0.5 * v.pow(2).sum(1) + 0.5 * dim * math.log(2 * math.pi) - logdet
    return float(nll.mean()) / dim
