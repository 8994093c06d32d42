"""Chapter 11's model and method: stage shapes, the estimator adapter against the official
formula, a loss that falls, determinism, errors, checkpoint round trip."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from esser_lab.data import cue_conflict as cc
from esser_lab.shape_texture import (
    ShapeTextureConfig,
    ShapeTextureNet,
    classification_loss,
    dims_per_stage,
    shape_texture_dims,
)
from esser_lab.shape_texture.training import DimsOverTraining, LitShapeTexture


def _official_dim_est(za: np.ndarray, zb: np.ndarray, factors: np.ndarray) -> list[int]:
    """The official dim_estimation/utils.py::dim_est, restated from its description (facts only)."""
    zall = np.concatenate([za, zb], 0)
    var = np.sum(np.mean((zall - zall.mean(0, keepdims=True)) ** 2, 0))
    scores = []
    for f in (0, 1):
        a, b = za[factors == f], zb[factors == f]
        mean = 0.5 * (a.mean(0, keepdims=True) + b.mean(0, keepdims=True))
        scores.append(np.sum(np.mean((a - mean) * (b - mean), 0)) / var)
    scores.append(1.0)
    e = np.exp(np.array(scores) - max(scores))
    dims = [int(s * za.shape[1]) for s in e / e.sum()]
    dims[-1] = za.shape[1] - sum(dims[:-1])
    return dims


def test_the_adapter_equals_the_official_formula():
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(40, 12, generator=g), torch.randn(40, 12, generator=g)
    factor = torch.arange(40) % 2
    zb[factor == 0] = za[factor == 0] + 0.3 * zb[factor == 0]  # shape pairs co-vary
    est = shape_texture_dims(za, zb, factor)
    assert list(est.dims) == _official_dim_est(za.numpy(), zb.numpy(), factor.numpy())
    assert sum(est.dims) == 12 and est.scores[2] == 1.0


def test_pairs_sharing_everything_give_that_factor_the_dimensions():
    g = torch.Generator().manual_seed(1)
    za = torch.randn(200, 16, generator=g)
    zb = torch.randn(200, 16, generator=g)
    factor = torch.arange(200) % 2
    zb_shape = torch.where((factor == 0)[:, None], za, zb)  # shape pairs identical
    est = shape_texture_dims(za, zb_shape, factor)
    assert est.dims[0] > est.dims[1] and est.scores[0] > 0.9  # cov = var: a score near 1
    zb_texture = torch.where((factor == 1)[:, None], za, zb)
    est = shape_texture_dims(za, zb_texture, factor)
    assert est.dims[1] > est.dims[0]


def test_stages_have_the_configured_shapes():
    config = ShapeTextureConfig.tiny()
    model = ShapeTextureNet(config)
    x = torch.randn(2, 3, 16, 16)
    maps = model.feature_maps(x)
    assert [m.shape[1] for m in maps] == list(config.feature_dims)
    assert [m.shape[-1] for m in maps] == [16, 16, 8, 4, 2]
    assert [f.shape for f in model.stage_features(x)] == [(2, c) for c in config.feature_dims]
    assert model(x).shape == (2, 4)
    assert config.stage_names == ("res1", "res2", "res3", "res4", "res5")


def test_loss_falls_on_one_batch_and_same_seed_same_result():
    s = cc.sample(32, 16, generator=torch.Generator().manual_seed(0))

    def run() -> list[float]:
        torch.manual_seed(0)
        model = ShapeTextureNet(ShapeTextureConfig.tiny())
        optimizer = torch.optim.Adam(model.parameters(), 1e-2)
        losses = []
        for _ in range(15):
            loss = classification_loss(model(s.image), s.shape)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    first = run()
    assert first[-1] < 0.5 * first[0]
    assert first == run()


def test_bad_input_is_named():
    model = ShapeTextureNet(ShapeTextureConfig.tiny())
    with pytest.raises(ValueError, match=r"\(b, 3, h, w\)"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="labels"):
        classification_loss(torch.randn(2, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="ShapeTextureConfig"):
        ShapeTextureNet({"architecture": "resnet"})
    with pytest.raises(ValueError, match="one entry per stage"):
        ShapeTextureConfig.tiny().__class__(architecture="resnet", stage_channels=(8,))
    with pytest.raises(ValueError, match="ResNet-50"):
        ShapeTextureConfig(stem_channels=8)
    with pytest.raises(ValueError, match="factor"):
        shape_texture_dims(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, 1))
    with pytest.raises(TypeError, match="ShapeTextureNet"):
        LitShapeTexture(torch.nn.Linear(2, 2))
    pairs = cc.factor_pairs(8, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="positive"):
        DimsOverTraining(pairs, [0])


def test_checkpoint_round_trip(tmp_path):
    model = ShapeTextureNet(ShapeTextureConfig.tiny())
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = ShapeTextureNet(ShapeTextureConfig.tiny())
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True), strict=True)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model.eval()(x), other.eval()(x))


def test_dims_per_stage_covers_every_stage():
    model = ShapeTextureNet(ShapeTextureConfig.tiny())
    pairs = cc.factor_pairs(64, 16, generator=torch.Generator().manual_seed(0))
    dims = dims_per_stage(model, pairs)
    assert [d.stage for d in dims] == ["res1", "res2", "res3", "res4", "res5"]
    assert [d.width for d in dims] == list(model.config.feature_dims)
    assert all(0 <= d.shape_fraction <= 1 for d in dims)

    # the same pairs in chunks, through small batches: the same estimate
    def part(r, s):
        return type(r)(**{f.name: getattr(r, f.name)[s] for f in fields(r)})

    halves = [
        cc.CuePairs(part(pairs.a, s), part(pairs.b, s), pairs.factor[s])
        for s in (slice(0, 40), slice(40, 64))
    ]
    chunked = dims_per_stage(model, iter(halves), batch_size=16)
    assert [(d.shape, d.texture) for d in chunked] == [(d.shape, d.texture) for d in dims]
    with pytest.raises(ValueError, match="at least one pair"):
        dims_per_stage(model, iter([]))


@pytest.mark.slow_paper
def test_paper_config_is_torchvision_resnet50():
    config = ShapeTextureConfig.paper()
    with torch.device("meta"):
        model = ShapeTextureNet(config)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    assert config.feature_dims == (64, 256, 512, 1024, 2048)
