"""The VQGAN objective, its quality measures, the presets, and the Lightning system."""

from dataclasses import replace

import pytest
import torch

from esser_lab.losses.adversarial import NLayerDiscriminator
from esser_lab.taming import VQGANConfig, VQModel
from esser_lab.taming.method import (
    autoencoder_loss,
    discriminator_loss,
    hf_ratio,
    psnr,
    reconstruction_loss,
)
from esser_lab.taming.training import LitVQGAN

TINY = replace(VQGANConfig.tiny(), batch_size=4, num_steps=6)


def test_presets():
    paper = VQGANConfig.paper()
    assert (paper.disc_start, paper.disc_weight, paper.disc_num_layers) == (250_001, 0.8, 3)
    assert paper.learning_rate == pytest.approx(4.5e-6 * paper.batch_size)
    assert paper.betas == (0.5, 0.9) and paper.disc_loss == "hinge"
    big = VQGANConfig.paper(16384)
    assert (big.disc_start, big.disc_weight, big.disc_num_layers) == (0, 0.75, 2)
    tiny = VQGANConfig.tiny()
    assert tiny.factor == 2 and tiny.perceptual_weight == 0 and tiny.disc_num_layers == 2
    assert tiny.disc_start == tiny.num_steps // 2
    VQModel(tiny)  # num_res_blocks 0 is fine while the width never changes
    with pytest.raises(ValueError, match="num_res_blocks must be ≥ 1"):
        VQModel(replace(tiny, ch_mult=(1, 2)))
    VQModel(VQGANConfig.small())  # widths are multiples of 32 (GroupNorm)
    assert VQGANConfig.from_dict({"betas": [0.5, 0.9]}).betas == (0.5, 0.9)
    with pytest.raises(ValueError, match="hinge"):
        replace(tiny, disc_loss="wasserstein")


def test_reconstruction_loss_broadcasts_a_per_image_distance():
    x, x_hat = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    per_image = lambda a, b: torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)  # noqa: E731
    nll, l1, p = reconstruction_loss(x, x_hat, per_image, perceptual_weight=0.5)
    assert float(l1) == 0.5 and float(p) == 2.0 and float(nll) == pytest.approx(0.5 + 0.5 * 2.0)
    with pytest.raises(ValueError, match="perceptual distance"):
        reconstruction_loss(x, x_hat, None, perceptual_weight=1.0)


def test_gan_terms_start_at_disc_start():
    torch.manual_seed(0)
    model, d = VQModel(TINY), NLayerDiscriminator(3, 16, 2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    x_hat, q = model(x)
    kwargs = {"disc_start": 5, "disc_weight": 0.8, "perceptual_weight": 0.0}
    before = autoencoder_loss(x, x_hat, q.loss, d, model.last_layer(), 4, **kwargs)
    assert before.disc_factor == 0 and float(before.d_weight) == 0
    assert torch.isclose(before.loss, before.nll + q.loss)
    after = autoencoder_loss(x, x_hat, q.loss, d, model.last_layer(), 5, **kwargs)
    assert after.disc_factor == 1 and float(after.d_weight) > 0
    expected = after.nll + after.d_weight * after.g_loss + q.loss
    assert torch.isclose(after.loss, expected)
    assert float(discriminator_loss(x, x_hat, d, 4, disc_start=5).loss) == 0
    assert float(discriminator_loss(x, x_hat, d, 5, disc_start=5).loss.detach()) > 0


def test_psnr_and_hf_ratio():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(psnr(x + 0.1, x), torch.full((2,), 10 * torch.log10(torch.tensor(400.0))))
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    assert float(hf_ratio(x, x)) == pytest.approx(1.0)
    assert float(hf_ratio(blurred, x)) < 0.5  # blur removes high-frequency energy
    assert float(hf_ratio(torch.zeros_like(x) + 0.3, x)) == 0.0  # a constant has no edges
    with pytest.raises(ValueError, match="differ"):
        hf_ratio(x[:, :, :8], x)


def test_system_lowers_the_loss_and_starts_d_at_disc_start():
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer

    torch.manual_seed(0)
    config = replace(TINY, disc_start=4, base_learning_rate=2e-3 / 4)
    system = LitVQGAN(config)
    assert "loss.discriminator.main.8.weight" in system.state_dict()
    d_initial = [p.detach().clone() for p in system.discriminator.parameters()]
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    one_batch = torch.utils.data.DataLoader(x, batch_size=4)  # the same batch every step
    trainer = make_trainer(profile("tiny"), 4, progress_every=100)
    trainer.fit(system, train_dataloaders=one_batch)
    d_now = list(system.discriminator.parameters())
    assert system.global_step == 4  # the discriminator's steps do not count
    unmoved = [torch.equal(a, b) for a, b in zip(d_initial, d_now, strict=True)]
    assert all(unmoved)  # steps 0–3: before disc_start the discriminator does not move
    assert all(h["d_weight"] == 0 and h["d_loss"] == 0 for h in system.history)
    make_trainer(profile("tiny"), 10, progress_every=100).fit(system, train_dataloaders=one_batch)
    h, d_now = system.history, list(system.discriminator.parameters())
    assert [r["step"] for r in h] == [*range(4), *range(10)]  # a fresh Trainer starts at 0
    assert all((r["d_loss"] > 0) == (r["step"] >= 4) for r in h)
    assert h[-1]["rec"] < h[0]["rec"]
    assert not all(torch.equal(a, b) for a, b in zip(d_initial, d_now, strict=True))
    assert h[-1]["d_weight"] > 0 and h[-1]["d_loss"] > 0


def test_system_errors():
    with pytest.raises(ValueError, match="perceptual module"):
        LitVQGAN(replace(TINY, perceptual_weight=1.0))
    with pytest.raises(TypeError, match="nn.Module"):
        LitVQGAN(TINY, perceptual=lambda a, b: a)


def test_same_seed_same_loss():
    def run() -> list[float]:
        torch.manual_seed(3)
        model, d = VQModel(TINY), NLayerDiscriminator(3, 16, 2)
        x = torch.rand(2, 3, 16, 16) * 2 - 1
        x_hat, q = model(x)
        out = autoencoder_loss(
            x,
            x_hat,
            q.loss,
            d,
            model.last_layer(),
            1,
            disc_start=0,
            disc_weight=0.8,
            perceptual_weight=0.0,
        )
        return [float(out.loss.detach()), float(out.d_weight)]

    assert run() == run()
