"""The toy 3-D world of chapter 12 (esser_lab.data.scenes): determinism, exact depth, the relation
between the two views, and the disocclusion mask."""

import time

import pytest
import torch

from esser_lab.data import scenes
from esser_lab.geofree.warp import forward_warp


def pairs(n: int = 64, seed: int = 0, size: int = 16) -> scenes.ViewPairs:
    return scenes.sample_pairs(n, size, generator=torch.Generator().manual_seed(seed))


def test_shapes_ranges_and_camera():
    p = pairs(8)
    assert p.source.shape == p.target.shape == (8, 3, 16, 16)
    assert p.source_depth.shape == p.target_depth.shape == p.visible.shape == (8, 1, 16, 16)
    assert p.visible.dtype == torch.bool
    assert p.source.min() >= -1 and p.source.max() <= 1
    assert p.R.shape == p.K.shape == p.K_inv.shape == (8, 3, 3) and p.t.shape == (8, 3)
    torch.testing.assert_close(p.K @ p.K_inv, torch.eye(3).expand(8, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(p.R @ p.R.transpose(1, 2), torch.eye(3).expand(8, 3, 3))
    assert set(p.camera) == {"R", "t", "K", "K_inv"}
    assert (p.source_depth >= scenes.BOX_DEPTHS[0]).all()
    assert (p.source_depth <= scenes.WALL_DEPTH).all()


def test_same_seed_same_pairs_and_other_seed_differs():
    a, b, c = pairs(16, 3), pairs(16, 3), pairs(16, 4)
    for name in ("source", "target", "target_depth", "R", "t", "visible"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.source, c.source)


def test_depth_of_a_hand_built_scene():
    """A box at depth 2 straight ahead and the wall at 4: the centre pixel sees the box at 2,
    a corner pixel the wall at 4 (depth is camera z, not ray length)."""
    world = scenes.Scenes(
        wall_colours=torch.tensor([[[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]]]),
        wall_wave=torch.tensor([[2.0, 0.0]]),
        wall_phase=torch.zeros(1),
        box_centres=torch.tensor([[[0.0, 0.0, 2.0], [5.0, 5.0, 3.0]]]),  # second box off-frame
        box_colours=torch.tensor([[[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]]),
    )
    image, depth, _ = scenes.render(world, scenes.identity_cameras(1), 16)
    assert depth[0, 0, 8, 8] == pytest.approx(2.0)
    assert depth[0, 0, 0, 0] == pytest.approx(scenes.WALL_DEPTH)
    torch.testing.assert_close(image[0, :, 8, 8], torch.tensor([0.0, 0.0, 1.0]))
    # the box spans |X| ≤ 0.5 at Z = 2: |u − 8| ≤ 16 · 0.5 / 2 = 4 pixels around the centre
    row = depth[0, 0, 8]
    assert (row[4:12] == 2.0).all() and (row[:3] == scenes.WALL_DEPTH).all()
    # a camera moved right by 1 sees the box 16 · 1 / 2 = 8 pixels further left
    moved = scenes.Cameras(torch.eye(3)[None], torch.tensor([[1.0, 0.0, 0.0]]))
    _, moved_depth, _ = scenes.render(world, moved, 16)
    assert (moved_depth[0, 0, 8, :4] == 2.0).all() and moved_depth[0, 0, 8, 6] == 4.0


def test_visible_target_points_are_exactly_where_the_source_sees_them():
    """Casting the source camera at each visible target pixel's projection gives the target's
    colour and the point's depth exactly (the same surface point)."""
    n, size = 32, 16
    generator = torch.Generator().manual_seed(1)
    world = scenes.sample_scenes(n, generator=generator)
    cameras = scenes.sample_cameras(n, generator=generator)
    p = scenes.view_pairs(world, cameras, size)
    target, _, points = scenes.render(world, cameras, size)
    source = scenes.identity_cameras(n)
    uv, z = scenes.project(points, source, size)
    colour, depth, _ = scenes.cast(world, source, uv, size)
    visible = p.visible.reshape(n, -1)
    assert visible.float().mean() > 0.5 and (~visible).any()
    torch.testing.assert_close(depth[visible], z[visible], rtol=1e-4, atol=0)
    target_colour = target.reshape(n, 3, -1).transpose(1, 2)
    torch.testing.assert_close(colour[visible], target_colour[visible], atol=1e-4, rtol=0)


def test_disocclusion_mask_marks_hidden_and_out_of_frame_points():
    p = pairs(128, seed=2)
    n, size = len(p), 16
    # out of frame: a target point projecting outside the source is disoccluded
    K_inv = p.K_inv[0]
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    target_points = p.target_depth.reshape(n, -1, 1) * (pixels @ K_inv.T)  # target camera coords
    source_points = (target_points - p.t[:, None]) @ p.R  # R^T (X_t − t)
    uv = source_points @ p.K[0].T
    uv = uv[..., :2] / uv[..., 2:]
    outside = ((uv < 0) | (uv >= size)).any(-1).reshape(n, 1, size, size)
    assert outside.any() and not (outside & p.visible).any()
    # inside the frame, a disoccluded point lies behind what the source sees there
    behind = p.disoccluded & ~outside
    assert behind.any()
    col = uv[..., 0].floor().long().clamp(0, size - 1)
    row = uv[..., 1].floor().long().clamp(0, size - 1)
    seen = p.source_depth.reshape(n, -1).gather(1, row * size + col).reshape(n, 1, size, size)
    depth_in_source = source_points[..., 2].reshape(n, 1, size, size)
    # nearest-pixel lookup can miss at a boundary; nearly all hidden points are truly behind
    assert (seen[behind] < depth_in_source[behind] - 1e-3).float().mean() > 0.9


def test_forward_warp_with_true_depth_reproduces_the_target_where_visible():
    p = pairs(128, seed=3)
    warped = forward_warp(p.source, p.source_depth, p.R, p.t, p.K)
    landed = warped.valid & p.visible
    assert landed.float().sum() > 0.5 * p.visible.float().sum()
    error = (warped.image - p.target).abs().amax(1, keepdim=True)[landed]
    # nearest splatting lands a neighbour's colour at some pixels: nearly all match closely
    assert (error < 0.1).float().mean() > 0.85
    depth_error = (warped.depth - p.target_depth).abs()[landed] / p.target_depth[landed]
    assert (depth_error < 0.05).float().mean() > 0.85


def test_thousands_of_pairs_per_second():
    pairs(64)  # warm-up
    start = time.perf_counter()
    pairs(2000, seed=5)
    assert time.perf_counter() - start < 2.0


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        scenes.sample_pairs(4, 16, generator=0)
    with pytest.raises(ValueError, match="size must be a positive int"):
        scenes.sample_pairs(4, 0, generator=torch.Generator())
    world = scenes.sample_scenes(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="one target camera per scene"):
        scenes.view_pairs(world, scenes.identity_cameras(3))
    with pytest.raises(ValueError, match=r"uv must be \(b=2, m, 2\)"):
        scenes.cast(world, scenes.identity_cameras(2), torch.zeros(2, 5, 3), 16)
