"""The VUNet network at tiny size (and the paper configuration's derived sizes)."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from esser_lab.vunet import VUNet, VUNetConfig
from esser_lab.vunet.layers import (
    WNConv2d,
    data_dependent_init,
    elu,
    merge_groups,
    space_to_depth,
    split_groups,
)
from esser_lab.vunet.model import LatentPrior


def inputs(config: VUNetConfig, b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = config.image_size
    shape = torch.rand(b, config.shape_channels, s, s, generator=g)
    crops = torch.rand(b, 3 * config.num_boxes, config.crop_size, config.crop_size, generator=g)
    return shape, crops


def test_paper_configuration_sizes():
    c = VUNetConfig.paper()
    assert (c.image_size, c.num_scales, c.encoder_scales, c.crop_size) == (256, 7, 5, 64)
    assert [c.channels(s) for s in range(c.num_scales)] == [32, 64, 128, 128, 128, 128, 128]
    assert (c.likelihood, c.likelihood_weight, c.betas, c.dropout) == (
        "vgg19",
        5.0,
        (0.5, 0.9),
        0.1,
    )


def test_paper_model_latent_shapes():
    config = VUNetConfig.paper()
    model = VUNet(config).eval()
    assert 40e6 < sum(p.numel() for p in model.parameters()) < 60e6
    shape, crops = inputs(config, b=1)
    with torch.no_grad():
        out = model(shape, crops, sample=False)
    assert out.image.shape == (1, 3, 256, 256)
    assert [tuple(m.shape) for m in out.posterior_means] == [(1, 128, 4, 4), (1, 128, 8, 8)]
    assert [tuple(m.shape) for m in out.prior_means] == [(1, 128, 4, 4), (1, 128, 8, 8)]


def test_tiny_shapes_and_baseline():
    config = VUNetConfig.tiny()
    shape, crops = inputs(config)
    out = VUNet(config)(shape, crops)
    assert out.image.shape == (3, 3, 16, 16)
    assert [tuple(m.shape[1:]) for m in out.posterior_means] == [(16, 4, 4), (16, 8, 8)]
    baseline = VUNet(config.without_appearance())
    assert baseline.appearance_encoder is None
    out = baseline(shape, None)
    assert out.image.shape == (3, 3, 16, 16) and out.posterior_means == []


def test_fast_elu_matches_torch_in_value_and_gradient():
    # both signs, zero, tiny and large magnitudes (exp of large negatives underflows to 0: fine)
    x = torch.cat([torch.randn(4096) * 3, torch.tensor([0.0, 1e-8, -1e-8, -80.0, 80.0])])
    x64 = x.double().requires_grad_()
    reference = torch.nn.functional.elu(x64)
    reference.backward(torch.ones_like(reference))
    ours_x = x.clone().requires_grad_()
    ours = elu(ours_x)
    ours.backward(torch.ones_like(ours))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), reference.detach(), atol=2e-7, rtol=1e-6)
    torch.testing.assert_close(ours_x.grad.double(), x64.grad, atol=2e-7, rtol=1e-6)
    assert torch.equal(elu(torch.tensor([2.0, -0.0])), torch.tensor([2.0, 0.0]))  # identity above 0


def test_groups_round_trip():
    z = torch.randn(2, 5, 8, 8)
    assert torch.equal(merge_groups(split_groups(z)), z)
    assert space_to_depth(z).shape == (2, 20, 4, 4)
    # group k of split_groups is the k-th block of 5 channels of space_to_depth
    assert torch.equal(split_groups(z)[1], space_to_depth(z)[:, 5:10])


def test_prior_is_autoregressive_over_groups():
    torch.manual_seed(0)
    prior = LatentPrior(channels=4, spatial=8, dropout=0.0).eval()
    h = torch.randn(2, 4, 8, 8)
    z = torch.randn(2, 4, 8, 8)
    groups = split_groups(z)
    groups[2] = groups[2] + 1.0  # change group 2 only
    z_changed = merge_groups(groups)
    mean, _ = prior(h, z)
    mean_changed, _ = prior(h, z_changed)
    before, after = split_groups(mean), split_groups(mean_changed)
    for k in range(3):  # groups 0..2 never see group 2
        assert torch.allclose(before[k], after[k])
    assert not torch.allclose(before[3], after[3])  # group 3 is conditioned on it


def test_data_dependent_init_normalises_outputs():
    torch.manual_seed(0)
    layer = WNConv2d(3, 6)
    x = torch.randn(16, 3, 8, 8) * 4 + 2
    with data_dependent_init(layer):
        y = layer(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(6), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(6), atol=1e-3)
    assert not layer.initialising
    y2 = layer(x)  # a second pass no longer re-initialises
    assert torch.allclose(y, y2, atol=1e-5)


def test_same_seed_same_sample():
    config = VUNetConfig.tiny()
    model = VUNet(config).eval()
    shape, _ = inputs(config)
    a = model.sample(shape, generator=torch.Generator().manual_seed(7))
    b = model.sample(shape, generator=torch.Generator().manual_seed(7))
    c = model.sample(shape, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_posterior_mean_decoding_is_deterministic():
    config = VUNetConfig.tiny()
    model = VUNet(config).eval()
    shape, crops = inputs(config)
    assert torch.equal(
        model(shape, crops, sample=False).image, model(shape, crops, sample=False).image
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda c: (torch.rand(2, 4, 32, 32), torch.rand(2, 24, 8, 8)), "shape must have shape"),
        (lambda c: (torch.rand(2, 3, 16, 16), torch.rand(2, 24, 8, 8)), r"\(b, 4, 16, 16\)"),
        (lambda c: (torch.rand(2, 4, 16, 16), torch.rand(2, 12, 8, 8)), "appearance must have"),
        (lambda c: (torch.rand(2, 4, 16, 16), torch.rand(3, 24, 8, 8)), "batch sizes differ"),
        (lambda c: (torch.rand(2, 4, 16, 16), None), "pass the part crops"),
    ],
)
def test_bad_inputs_are_named(make, match):
    model = VUNet(VUNetConfig.tiny())
    shape, crops = make(None)
    with pytest.raises(ValueError, match=match):
        model(shape, crops)


def test_integer_input_is_rejected():
    model = VUNet(VUNetConfig.tiny())
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 4, 16, 16, dtype=torch.uint8), torch.rand(2, 24, 8, 8))


def test_config_validation_and_unknown_fields():
    with pytest.raises(ValueError, match="unknown VUNetConfig field"):
        VUNetConfig.from_dict({"image_size": 16, "num_latent_scale": 2})
    with pytest.raises(ValueError, match="power of two"):
        VUNetConfig(image_size=48)
    with pytest.raises(ValueError, match="num_latent_scales"):
        replace(VUNetConfig.tiny(), num_latent_scales=3)
    with pytest.raises(ValueError, match="even"):
        VUNetConfig(num_residual_blocks=3)
    round_trip = VUNetConfig.from_dict(VUNetConfig.tiny().__dict__)
    assert round_trip == VUNetConfig.tiny()


def test_model_module_does_not_import_lightning():
    code = (
        "import sys, esser_lab.vunet.model, esser_lab.vunet.method, esser_lab.vunet; "
        "print('lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
