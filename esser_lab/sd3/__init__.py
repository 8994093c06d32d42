"""Chapter 17: Stable Diffusion 3 (Esser et al. 2024, arXiv 2403.03206): MMDiT, rectified flow."""

from esser_lab.sd3.checkpoint import infer_config, load_mmdit
from esser_lab.sd3.model import MMDiT, MMDiTConfig, count_parameters, matched_config

__all__ = [
    "MMDiT",
    "MMDiTConfig",
    "count_parameters",
    "infer_config",
    "load_mmdit",
    "matched_config",
]
