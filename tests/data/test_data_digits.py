"""scikit-learn's bundled digits: shapes, range, labels, resizing."""

import pytest
import torch

from esser_lab.data.digits import load_digits


def test_digits_at_native_size() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1
    assert labels.shape == (1797,) and labels.dtype == torch.long
    assert set(labels.tolist()) == set(range(10))
    assert (images[:, :, 0, 0] == -1).float().mean() > 0.9  # background is -1, ink towards +1


def test_digits_resized() -> None:
    small, _ = load_digits()
    images, _ = load_digits(size=16)
    assert images.shape == (1797, 1, 16, 16)
    assert images.min() >= -1 and images.max() <= 1
    pooled = torch.nn.functional.avg_pool2d(images, 2).flatten()  # back to 8x8: a blurred copy
    assert torch.corrcoef(torch.stack([pooled, small.flatten()]))[0, 1] > 0.95


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="size must be a positive int"):
        load_digits(size=0)
