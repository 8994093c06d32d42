"""The part-based network at tiny size: shapes, part statistics, errors, import hygiene."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from esser_lab.part_based import PartBased, PartBasedConfig, part_heatmaps, part_statistics


def images(config, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, config.image_size, config.image_size, generator=g) * 2 - 1


def test_paper_configuration():
    c = PartBasedConfig.paper()
    assert (c.image_size, c.part_map_size, c.n_parts, c.n_features) == (256, 64, 16, 64)
    assert (c.shape_channels, c.appearance_channels, c.L_inv_scale) == (256, 256, 0.8)
    assert (c.c_l2, c.c_trans, c.c_precision, c.learning_rate, c.batch_size) == (
        1.0,
        5.0,
        0.1,
        1e-3,
        32,
    )
    assert c.stage_layout()[:3] == [(2, (0, 2)), (4, (2, 4)), (16, (4, 16))]
    assert c.num_stages == 7 and c.stage_layout()[-1] == (16, (0, 0))


def test_presets_shrink_sizes_only():
    paper, tiny = PartBasedConfig.paper(), PartBasedConfig.tiny()
    same = [
        "n_parts",
        "c_l2",
        "c_trans",
        "c_precision",
        "L_inv_scale",
        "heatmap_precision",
        "reconstruction_scale",
        "reconstruction_threshold",
        "tps_scale",
        "hue",
        "l1",
        "covariance_heatmaps",
    ]
    for name in same:
        assert getattr(paper, name) == getattr(tiny, name), name


def test_tiny_shapes():
    config = PartBasedConfig.tiny()
    model = PartBased(config).eval()
    x = images(config)
    enc = model.encode(x)
    m, k = config.part_map_size, config.n_parts
    assert enc.part_maps.shape == (3, k, m, m)
    torch.testing.assert_close(enc.part_maps.sum((2, 3)), torch.ones(3, k))
    assert enc.mu.shape == (3, k, 2) and enc.sigma.shape == (3, k, 2, 2)
    assert enc.features.shape == (3, k, config.n_features)
    out = model.decode(enc, enc)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


def test_covariance_is_symmetric_positive_definite_and_L_inv_whitens_it():
    config = PartBasedConfig.tiny()
    logits = torch.randn(4, config.n_parts, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = (3 * logits).flatten(2).softmax(-1).view_as(logits)
    mu, sigma, L_inv = part_statistics(maps, config.L_inv_scale)
    torch.testing.assert_close(sigma, sigma.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(sigma) > 0).all()
    assert mu.abs().max() <= 1
    # L⁻¹ Σ L⁻ᵀ = scale² · I
    whitened = L_inv @ sigma @ L_inv.transpose(-1, -2)
    eye = torch.eye(2).expand_as(whitened) * config.L_inv_scale**2
    torch.testing.assert_close(whitened, eye, atol=1e-3, rtol=1e-3)


def test_part_mean_of_a_peaked_map_is_its_pixel():
    maps = torch.zeros(1, 5, 16, 16)
    maps[0, :, 3, 12] = 1.0  # row 3 (y), column 12 (x)
    mu, _, _ = part_statistics(maps, 0.8)
    torch.testing.assert_close(
        mu[0, 0], torch.tensor([(2 * 12 + 1) / 16 - 1, (2 * 3 + 1) / 16 - 1])
    )


def test_heatmap_peaks_at_the_mean():
    mu = torch.tensor([[[0.25, -0.5]]])
    heat = part_heatmaps(mu, torch.tensor(10.0), 8)  # pixel centres at ±1/8, ±3/8, ...
    peak = heat[0, 0].flatten().argmax()
    assert divmod(int(peak), 8) == (1, 4)  # y = -0.625 → row 1; x = 0.125 → column 4
    assert heat.max() <= 1


def test_covariance_heatmaps_render_sigma():
    config = replace(PartBasedConfig.tiny(), covariance_heatmaps=True)
    model = PartBased(config).eval()
    enc = model.encode(images(config))
    assert model.decode(enc, enc).shape == (3, 3, 16, 16)


def test_bad_inputs_raise_clear_errors():
    config = PartBasedConfig.tiny()
    model = PartBased(config)
    with pytest.raises(ValueError, match=r"shape \(b, 3, 16, 16\)"):
        model.encode(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        model.encode(torch.zeros(2, 3, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model.encode(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown PartBasedConfig field"):
        PartBasedConfig.from_dict({"n_part": 8})
    with pytest.raises(ValueError, match="power of two"):
        replace(config, image_size=24)
    with pytest.raises(ValueError, match="decoder_channels"):
        replace(config, decoder_channels=(8, 8))
    with pytest.raises(ValueError, match="n_parts"):
        replace(config, n_parts=4)


def test_config_round_trips_through_a_dict():
    from dataclasses import asdict

    config = PartBasedConfig.tiny()
    assert PartBasedConfig.from_dict(asdict(config)) == config


def test_model_and_method_do_not_import_lightning():
    code = (
        "import sys; import esser_lab.part_based, esser_lab.part_based.method; "
        "assert 'lightning' not in sys.modules, 'lightning imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
