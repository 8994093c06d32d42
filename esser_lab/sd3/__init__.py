"""Chapter 17: Stable Diffusion 3 (Esser et al. 2024, arXiv 2403.03206): MMDiT, rectified flow.

The Lightning system lives in :mod:`esser_lab.sd3.training` (``LitMMDiT``), imported from there as
every paper's, so that importing the networks does not import Lightning.
"""

from esser_lab.sd3.checkpoint import infer_config, load_mmdit
from esser_lab.sd3.model import MMDiT, MMDiTConfig, count_parameters, matched_config
from esser_lab.sd3.shift import ShiftSweep, ShiftToy, shift_sweep

__all__ = [
    "MMDiT",
    "MMDiTConfig",
    "ShiftSweep",
    "ShiftToy",
    "count_parameters",
    "infer_config",
    "load_mmdit",
    "matched_config",
    "shift_sweep",
]
