"""The two-stream generator at tiny size: shapes, the stream switches, the deformable gate,
the windowed read/write, determinism and the promised errors."""

from dataclasses import replace

import pytest
import torch

from esser_lab.keyframe.layers import DeformableWrite, LocalRead, LocalWrite, warp_features
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator, count_parameters

TINY = KeyframeConfig.tiny()


def _inputs(b=2, f=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(b, 4, size, size, generator=g),
        torch.rand(b, f, 4, size, size, generator=g),
        torch.randn(b, f, 2, size, size, generator=g),
        torch.rand(b, f, 1, size, size, generator=g),
    )


@pytest.mark.parametrize("config", [TINY, KeyframeConfig.small()], ids=["tiny", "small"])
def test_shapes_and_range(config):
    model = KeyframeGenerator(config).eval()
    s = config.image_size
    with torch.no_grad():
        out = model(*_inputs(size=s))
    assert out.shape == (2, 3, s, s)
    assert bool((out > 0).all() and (out < 1).all())  # the official sigmoid output
    with torch.no_grad():  # any number of keyframes
        assert model(*_inputs(f=3, size=s)).shape == (2, 3, s, s)


def test_streams_remove_their_parameters_and_effect():
    counts = {}
    for streams in [(), ("global",), ("local",), ("global", "local")]:
        torch.manual_seed(0)
        model = KeyframeGenerator(replace(TINY, streams=streams)).eval()
        counts[streams] = count_parameters(model)
        image, keys, flows, errors = _inputs()
        other_keys, other_flows = torch.rand_like(keys), torch.randn_like(flows)
        with torch.no_grad():
            base = model(image, keys, flows, errors)
            new_keys = model(image, other_keys, flows, errors)
            new_flows = model(image, keys, other_flows, errors)
        # keyframes matter iff some stream is on; flows matter iff the local stream is on
        assert torch.equal(base, new_keys) == (streams == ())
        assert torch.equal(base, new_flows) == ("local" not in streams)
    w = TINY.width
    deformable = TINY.n_cross * ((2 * w + 1) * w + w + (w + 1) * w + w)
    assert counts[("local",)] - counts[()] == deformable
    assert counts[("global",)] == counts[()]  # cross attention reuses attn1's projections
    assert counts[("global", "local")] == counts[("local",)]


def test_deformable_gate_is_a_softmax_over_keyframes():
    torch.manual_seed(0)
    layer = DeformableWrite(8)
    x = torch.randn(2, 8, 4, 4)
    keys = torch.randn(2, 3, 8, 4, 4)
    flows, errors = torch.randn(2, 3, 2, 16, 16), torch.rand(2, 3, 1, 16, 16)
    weights, values = layer.gate(x, keys, flows, errors)
    assert weights.shape == values.shape == (2, 3, 8, 4, 4)
    assert torch.allclose(weights.sum(dim=1), torch.ones(2, 8, 4, 4))
    # one keyframe: the gate is 1 and the update is the value alone
    w1, v1 = layer.gate(x, keys[:, :1], flows[:, :1], errors[:, :1])
    assert torch.equal(w1, torch.ones_like(w1))
    one = layer(x, keys[:, :1], flows[:, :1], errors[:, :1])
    # a keyframe given three times is the keyframe once (equal logits: weights 1/3 each)
    triple = [t[:, :1].expand_as(t) for t in (keys, flows, errors)]
    assert torch.allclose(layer(x, *triple), one, atol=1e-5)
    # the value never sees the target's features: with one keyframe, shifting x shifts the
    # output by exactly as much (the update does not change)
    assert torch.allclose(layer(x + 1, keys[:, :1], flows[:, :1], errors[:, :1]), one + 1,
                          atol=1e-5)  # fmt: skip
    # and the flow error enters the value only as a bias: the update is affine in e
    e0, e1 = torch.zeros_like(errors[:, :1]), torch.ones_like(errors[:, :1])
    u = [layer(x, keys[:, :1], flows[:, :1], e) - x for e in (e0, e1, 2 * e1)]
    assert torch.allclose(u[2] - u[1], u[1] - u[0], atol=1e-5)


def test_warp_follows_backward_flow_at_feature_resolution():
    features = torch.arange(16.0).view(1, 1, 4, 4)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 2.0  # two image pixels to the right = one feature pixel
    warped = warp_features(features, flow)
    assert torch.equal(warped[0, 0, :, :3], features[0, 0, :, 1:])
    assert torch.equal(warped[0, 0, :, 3], torch.zeros(4))  # zero padding outside


def test_read_is_local_to_each_window_and_write_gates_by_window():
    torch.manual_seed(0)
    read = LocalRead(8, 2, heads=4)
    x = torch.randn(1, 8, 4, 4)
    z = torch.randn(1, 4, 8)
    out = read(z, x)
    changed = x.clone()
    changed[:, :, 2:, 2:] += 1  # the bottom-right window = latent 3 (row-major)
    out2 = read(z, changed)
    assert torch.allclose(out[:, :3], out2[:, :3]) and not torch.allclose(out[:, 3], out2[:, 3])
    write = LocalWrite(8, 2, heads=4).eval()
    z2 = z.clone()
    z2[:, 0] += 1  # the top-left window's latent
    a, b = write(x, z), write(x, z2)
    assert torch.allclose(a[..., 2:, :], b[..., 2:, :]) and torch.allclose(
        a[..., :, 2:], b[..., :, 2:]
    )
    assert not torch.allclose(a[..., :2, :2], b[..., :2, :2])


def test_same_seed_same_model_and_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = KeyframeGenerator(TINY).eval()
        with torch.no_grad():
            outs.append(model(*_inputs()))
    assert torch.equal(outs[0], outs[1])


def test_bad_inputs_are_named():
    model = KeyframeGenerator(TINY)
    image, keys, flows, errors = _inputs()
    with pytest.raises(ValueError, match="image must be"):
        model(image[:, :3], keys, flows, errors)
    with pytest.raises(ValueError, match="keyframes must be"):
        model(image, keys[:1], flows, errors)
    with pytest.raises(ValueError, match="keyframes must be"):
        model(image, keys[..., :8, :8], flows, errors)
    with pytest.raises(ValueError, match="flows must be"):
        model(image, keys, flows[:, :1], errors)
    with pytest.raises(ValueError, match="flow_errors must be"):
        model(image, keys, flows, None)
    with pytest.raises(ValueError, match="streams"):
        replace(TINY, streams=("global", "global"))
    with pytest.raises(ValueError, match="streams"):
        replace(TINY, streams=("temporal",))
    with pytest.raises(ValueError, match="num_latents_sqrt"):
        replace(TINY, num_latents_sqrt=3)
    with pytest.raises(ValueError, match="n_cross"):
        replace(TINY, n_cross=3)
    with pytest.raises(TypeError, match="ngf"):
        replace(TINY, ngf=16.0)


@pytest.mark.slow_paper
def test_paper_config_forward_at_256():
    """configs/ours.yaml at its training resolution, two keyframes (about 5 s on one core)."""
    torch.manual_seed(0)
    model = KeyframeGenerator(KeyframeConfig.paper()).eval()
    with torch.no_grad():
        out = model(*_inputs(b=1, f=2, size=256))
    assert out.shape == (1, 3, 256, 256) and bool(torch.isfinite(out).all())
