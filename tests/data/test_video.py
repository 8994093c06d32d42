"""esser_lab.data.video: procedural clips with exact depth, masks, motion and flow."""

import pytest
import torch

from esser_lab.data import sprites
from esser_lab.data.video import SHAPES, flow_between, sample_clips, warp


def clips(n=64, seed=0, **kwargs):
    return sample_clips(n, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_shapes_ranges_and_content_code():
    c = clips(frames=6, size=16, objects=2)
    assert c.video.shape == (64, 6, 3, 16, 16) and c.video.dtype == torch.float32
    assert c.depth.shape == (64, 6, 1, 16, 16) and c.mask.shape == (64, 6, 2, 16, 16)
    assert c.video.min() >= -1 and c.video.max() <= 1
    assert c.shape.max() < len(SHAPES) and (c.colour[:, 0] != c.colour[:, 1]).all()
    d = len(sprites.COLOURS) + len(sprites.TEXTURES)
    assert c.content.shape == (64, 2 * d) and (c.content.sum(-1) == 4).all()
    assert (c.content[:, :d].argmax(-1)[:, None] == torch.stack([c.colour[:, 0]], 1)).all()
    assert c[3:5].video.shape[0] == 2  # sub-batching


def test_same_seed_same_clips_other_seed_other_clips():
    a, b, other = clips(seed=3), clips(seed=3), clips(seed=4)
    assert torch.equal(a.video, b.video) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.video, other.video)


def test_motion_is_constant_velocity_and_matches_the_masks():
    c = clips(n=128, objects=1, size=32, frames=8)
    t = torch.arange(8).view(1, 8, 1, 1).float()
    assert torch.allclose(c.position, c.position[:, :1] + t * c.velocity[:, None], atol=1e-5)
    # one object: its mask's centroid is its centre, up to the pixel grid and the texture-free edge
    mask = c.mask[:, :, 0].float()
    centre = (torch.arange(32).float() + 0.5) / 32
    area = mask.sum((-1, -2))
    cx = (mask.sum(-2) * centre).sum(-1) / area
    cy = (mask.sum(-1) * centre).sum(-1) / area
    err = torch.stack([cx, cy], -1) - c.position[:, :, 0]
    assert err.abs().max() < 0.5 / 32 + 1e-4
    assert (c.position >= 0).all() and (c.position <= 1).all()


def test_depth_ordering_the_nearer_object_is_drawn_on_top():
    c = clips(n=256, objects=3, size=16)
    assert not (c.mask.sum(2) > 1).any()  # visible masks are disjoint
    depth = c.depth[:, :, 0]
    for k in range(3):
        on = c.mask[:, :, k]
        expected = c.object_depth[:, k].view(-1, 1, 1, 1).expand_as(depth)
        assert torch.equal(depth[on], expected[on])
    assert (depth[~c.mask.any(2)] == 1).all()
    # every pixel shows the nearest object whose disc / square covers it (computed here from the
    # factors), else the background
    centre = torch.arange(16).float() + 0.5
    dx = centre.view(1, 1, 1, 1, 16) - c.position[..., 0, None, None] * 16  # (n, T, K, 1, W)
    dy = centre.view(1, 1, 1, 16, 1) - c.position[..., 1, None, None] * 16
    r = (c.radius * 16).view(256, 1, 3, 1, 1)
    square = (c.shape == SHAPES.index("square")).view(256, 1, 3, 1, 1)
    covers = torch.where(square, torch.maximum(dx.abs(), dy.abs()) < 0.85 * r, dx**2 + dy**2 < r**2)
    near = torch.where(covers, c.object_depth.view(256, 1, 3, 1, 1), torch.tensor(2.0))
    nearest = near.argmin(2) + 1
    expected = torch.where(covers.any(2), nearest, torch.zeros_like(nearest))
    assert (expected == c.label()).float().mean() > 0.999  # float ties at shape edges aside
    assert int((covers.sum(2) > 1).sum()) > 100  # overlaps occur, so the order was tested


def test_flow_is_the_visible_layers_velocity_and_warping_rebuilds_the_target():
    c = clips(n=128, size=16, frames=8)
    flow, valid = flow_between(c, 2, 6)
    label = c.label()[:, 2]
    layers = torch.cat([c.camera[:, None], c.velocity], 1) * 16 * 4  # (n, 1 + K, 2) pixels
    for layer in range(3):
        on = label == layer
        expected = layers[:, layer, :, None, None].expand(-1, -1, 16, 16)
        assert torch.allclose(flow.permute(1, 0, 2, 3)[:, on], expected.permute(1, 0, 2, 3)[:, on])
    err = (warp(c.video[:, 6], flow) - c.video[:, 2]).abs().mean(1, keepdim=True)
    assert 0.2 < valid.float().mean() < 1
    assert err[valid].mean() < 0.1 < err[~valid].mean()  # occluded / revealed points differ
    same, v_same = flow_between(c, 4, 4)
    assert (same == 0).all() and v_same.all()
    # per-clip key frames
    key = torch.randint(0, 8, (128,), generator=torch.Generator().manual_seed(1))
    f_key, _ = flow_between(c, 0, key)
    assert torch.allclose(f_key[5:6], flow_between(c[5], 0, int(key[5]))[0])


def test_warp_is_exact_on_a_ramp_and_an_integer_shift():
    x = (torch.arange(8).float() + 0.5).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.5
    out = warp(x.contiguous(), flow)
    assert torch.allclose(out[..., :6], x[..., :6] + 1.5)  # inside: bilinear is exact on a ramp
    img = torch.randn(1, 3, 8, 8)
    shift = torch.zeros(1, 2, 8, 8)
    shift[:, 1] = -2.0
    assert torch.allclose(warp(img, shift)[..., 2:, :], img[..., :-2, :], atol=1e-6)


def test_bad_input_is_named():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="generator"):
        sample_clips(4, generator=0)
    with pytest.raises(ValueError, match="objects"):
        sample_clips(4, objects=7, generator=g)
    with pytest.raises(ValueError, match="frames"):
        sample_clips(4, frames=0, generator=g)
    c = clips(n=4)
    with pytest.raises(ValueError, match="key must index frames"):
        flow_between(c, 0, 8)
    with pytest.raises(ValueError, match=r"target must be an int or a \(4,\) long tensor"):
        flow_between(c, torch.zeros(3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="flow"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
