"""Chapter 7: the invariances of CNN representations (Rombach, Esser & Ommer, ECCV 2020).

arXiv:2008.01777.

The networks (``model``), the method (``method``) and the measurements (``analysis``) never
import Lightning; ``LitInvariances`` lives in ``esser_lab.invariances.training``.
"""

from esser_lab.invariances.analysis import ForegroundStats, foreground_stats, ridge_probe
from esser_lab.invariances.data import palette_rgb, shape_sprites, swap_truth
from esser_lab.invariances.method import (
    Explanation,
    explain,
    invariance_nll,
    reconstruct,
    sample_invariances,
)
from esser_lab.invariances.model import (
    ConditionalTransformer,
    DenseEmbedder,
    GlobalAveragePool,
    Greybox,
    InvariancesConfig,
)

__all__ = [
    "ConditionalTransformer",
    "DenseEmbedder",
    "Explanation",
    "ForegroundStats",
    "GlobalAveragePool",
    "Greybox",
    "InvariancesConfig",
    "explain",
    "foreground_stats",
    "invariance_nll",
    "palette_rgb",
    "reconstruct",
    "ridge_probe",
    "sample_invariances",
    "shape_sprites",
    "swap_truth",
]
