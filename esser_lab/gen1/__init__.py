"""Chapter 16: Gen-1 (Esser, Chiu, Atighehchian, Granskog & Germanidis, ICCV 2023; arXiv
2302.03011): structure- and content-guided video diffusion.

The Lightning system lives in :mod:`esser_lab.gen1.training` (``LitGen1``), imported from there as
every paper's, so that importing the networks does not import Lightning.
"""

from esser_lab.gen1.method import (
    PixelFold,
    blur_depth,
    gen1_loss,
    sample_video,
    structure,
    temporal_guidance,
    video_denoiser,
)
from esser_lab.gen1.model import (
    Gen1Config,
    Gen1UNet,
    TemporalAttention,
    TemporalConv,
    count_parameters,
)

__all__ = [
    "Gen1Config",
    "Gen1UNet",
    "PixelFold",
    "TemporalAttention",
    "TemporalConv",
    "blur_depth",
    "count_parameters",
    "gen1_loss",
    "sample_video",
    "structure",
    "temporal_guidance",
    "video_denoiser",
]
