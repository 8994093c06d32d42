"""Chapter 17: Stable Diffusion 3 (Esser et al. 2024, arXiv 2403.03206): MMDiT, rectified flow."""

from esser_lab.sd3.model import MMDiT, MMDiTConfig, matched_config

__all__ = ["MMDiT", "MMDiTConfig", "matched_config"]
