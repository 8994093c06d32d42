"""What the chapters measure: transfer errors against known ground truth, image similarity."""

from esser_lab.metrics.transfer import part_colour_error, ssim

__all__ = ["part_colour_error", "ssim"]
