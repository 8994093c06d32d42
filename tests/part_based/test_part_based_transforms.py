"""The spatial and appearance transforms: a warped image and a transformed point set agree."""

import pytest
import torch

from esser_lab.part_based import (
    PartBasedConfig,
    colour_jitter,
    coordinate_grid,
    sample_spatial_transform,
    thin_plate_spline,
)


def transform(n=4, seed=0, **overrides):
    c = PartBasedConfig.tiny()
    params = dict(
        tps_scale=c.tps_scale,
        rotation_scale=c.rotation_scale,
        offset_scale=c.offset_scale,
        zoom=c.zoom,
        zoom_variation=c.zoom_variation,
    )
    params.update(overrides)
    return sample_spatial_transform(n, generator=torch.Generator().manual_seed(seed), **params)


def test_spline_interpolates_its_control_points():
    g = torch.Generator().manual_seed(0)
    control = torch.rand(3, 8, 2, generator=g) * 2 - 1
    target = control + 0.1 * torch.randn(3, 8, 2, generator=g)
    spline = thin_plate_spline(control, target)
    torch.testing.assert_close(spline.to_source(control), target, atol=1e-4, rtol=0)


def test_to_view_inverts_to_source():
    t = transform(n=5)
    points = torch.rand(5, 14, 2, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.6
    view = t.to_view(points)
    torch.testing.assert_close(t.to_source(view), points, atol=1e-5, rtol=0)


def test_jacobian_matches_autograd():
    t = transform(n=2)
    p = torch.rand(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) - 0.5
    t64 = type(t)(t.control.double(), t.weights.double(), t.affine.double())
    jac = torch.autograd.functional.jacobian(lambda q: t64.to_source(q).sum((0, 1)), p)
    # jac[j, b, l, i] = ∂f_j/∂p_i (summed over b, l is harmless: points are independent)
    expected = jac.permute(1, 2, 3, 0)
    torch.testing.assert_close(t64.jacobian(p), expected, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bright_dot_moves_where_the_point_transform_says(seed):
    size = 64
    g = torch.Generator().manual_seed(seed)
    dot = torch.rand(1, 1, 2, generator=g) * 0.8 - 0.4  # (x, y) in [-1, 1]
    grid = coordinate_grid(size)
    blob = torch.exp(-((grid - dot[0, 0]).pow(2).sum(-1)) / (2 * 0.03**2))  # (h, w)
    image = (blob * 2 - 1).expand(1, 3, size, size).contiguous()
    t = transform(n=1, seed=seed)
    warped = (t.warp(image)[0, 0] + 1) / 2  # back to [0, 1] intensity
    weights = warped / warped.sum()
    centroid = torch.einsum("hw,hwi->i", weights, grid)
    expected = t.to_view(dot)[0, 0]
    assert (centroid - expected).norm() < 0.02  # well under a pixel (2/64 = 0.031)


def test_identity_warp_leaves_the_image_unchanged():
    t = transform(
        n=2, tps_scale=0.0, rotation_scale=0.0, offset_scale=0.0, zoom=1.0, zoom_variation=0.0
    )
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(t.warp(image), image, atol=1e-4, rtol=0)


def test_colour_jitter_keeps_range_and_moves_no_pixel():
    g = torch.Generator().manual_seed(0)
    image = torch.full((4, 3, 8, 8), -1.0)
    image[:, :, 2:5, 3:6] = torch.rand(4, 3, 1, 1, generator=g) * 2 - 1
    out = colour_jitter(image, contrast=0.5, brightness=0.3, saturation=0.1, hue=0.3, generator=g)
    assert out.shape == image.shape and out.min() >= -1 and out.max() <= 1
    # pixels that were equal stay equal: the appearance transform changes colours, not geometry
    inside = out[:, :, 2:5, 3:6]
    assert torch.allclose(inside, inside[:, :, :1, :1].expand_as(inside), atol=1e-6)


def test_colour_jitter_groups_share_one_draw():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pairs = image.expand(4, 3, 8, 8).contiguous()
    jitter = dict(contrast=0.5, brightness=0.3, saturation=0.1, hue=0.3)
    out = colour_jitter(pairs, generator=torch.Generator().manual_seed(1), group=2, **jitter)
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(out[2], out[3])
    assert (out[0] - out[2]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="multiple of group"):
        colour_jitter(pairs[:3], generator=torch.Generator(), group=2, **jitter)


def test_spatial_transform_to_moves_the_splines():
    """Splines drawn with a CPU generator go where the images are (meta stands in for a GPU)."""
    t = transform()
    moved = t.to("meta")
    for name in ("control", "weights", "affine"):
        assert getattr(moved, name).device.type == "meta"
        assert getattr(moved, name).shape == getattr(t, name).shape
    back = t.to("cpu")
    assert torch.equal(back.to_source(t.control), t.to_source(t.control))
