"""scikit-learn's bundled handwritten digits: a small real-image set that needs no download.

1,797 grey 8x8 digits (UCI "Optical Recognition of Handwritten Digits", as shipped inside
scikit-learn), returned as float32 ``(n, 1, size, size)`` in ``[-1, 1]`` (ink is +1) with labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.data._raster import check_positive_int

__all__ = ["load_digits"]


def load_digits(size: int = 8) -> tuple[Tensor, Tensor]:
    """The 1,797 digits as ``(images, labels)``.

    Args:
        size: output side in pixels; other sizes than 8 are bilinear resizes of the 8x8 originals.

    Returns:
        images ``(1797, 1, size, size)`` float32 in ``[-1, 1]`` and labels ``(1797,)`` long in
        ``0..9``.
    """
    check_positive_int(size, "size")
    from sklearn.datasets import load_digits as _sklearn_load_digits  # slow import, done lazily

    bunch = _sklearn_load_digits()
    # the originals count ink in 0..16
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (n, 1, 8, 8)
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        images = images.clamp(-1.0, 1.0)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return images.contiguous(), labels
