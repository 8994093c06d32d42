"""The book's FID-style score: the Fréchet distance and the shipped feature network."""

import pytest
import torch

from esser_lab.metrics.fid import (
    FeatureNet,
    fid_style,
    frechet_distance,
    load_feature_net,
    train_feature_net,
)
from esser_lab.weights import WeightsError


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    b = torch.randn(20000, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0]) + 1
    # independent coordinates: Σ_i (μa−μb)² + σa² + σb² − 2 σa σb
    expected = (1 + (1 - 3) ** 2) + (1 + 0)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(4, 3))


def test_shipped_network_scores_degradations_in_order():
    from esser_lab.data import sprites

    net = load_feature_net()
    g = torch.Generator().manual_seed(1)
    real = sprites.sample(512, 16, generator=g).image
    other = sprites.sample(512, 16, generator=g).image
    blurred = torch.nn.functional.avg_pool2d(other, 3, 1, 1)
    noisy = (other + 0.5 * torch.randn(other.shape, generator=g)).clamp(-1, 1)
    same = fid_style(real, other, net)
    assert same < fid_style(real, blurred, net) < fid_style(real, noisy, net)
    assert net.features(real[:4]).shape == (4, net.dim)


def test_feature_net_rejects_bad_input_and_is_deterministic():
    with pytest.raises(ValueError, match=r"\(batch, 3, h, w\)"):
        FeatureNet().features(torch.zeros(2, 1, 16, 16))
    a, b = train_feature_net(steps=2, batch_size=8), train_feature_net(steps=2, batch_size=8)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(a.features(x), b.features(x))


def test_missing_weights_file_names_the_fix(tmp_path):
    with pytest.raises(WeightsError, match="not found.*python -m esser_lab.metrics.fid"):
        load_feature_net(tmp_path / "absent.safetensors")
