"""Chapter 10: Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; arXiv:2012.09841).

* first stage: the VQGAN (``model``), its objective (``method``), the safe, strict loader of the
  released checkpoints (``checkpoint``);
* second stage: the GPT over the VQGAN's codes (``transformer``) and its sampler (``sampling``).

The networks and methods never import Lightning; the systems ``LitVQGAN``
(``esser_lab.taming.training``) and ``LitTamingTransformer``
(``esser_lab.taming.transformer_training``) do.
"""

from esser_lab.taming.checkpoint import (
    CheckpointError,
    load_lightning_state_dict,
    load_vqgan,
    split_transformer_checkpoint,
)
from esser_lab.taming.method import (
    autoencoder_loss,
    discriminator_loss,
    hf_ratio,
    psnr,
    reconstruction_loss,
)
from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.taming.sampling import sample, top_k_top_p_filtering
from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig, next_token_loss

__all__ = [
    "CheckpointError",
    "TamingTransformer",
    "TamingTransformerConfig",
    "VQGANConfig",
    "VQModel",
    "autoencoder_loss",
    "discriminator_loss",
    "hf_ratio",
    "load_lightning_state_dict",
    "load_vqgan",
    "next_token_loss",
    "psnr",
    "reconstruction_loss",
    "sample",
    "split_transformer_checkpoint",
    "top_k_top_p_filtering",
]
