"""The part-discovery networks at tiny size, the paper configuration and input checks."""

from dataclasses import asdict

import pytest
import torch

from esser_lab.part_discovery import (
    FullGaussian,
    PartDiscovery,
    PartDiscoveryConfig,
    Staircase,
    hard_one_hot,
    unpool,
)
from esser_lab.training import load_checkpoint, save_checkpoint


def views(config: PartDiscoveryConfig, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = config.image_size
    return tuple(torch.rand(b, 3, s, s, generator=g) * 2 - 1 for _ in range(2))


def test_paper_configuration():
    c = PartDiscoveryConfig.paper()
    assert (c.image_size, c.num_parts, c.pi_size, c.appearance_size) == (128, 25, 256, 64)
    assert (c.learning_rate, c.batch_size, c.num_steps) == (2e-4, 8, 500_000)
    assert c.encoder_channels == (32, 64, 128, 128, 256, 256) and c.encoder_extra_blocks == 4
    assert (c.mi_target, c.mi_slack, c.loa_lr, c.lor_lr, c.lor_max) == (2.0, 0.5, 4.0, 0.05, 7.5)
    assert c.likelihood == "vgg19" and c.mi_constraint
    # the yaml's schedules: constant where clip_min == clip_max, staircases elsewhere
    assert c.gmrf_weight(0) == c.gmrf_weight(400_000) == 1e-3
    assert c.mumford_shah_weight(123) == 1e-6
    assert c.variance_weight(0) == 1.0 and c.variance_weight(81_000) == 10.0
    assert c.variance_weight(500_000) == 1e5
    assert c.hard_ce_weight(41_000) == 1.0 and c.hard_ce_weight(41_001) == 1e3


def test_presets_shrink_sizes_and_rescale_schedules():
    paper, tiny = PartDiscoveryConfig.paper(), PartDiscoveryConfig.tiny()
    fraction = tiny.num_steps / paper.num_steps
    assert tiny.variance_weight.start == round(41_000 * fraction)
    assert tiny.variance_weight.factor == paper.variance_weight.factor
    assert tiny.mi_target == paper.mi_target and tiny.lor_init == paper.lor_init
    assert tiny.hard_ce_weight.start == tiny.num_steps // 2  # tiny's curriculum: a late step
    assert tiny.reconstruction_weight == 10.0 and paper.reconstruction_weight == 1.0


def test_staircase_rescaled_endpoints():
    s = Staircase(100, 1.0, 10, 10.0, 1.0, 1e3).rescaled(0.1)
    assert (s.start, s.step_size) == (10, 1)
    assert s(0) == 1.0 and s(10) == 1.0 and s(12) == 100.0 and s(10**6) == 1e3


def test_tiny_shapes_and_hard_masks():
    config = PartDiscoveryConfig.tiny()
    model = PartDiscovery(config)
    x0, x1 = views(config)
    out = model(x0, x1)
    k, s = config.num_parts, config.image_size
    assert out.image.shape == (2, 3, s, s)
    assert out.layout0.logits.shape == out.layout1.hard.shape == (2, k, s, s)
    assert out.part_features.shape == (2, k, config.appearance_size)
    hard = out.layout0.hard.detach()
    assert torch.allclose(hard.sum(1), torch.ones(2, s, s))
    assert ((hard - hard.round()).abs() < 1e-6).all()


def test_straight_through_gradient_is_identity():
    p = torch.rand(3, 4, 5, 5).softmax(1).requires_grad_()
    weights = torch.randn(3, 4, 5, 5)
    (hard_one_hot(p) * weights).sum().backward()
    assert torch.allclose(p.grad, weights)


def test_unpool_paints_features_into_mask():
    mask = torch.zeros(1, 2, 2, 2)
    mask[0, 0, 0], mask[0, 1, 1] = 1.0, 1.0  # part 0 on row 0, part 1 on row 1
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (b, K, d)
    out = unpool(features, mask)
    assert torch.equal(out[0, :, 0, 0], torch.tensor([1.0, 2.0]))
    assert torch.equal(out[0, :, 1, 1], torch.tensor([3.0, 4.0]))


def test_full_gaussian_kl_against_torch():
    g = torch.Generator().manual_seed(0)
    params = torch.randn(2, FullGaussian.num_parameters(3), generator=g) * 0.5
    q = FullGaussian.from_parameters(params, 3)
    reference = torch.distributions.MultivariateNormal(q.mean, scale_tril=q.scale_tril)
    prior = torch.distributions.MultivariateNormal(torch.zeros(3), torch.eye(3))
    expected = torch.distributions.kl_divergence(reference, prior)
    assert torch.allclose(q.kl(), expected, atol=1e-5)


def test_same_seed_same_model_and_eval_is_deterministic():
    config = PartDiscoveryConfig.tiny()
    torch.manual_seed(0)
    a = PartDiscovery(config).eval()
    torch.manual_seed(0)
    b = PartDiscovery(config).eval()
    x0, x1 = views(config)
    with torch.no_grad():
        assert torch.equal(a(x0, x1).image, b(x0, x1).image)
        assert torch.equal(a.layout(x0).labels, a.layout(x0).labels)


def test_bad_inputs():
    config = PartDiscoveryConfig.tiny()
    model = PartDiscovery(config)
    x0, x1 = views(config)
    with pytest.raises(ValueError, match="shape"):
        model.layout(x0[:, :, :8])
    with pytest.raises(TypeError, match="floating-point"):
        model.layout(x0.long())
    with pytest.raises(ValueError, match="views differ"):
        model(x0, x1[:1])
    with pytest.raises(ValueError, match="image_size"):
        PartDiscoveryConfig(image_size=96)
    with pytest.raises(ValueError, match="likelihood"):
        PartDiscoveryConfig(likelihood="l1")


def test_checkpoint_round_trip(tmp_path):
    config = PartDiscoveryConfig.tiny()
    model = PartDiscovery(config).eval()
    path = save_checkpoint(model, tmp_path / "parts.safetensors", asdict(config))
    restored = PartDiscovery(config).eval()
    assert PartDiscoveryConfig.from_dict(load_checkpoint(restored, path)) == config
    x0, x1 = views(config)
    with torch.no_grad():
        assert torch.equal(model(x0, x1).image, restored(x0, x1).image)
