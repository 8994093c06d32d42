"""What the chapters measure: transfer errors against known ground truth, image similarity,
landmark regression, the book's FID-style score."""

from esser_lab.metrics.fid import fid_style, frechet_distance
from esser_lab.metrics.landmarks import (
    LandmarkRegressor,
    fit_landmark_regressor,
    landmark_error,
)
from esser_lab.metrics.transfer import part_colour_error, ssim

__all__ = [
    "LandmarkRegressor",
    "fid_style",
    "frechet_distance",
    "fit_landmark_regressor",
    "landmark_error",
    "part_colour_error",
    "ssim",
]
