"""Chapter 5: the (disentangling) invertible interpretation network (Esser, Rombach & Ommer,
CVPR 2020, arXiv:2004.13166).

The network (``model``), the method (``method``) and the pair data (``data``) never import
Lightning; ``LitIIN`` lives in ``esser_lab.iin.training``.
"""

from esser_lab.iin.data import (
    BACKGROUND,
    FACTORS,
    FactorPairs,
    factor_pairs,
    factor_values,
    plain_sprites,
    rerender,
)
from esser_lab.iin.method import (
    FactorDims,
    estimate_factor_dims,
    factor_nll_loss,
    linear_factor_basis,
    linear_probe,
    linear_r2,
    nll_loss,
    probe_gap,
    swap_coordinates,
    swap_factor,
    swap_subspace,
)
from esser_lab.iin.model import FactorTransformer, IINConfig

__all__ = [
    "BACKGROUND",
    "FACTORS",
    "FactorDims",
    "FactorPairs",
    "FactorTransformer",
    "IINConfig",
    "estimate_factor_dims",
    "factor_nll_loss",
    "factor_pairs",
    "factor_values",
    "linear_factor_basis",
    "linear_probe",
    "linear_r2",
    "nll_loss",
    "plain_sprites",
    "probe_gap",
    "rerender",
    "swap_coordinates",
    "swap_factor",
    "swap_subspace",
]
