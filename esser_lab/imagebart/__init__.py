"""Chapter 13: ImageBART (Esser, Rombach, Blattmann & Ommer, NeurIPS 2021; arXiv:2108.08827).

* the transitions (``model``: ``ImageBART``, ``ImageBARTConfig``; ``xtransformer``: the
  encoder–decoder), over the codes of a remapped VQGAN (``first_stage``);
* the objective, the chain sampler, masked editing and the autoregressive baseline (``method``),
  on the multinomial diffusion of the generative core (``esser_lab.diffusion.multinomial``);
* the Lightning systems (``training``), the claims (``claims``), the official checkpoints
  (``checkpoint``).
"""

from esser_lab.imagebart.first_stage import RemappedVQModel, used_codes
from esser_lab.imagebart.method import (
    ar_complete,
    ar_loss,
    completion_mask,
    guide_logits,
    imagebart_loss,
    raster_order,
    sample_chain,
    sample_scale,
)
from esser_lab.imagebart.model import ImageBART, ImageBARTConfig
from esser_lab.imagebart.xtransformer import XTransformer

__all__ = [
    "ImageBART",
    "ImageBARTConfig",
    "RemappedVQModel",
    "XTransformer",
    "ar_complete",
    "ar_loss",
    "completion_mask",
    "guide_logits",
    "imagebart_loss",
    "raster_order",
    "sample_chain",
    "sample_scale",
    "used_codes",
]
