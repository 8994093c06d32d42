"""Chapter 3: content and style disentanglement for artistic style transfer (Kotovenko et al.).

Kotovenko, Sanakoyeu, Lang & Ommer, ICCV 2019. The networks (``model``, ``layers``) and the
objectives (``method``) never import Lightning; ``LitStyleTransfer`` lives in
``esser_lab.style_transfer.training``.
"""

from esser_lab.style_transfer.layers import DiscriminatorOutput, LocalGroupNorm
from esser_lab.style_transfer.method import (
    DiscriminatorLoss,
    GeneratorLoss,
    StyleBatch,
    blur,
    content_class_loss,
    content_fixpoint_loss,
    discriminator_loss,
    fpd_loss,
    fpt_loss,
    generator_loss,
    image_loss,
    interpolate_styles,
    real_fake_loss,
    style_class_loss,
    stylise,
    triplet_loss,
    update_success_rate,
)
from esser_lab.style_transfer.model import CURRICULUM, StyleTransferConfig, StyleTransferModel

__all__ = [
    "CURRICULUM",
    "DiscriminatorLoss",
    "DiscriminatorOutput",
    "GeneratorLoss",
    "LocalGroupNorm",
    "StyleBatch",
    "StyleTransferConfig",
    "StyleTransferModel",
    "blur",
    "content_class_loss",
    "content_fixpoint_loss",
    "discriminator_loss",
    "fpd_loss",
    "fpt_loss",
    "generator_loss",
    "image_loss",
    "interpolate_styles",
    "real_fake_loss",
    "style_class_loss",
    "stylise",
    "triplet_loss",
    "update_success_rate",
]
