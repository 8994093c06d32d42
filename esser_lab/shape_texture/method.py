"""The method of chapter 11: shape and texture dimensions of a CNN's pooled features.

Islam, Kowal, Esser, Jia, Ommer, Derpanis & Bruce, ICLR 2021 (arXiv:2101.11604). Equations as
this chapter numbers them:

* (S1) the classifier is trained with cross-entropy on the shape class: ``L = −log p(y | x)``;
* (S2) for pairs ``(z^a, z^b)`` of pooled features that share factor ``F`` (0 shape, 1 texture),
  ``s_F = Σ_d mean_pairs[(z^a_d − μ_d)(z^b_d − μ_d)] / Σ_d Var(z_d)`` with
  ``μ = ½(mean z^a + mean z^b)`` over that factor's pairs and the variance over all ``2n``
  vectors; ``s_residual = 1``;
* (S3) ``|z_F| = ⌊softmax(s_shape, s_texture, 1)_F · D⌋``, the residual taking what rounding
  leaves.

(S2)–(S3) are chapter 5's estimate (I3) of the IIN (Esser, Rombach & Ommer, CVPR 2020), which
the official ``dim_estimation/utils.py::dim_est`` reimplements in NumPy; here it is *called*
from :func:`esser_lab.iin.method.estimate_factor_dims`, in float64 as NumPy computes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.data.cue_conflict import CuePairs
from esser_lab.iin.method import FactorDims, estimate_factor_dims
from esser_lab.shape_texture.model import ShapeTextureNet

__all__ = [
    "FACTOR_NAMES",
    "StageDims",
    "classification_loss",
    "dims_per_stage",
    "pooled_features",
    "shape_texture_dims",
]

FACTOR_NAMES = ("shape", "texture", "residual")  # the official factor indices 0, 1, 2


@dataclass(frozen=True)
class StageDims:
    """(S2)–(S3) at one stage: scores, dimension counts and the width ``D``."""

    stage: str
    scores: tuple[float, float, float]  # shape, texture, residual (= 1)
    dims: tuple[int, int, int]

    @property
    def width(self) -> int:
        return sum(self.dims)

    @property
    def shape(self) -> int:
        return self.dims[0]

    @property
    def texture(self) -> int:
        return self.dims[1]

    @property
    def shape_fraction(self) -> float:
        """The share of the ``D`` dimensions given to shape (``softmax(s)_shape`` rounded)."""
        return self.dims[0] / self.width

    @property
    def texture_fraction(self) -> float:
        return self.dims[1] / self.width


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """(S1): the mean cross-entropy of the shape classes ``labels`` ``(b,)`` under ``logits``
    ``(b, num_classes)``."""
    if logits.dim() != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"logits must be (b, classes) and labels (b,), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return F.cross_entropy(logits, labels)


def shape_texture_dims(z_a: Tensor, z_b: Tensor, factor: Tensor) -> FactorDims:
    """(S2)–(S3) for features ``z_a``, ``z_b`` ``(n, D)`` of pairs sharing ``factor`` ``(n,)``
    (0 shape, 1 texture): chapter 5's estimator with the residual as third factor."""
    if not isinstance(factor, Tensor) or factor.dim() != 1:
        raise ValueError("factor must be a (n,) tensor of 0 (shape) and 1 (texture)")
    return estimate_factor_dims(z_a.double(), z_b.double(), factor.long(), n_factors=3)


@torch.no_grad()
def pooled_features(model: ShapeTextureNet, images: Tensor, batch_size: int = 512) -> list[Tensor]:
    """Per-stage pooled features ``(n, D_s)`` of ``images``, in eval mode (BN running stats),
    on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = [
        [f.cpu() for f in model.stage_features(images[i : i + batch_size].to(device))]
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return [torch.cat(stage) for stage in zip(*chunks, strict=True)]


def dims_per_stage(
    model: ShapeTextureNet, pairs: CuePairs | Iterable[CuePairs], batch_size: int = 512
) -> list[StageDims]:
    """(S2)–(S3) at every stage of ``model`` for ``pairs`` (``res1`` first).

    ``pairs`` is one :class:`CuePairs` or an iterable of them (e.g.
    :func:`esser_lab.shape_texture.data.iter_stylized_voc_pairs`), read one chunk at a time so
    that only the pooled features are kept; ``batch_size`` images go through the network at once.
    """
    chunks = [pairs] if isinstance(pairs, CuePairs) else pairs
    parts_a: list[list[Tensor]] = []
    parts_b: list[list[Tensor]] = []
    factors = []
    for chunk in chunks:
        parts_a.append(pooled_features(model, chunk.a.image, batch_size))
        parts_b.append(pooled_features(model, chunk.b.image, batch_size))
        factors.append(chunk.factor)
    if not factors:
        raise ValueError("dims_per_stage needs at least one pair")
    features_a = [torch.cat(stage) for stage in zip(*parts_a, strict=True)]
    features_b = [torch.cat(stage) for stage in zip(*parts_b, strict=True)]
    factor = torch.cat(factors)
    result = []
    for name, z_a, z_b in zip(model.config.stage_names, features_a, features_b, strict=True):
        estimate = shape_texture_dims(z_a, z_b, factor)
        result.append(StageDims(name, estimate.scores, estimate.dims))  # type: ignore[arg-type]
    return result
