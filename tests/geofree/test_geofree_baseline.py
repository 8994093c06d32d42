"""The explicit baseline (warp + hole filling), the Lightning systems and the schedule."""

import pytest
import torch
from torch.utils.data import DataLoader

from esser_lab import scale as scales
from esser_lab.data import scenes
from esser_lab.data.modules import BatchIndexSampler, TensorBatches
from esser_lab.geofree.baseline import DepthErrorModel, ExplicitBaseline, HoleFiller
from esser_lab.geofree.training import LitExplicitBaseline, LitGeoTransformer, warmup_cosine
from esser_lab.geofree.warp import forward_warp
from esser_lab.training.trainer import make_trainer


def test_warp_with_the_identity_camera_is_the_identity(pairs):
    b = len(pairs)
    warped = forward_warp(pairs.source, pairs.source_depth, torch.eye(3).expand(b, 3, 3),
                          torch.zeros(b, 3), pairs.K)  # fmt: skip
    assert warped.valid.all()
    torch.testing.assert_close(warped.image, pairs.source)
    torch.testing.assert_close(warped.depth, pairs.source_depth)


def test_warp_z_buffer_keeps_the_nearest():
    """Two source pixels landing in one target pixel: the nearer one's colour wins."""
    image = torch.tensor([[[[1.0, -1.0]]]]).expand(1, 3, 1, 2).clone()  # (1, 3, 1, 2)
    depth = torch.tensor([[[[1.0, 2.0]]]])
    K = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    # shift so that pixel 0 (depth 1) moves by 2·t/1 and pixel 1 (depth 2) by 2·t/2: with
    # t = 1 pixel 0 lands at u = 0.5 + 2 = 2.5 (outside), pixel 1 at 1.5 + 1 = 2.5 (outside) ...
    # with t = 0.5: pixel 0 → 1.5 (pixel 1), pixel 1 → 2.0 (outside); then move pixel 1 closer
    warped = forward_warp(image, depth, torch.eye(3)[None], torch.tensor([[0.5, 0.0, 0.0]]), K)
    assert warped.valid[0, 0, 0].tolist() == [False, True]
    assert warped.image[0, 0, 0, 1] == 1.0
    depth_equal = torch.tensor([[[[1.0, 1.0]]]])  # both at depth 1: pixel 0 → 1.5, pixel 1 → 2.5
    both = forward_warp(image, depth_equal, torch.eye(3)[None], torch.tensor([[0.5, 0, 0]]), K)
    assert both.image[0, 0, 0, 1] == 1.0
    near = torch.tensor([[[[2.0, 4.0]]]])  # pixel 0 moves 0.5, pixel 1 moves 0.25
    shifted = forward_warp(image, near, torch.eye(3)[None], torch.tensor([[1.0, 0, 0]]), K)
    # pixel 0 → 1.5 (depth 2), pixel 1 → 2.0 (outside)
    assert shifted.valid[0, 0, 0].tolist() == [False, True] and shifted.depth[0, 0, 0, 1] == 2.0


def test_depth_error_model_is_seeded_and_of_the_stated_size(pairs):
    model = DepthErrorModel()
    a = model(pairs.source_depth, torch.Generator().manual_seed(0))
    b = model(pairs.source_depth, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and (a > 0).all()
    many = scenes.sample_pairs(256, 16, generator=torch.Generator().manual_seed(1)).source_depth
    estimate = model(many, torch.Generator().manual_seed(2))
    relative = ((estimate - many).abs() / many).mean()
    assert 0.08 < relative < 0.3  # AbsRel of monocular estimators, the module's stated range
    exact = DepthErrorModel(log_scale_sd=0.0, smooth_sd=0.0, blur=1)(many)
    assert torch.equal(exact, many)
    with pytest.raises(ValueError, match="odd"):
        DepthErrorModel(blur=2)


def test_hole_filler_and_baseline_shapes(pairs):
    filler = HoleFiller(8)
    out = filler(pairs.source, torch.ones(8, 1, 16, 16, dtype=torch.bool))
    assert out.shape == (8, 3, 16, 16)
    baseline = ExplicitBaseline(width=8)
    assert baseline(pairs.source, pairs.source_depth, pairs.camera).shape == (8, 3, 16, 16)


def test_warmup_cosine_endpoints():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)


def loader(pairs, batch_size=4):
    data = TensorBatches({k: getattr(pairs, k) for k in ("source", "target", "source_depth",
                                                           "R", "t", "K", "K_inv")})  # fmt: skip
    return DataLoader(data, sampler=BatchIndexSampler(len(data), batch_size, shuffle=True, seed=0),
                      batch_size=None)  # fmt: skip


def test_both_systems_train_through_the_book_trainer(model, pairs):
    profile = scales.profile("tiny")
    lit = LitGeoTransformer(model, total_steps=6)
    make_trainer(profile, 6, progress_every=100).fit(lit, train_dataloaders=loader(pairs))
    assert len(lit.history) == 6
    # one batch of all eight pairs, seen again and again: the L1 loss falls
    explicit = LitExplicitBaseline(ExplicitBaseline(width=8), 3e-3, 1, 10)
    make_trainer(profile, 10, progress_every=100).fit(explicit, train_dataloaders=loader(pairs, 8))
    losses = [float(h["loss"]) for h in explicit.history]
    assert len(losses) == 10 and sum(losses[-3:]) < sum(losses[:3]) - 0.01


def test_systems_refuse_bad_inputs(model):
    with pytest.raises(TypeError, match="GeoTransformer"):
        LitGeoTransformer(torch.nn.Linear(1, 1), 5)
    with pytest.raises(TypeError, match="ExplicitBaseline"):
        LitExplicitBaseline(HoleFiller(), 1e-3, 1, 5)
    lit = LitGeoTransformer(model, 5)
    with pytest.raises(ValueError, match="a batch is a dict with keys"):
        lit.training_step({"source": torch.zeros(1)}, 0)


def _batch(pairs, model):
    batch = {k: getattr(pairs, k) for k in ("source", "target", "source_depth", "R", "t", "K")}
    batch["K_inv"] = pairs.K_inv
    batch["source_codes"] = model.encode_to_z(pairs.source)
    batch["target_codes"] = model.encode_to_z(pairs.target)
    return batch


def test_the_transformer_scales_t_by_the_estimated_depth(model, pairs):
    """α of (G3) comes from the baseline's noisy depth model: exact depth only when error-free."""
    batch = _batch(pairs, model)
    exact = LitGeoTransformer(model, 5, depth_error=None).training_step(batch, 0)
    error_free = DepthErrorModel(log_scale_sd=0.0, smooth_sd=0.0, blur=1)
    same = LitGeoTransformer(model, 5, depth_error=error_free).training_step(batch, 0)
    torch.manual_seed(0)
    noisy = LitGeoTransformer(model, 5).training_step(batch, 0)
    torch.testing.assert_close(same, exact)
    assert abs(float(noisy) - float(exact)) > 1e-6  # same model and batch: only α differs
    with pytest.raises(TypeError, match="DepthErrorModel or None"):
        LitGeoTransformer(model, 5, depth_error="midas")


def test_test_time_camera_uses_the_depth_the_baseline_warps_with(pairs):
    from esser_lab.geofree.chapter import estimated_camera
    from esser_lab.geofree.method import normalize_scale

    depth = ExplicitBaseline().depth_error(pairs.source_depth, torch.Generator().manual_seed(3))
    expected = normalize_scale(pairs.camera, depth)["t"]
    torch.testing.assert_close(estimated_camera(pairs, seed=3)["t"], expected)
    exact = estimated_camera(pairs, seed=3, depth_error=None)["t"]
    assert not torch.allclose(exact, expected)


def test_the_camera_embedder_is_not_decayed(model):
    optimizer = LitGeoTransformer(model, 5).configure_optimizers()["optimizer"]
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay_of[id(model.emb_stage_model.fc.weight)] == 0.0
    assert decay_of[id(model.transformer.blocks[0].mlp[0].weight)] == model.config.weight_decay
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay_of) == len(trainable)
