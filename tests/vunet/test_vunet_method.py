"""The VUNet method: part crops, schedules, the loss, transfer, checkpoints, LitVUNet."""

from dataclasses import replace

import pytest
import torch

from esser_lab.data import figures
from esser_lab.nn import placement
from esser_lab.training import load_checkpoint, save_checkpoint
from esser_lab.vunet import (
    PartBox,
    VUNet,
    VUNetConfig,
    figure_boxes,
    kl_weight,
    learning_rate_factor,
    normalize_parts,
    transfer,
    vunet_loss,
)
from esser_lab.vunet.layers import data_dependent_init


def test_crop_follows_the_segment():
    image = torch.zeros(1, 3, 32, 32)
    image[:, 0, :, :16] = 1.0  # left half red
    image[:, 2, :, 16:] = 1.0  # right half blue
    keypoints = torch.tensor([[[0.1, 0.5], [0.4, 0.5], [0.6, 0.5], [0.9, 0.5]]])
    crops = normalize_parts(
        image, keypoints, [PartBox((0,), (1,), 0.5), PartBox((2,), (3,), 0.5)], 8
    )
    assert crops.shape == (1, 6, 8, 8)
    assert torch.allclose(crops[0, 0], torch.ones(8, 8)) and crops[0, 2].abs().max() == 0
    assert torch.allclose(crops[0, 5], torch.ones(8, 8)) and crops[0, 3].abs().max() == 0


def test_crop_is_rotation_normalised():
    """A limb along x and the same limb along y give the same crop (in-plane normalisation)."""
    image = torch.full((1, 3, 32, 32), -1.0)
    image[:, :, 14:18, 4:28] = 1.0  # a horizontal bar
    rotated = image.transpose(2, 3)  # the same bar, vertical
    box = [PartBox((0,), (1,), 0.3)]
    horizontal = normalize_parts(image, torch.tensor([[[0.15, 0.5], [0.85, 0.5]]]), box, 8)
    vertical = normalize_parts(rotated, torch.tensor([[[0.5, 0.15], [0.5, 0.85]]]), box, 8)
    assert torch.allclose(horizontal, vertical.flip(-2), atol=1e-5) or torch.allclose(
        horizontal, vertical, atol=1e-5
    )


def test_crop_errors():
    with pytest.raises(ValueError, match="image must have shape"):
        normalize_parts(torch.rand(1, 4, 8, 8), torch.rand(1, 2, 2), [PartBox((0,), (1,))], 4)
    with pytest.raises(ValueError, match="keypoints must have shape"):
        normalize_parts(torch.rand(2, 3, 8, 8), torch.rand(1, 2, 2), [PartBox((0,), (1,))], 4)
    with pytest.raises(ValueError, match="joints outside"):
        normalize_parts(torch.rand(1, 3, 8, 8), torch.rand(1, 2, 2), [PartBox((0,), (5,))], 4)


def test_schedules_match_the_official_code():
    c = VUNetConfig.paper()
    assert kl_weight(0, c) == pytest.approx(1e-6)
    assert kl_weight(50_000, c) == pytest.approx(1e-6)
    assert kl_weight(62_500, c) == pytest.approx(0.5, abs=1e-5)
    assert kl_weight(75_000, c) == pytest.approx(1.0) and kl_weight(99_999, c) == pytest.approx(1.0)
    assert learning_rate_factor(0, c) == 1.0 and learning_rate_factor(1_000, c) == 1.0
    assert learning_rate_factor(50_500, c) == pytest.approx(0.5)
    assert learning_rate_factor(100_000, c) == 0.0


def batch(config: VUNetConfig, n: int = 16, seed: int = 0):
    f = figures.sample(n, config.image_size, generator=torch.Generator().manual_seed(seed))
    crops = normalize_parts(f.image, f.keypoints, figure_boxes(), config.crop_size)
    return f, crops


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    config = replace(VUNetConfig.tiny(), dropout=0.0)
    model = VUNet(config)
    f, crops = batch(config)
    with torch.no_grad(), data_dependent_init(model):
        model(f.stickman, crops)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=config.betas)
    losses = []
    for _ in range(40):
        terms = vunet_loss(model, f.image, f.stickman, crops, step=0)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        losses.append(terms.likelihood.item())
    assert losses[-1] < 0.5 * losses[0]


def test_loss_terms_and_kl_weight():
    config = VUNetConfig.tiny()
    model = VUNet(config)
    f, crops = batch(config, n=4)
    late = vunet_loss(model, f.image, f.stickman, crops, step=config.lr_decay_end)
    assert late.kl_weight == pytest.approx(1.0) and late.kl.item() > 0
    assert late.loss.item() == pytest.approx(
        config.likelihood_weight * late.likelihood.item() + late.kl.item(), rel=1e-5
    )
    baseline = VUNet(config.without_appearance())
    terms = vunet_loss(baseline, f.image, f.stickman, crops, step=config.lr_decay_end)
    assert terms.kl.item() == 0.0


def test_vgg_likelihood_needs_the_perceptual_module():
    config = replace(VUNetConfig.tiny(), likelihood="vgg19")
    f, crops = batch(config, n=2)
    with pytest.raises(ValueError, match="VGG19FeatureLoss"):
        vunet_loss(VUNet(config), f.image, f.stickman, crops, step=0)


def test_baseline_transfer_ignores_appearance():
    config = VUNetConfig.tiny()
    f, crops = batch(config, n=4)
    baseline = VUNet(config.without_appearance()).eval()
    vunet = VUNet(config).eval()
    shuffled = crops.flip(0)
    assert torch.equal(
        transfer(baseline, crops, f.stickman), transfer(baseline, shuffled, f.stickman)
    )
    assert not torch.allclose(
        transfer(vunet, crops, f.stickman), transfer(vunet, shuffled, f.stickman)
    )


def test_checkpoint_round_trip(tmp_path):
    config = VUNetConfig.tiny()
    model = VUNet(config).eval()
    path = save_checkpoint(model, tmp_path / "vunet.safetensors", config.__dict__)
    restored = VUNet(VUNetConfig.tiny()).eval()
    stored = load_checkpoint(restored, path)
    assert VUNetConfig.from_dict(stored) == config
    f, crops = batch(config, n=2)
    assert torch.equal(transfer(model, crops, f.stickman), transfer(restored, crops, f.stickman))


def test_checkpoint_errors(tmp_path):
    model = VUNet(VUNetConfig.tiny())
    with pytest.raises(ValueError, match="not found"):  # a WeightsError
        load_checkpoint(model, tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(model, broken)
    path = save_checkpoint(
        VUNet(VUNetConfig.tiny().without_appearance()), tmp_path / "b.safetensors"
    )
    with pytest.raises(ValueError, match="missing keys"):
        load_checkpoint(model, path)
    with pytest.raises(ValueError, match=".safetensors"):
        save_checkpoint(model, tmp_path / "model.pt")


def test_lit_vunet_trains_a_few_steps():
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer
    from esser_lab.vunet.training import LitVUNet

    config = replace(VUNetConfig.tiny(), lr_decay_begin=1, lr_decay_end=4, batch_size=8)
    system = LitVUNet(config, figure_boxes())
    data = FiguresDataModule(size=16, batch_size=8, num_train=32, num_val=8, seed=0)
    trainer = make_trainer(profile("tiny"), 4, progress_every=2)
    trainer.fit(system, datamodule=data)
    assert trainer.global_step == 4 and system.initialised
    assert torch.isfinite(trainer.callback_metrics["loss"])
    with pytest.raises(ValueError, match="num_boxes"):
        LitVUNet(config, figure_boxes()[:4])


def test_transfer_and_reconstruct_pass_large_sets_in_chunks(monkeypatch):
    """Beyond tiny's sizes, evaluation runs a chunk at a time and gives the one-pass images."""
    from esser_lab.vunet import VUNet, VUNetConfig, reconstruct, transfer

    torch.manual_seed(0)
    config = VUNetConfig.tiny()
    model = VUNet(config).eval()
    side = config.image_size
    f, crops = batch(config, n=5)
    shape = f.stickman
    whole = transfer(model, crops, shape)
    monkeypatch.setattr(placement, "EVAL_PIXELS_PER_PASS", 2 * side * side)  # chunks of two
    assert torch.allclose(transfer(model, crops, shape), whole, atol=1e-5)
    assert torch.allclose(reconstruct(model, crops, shape), whole, atol=1e-5)
    monkeypatch.undo()
    assert placement.EVAL_PIXELS_PER_PASS // (16 * 16) >= 2048  # tiny's sets: one pass
