"""Chapter 1: the Variational U-Net (Esser, Sutter & Ommer, CVPR 2018, arXiv:1804.04694).

The network (``model``) never imports Lightning; ``LitVUNet`` lives in ``esser_lab.vunet.training``.
"""

from esser_lab.vunet.method import (
    PartBox,
    figure_boxes,
    kl_weight,
    learning_rate_factor,
    normalize_parts,
    reconstruct,
    transfer,
    vunet_loss,
)
from esser_lab.vunet.model import VUNet, VUNetConfig, VUNetOutput

__all__ = [
    "PartBox",
    "VUNet",
    "VUNetConfig",
    "VUNetOutput",
    "figure_boxes",
    "kl_weight",
    "learning_rate_factor",
    "normalize_parts",
    "reconstruct",
    "transfer",
    "vunet_loss",
]
