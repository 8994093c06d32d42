"""Chapter 18: LADD (Sauer, Boesel, Dockhorn, Blattmann, Esser & Rombach, SIGGRAPH Asia 2024;
arXiv 2403.12015): latent adversarial diffusion distillation of a rectified-flow MMDiT.

The Lightning system lives in :mod:`esser_lab.ladd.training` (``LitLADD``), imported from there as
every paper's, so that importing the networks does not import Lightning.
"""

from esser_lab.ladd.method import (
    discriminator_hinge,
    generator_hinge,
    renoise,
    sample_student,
    student_denoise,
    student_timesteps,
    synthesize,
)
from esser_lab.ladd.model import (
    BatchNormLocal,
    DiscriminatorHead,
    LADDConfig,
    LADDDiscriminator,
    token_features,
)
from esser_lab.ladd.teacher import load_teacher, train_teacher

__all__ = [
    "BatchNormLocal",
    "DiscriminatorHead",
    "LADDConfig",
    "LADDDiscriminator",
    "discriminator_hinge",
    "generator_hinge",
    "load_teacher",
    "renoise",
    "sample_student",
    "student_denoise",
    "student_timesteps",
    "synthesize",
    "token_features",
    "train_teacher",
]
