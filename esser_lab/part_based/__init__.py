"""Chapter 2: part-based disentangling of shape and appearance (Lorenz, Bereska, Milbich &
Ommer, CVPR 2019, arXiv:1903.06946).

The network (``model``) and the method never import Lightning; ``LitPartBased`` lives in
``esser_lab.part_based.training``.
"""

from esser_lab.part_based.method import (
    PartBasedLoss,
    Views,
    equivariance_losses,
    localised_reconstruction_loss,
    make_views,
    part_based_loss,
    reconstruction_mask,
    source_moments,
    swap,
)
from esser_lab.part_based.model import (
    PartBased,
    PartBasedConfig,
    PartEncoding,
    coordinate_grid,
    part_heatmaps,
    part_statistics,
)
from esser_lab.part_based.transforms import (
    SpatialTransform,
    colour_jitter,
    sample_spatial_transform,
    thin_plate_spline,
)

__all__ = [
    "PartBased",
    "PartBasedConfig",
    "PartBasedLoss",
    "PartEncoding",
    "SpatialTransform",
    "Views",
    "colour_jitter",
    "coordinate_grid",
    "equivariance_losses",
    "localised_reconstruction_loss",
    "make_views",
    "part_based_loss",
    "part_heatmaps",
    "part_statistics",
    "reconstruction_mask",
    "sample_spatial_transform",
    "source_moments",
    "swap",
    "thin_plate_spline",
]
