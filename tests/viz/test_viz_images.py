"""The widgets' PNG strips and the book's image grids."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from esser_lab.viz.images import png_strip, show_grid


def test_png_strip_lays_images_side_by_side_with_gaps():
    black = -torch.ones(3, 4, 5)  # [-1, 1] images: -1 is black
    white = torch.ones(3, 4, 5)
    data = png_strip([black, white, black], scale=2)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert pixels.shape == (4 * 2, (3 * 5 + 2) * 2, 3)  # three images, two 1-pixel gaps, ×2
    assert (pixels[:, :10] == 0).all()  # the first image, enlarged
    assert (pixels[:, 10:12] == 255).all()  # the white gap
    assert (pixels[:, -10:] == 0).all()


@pytest.mark.parametrize(
    ("images", "scale", "match"), [([], 2, "at least one"), ([torch.zeros(3, 2, 2)], 0, "scale")]
)
def test_png_strip_rejects_bad_input(images, scale, match):
    with pytest.raises(ValueError, match=match):
        png_strip(images, scale)


def test_show_grid_returns_a_figure():
    fig = show_grid([[torch.zeros(3, 4, 4), None], [torch.ones(3, 4, 4), torch.ones(3, 4, 4)]])
    assert len(fig.axes) == 4
