"""Chapter 10 (in progress): Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; 2012.09841).

So far: the VQGAN first stage at the released configuration (``model``) and the safe, strict loader
of the released checkpoints (``checkpoint``). The network never imports Lightning.
"""

from esser_lab.taming.checkpoint import (
    CheckpointError,
    load_lightning_state_dict,
    load_vqgan,
    split_transformer_checkpoint,
)
from esser_lab.taming.model import VQGANConfig, VQModel

__all__ = [
    "CheckpointError",
    "VQGANConfig",
    "VQModel",
    "load_lightning_state_dict",
    "load_vqgan",
    "split_transformer_checkpoint",
]
