"""Shape or texture (Islam, Kowal, Esser, Jia, Ommer, Derpanis & Bruce, ICLR 2021): chapter 11.

* ``model``: :class:`ShapeTextureNet` (a ResNet read out per stage; ResNet-50 at ``paper()``)
  and its :class:`ShapeTextureConfig`;
* ``method``: the classification loss and the shape/texture dimension estimate, which calls
  chapter 5's :func:`esser_lab.iin.method.estimate_factor_dims`;
* ``readout``: binary and semantic shape decoding on frozen features, and on raw pixels;
* ``training``: :class:`LitShapeTexture` and the dimensions-over-training callback;
* ``pretrained``: torchvision's ResNet-50 weights or a seeded stand-in;
* ``data``: Stylized-VOC pairs from a local folder (full scale);
* ``claims``: what chapter 11 measures; ``chapter``: its figures and the readout explorer.

The data are :mod:`esser_lab.data.cue_conflict`.
"""

from esser_lab.shape_texture.method import (
    StageDims,
    classification_loss,
    dims_per_stage,
    pooled_features,
    shape_texture_dims,
)
from esser_lab.shape_texture.model import BasicBlock, ShapeTextureConfig, ShapeTextureNet

__all__ = [
    "BasicBlock",
    "ShapeTextureConfig",
    "ShapeTextureNet",
    "StageDims",
    "classification_loss",
    "dims_per_stage",
    "pooled_features",
    "shape_texture_dims",
]
