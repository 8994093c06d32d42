"""LitGANAutoencoder: a built KL (or VQ) autoencoder is trained, then handed on frozen."""

from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.scale import profile
from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.taming.training import LitGANAutoencoder, LitVQGAN
from esser_lab.training.first_stage import freeze
from esser_lab.training.trainer import make_trainer

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders

OPTIMIZER = GANOptimizerConfig(base_learning_rate=2e-3 / 4, batch_size=4)


def _fit(system: LitGANAutoencoder, steps: int) -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    one_batch = torch.utils.data.DataLoader(x, batch_size=4)  # the same batch every step
    make_trainer(profile("tiny"), steps, progress_every=100).fit(system, one_batch)


@pytest.mark.parametrize("learn_logvar", [True, False])
def test_kl_system_trains_the_model_it_was_given(learn_logvar):
    torch.manual_seed(0)
    model = AutoencoderKL(AutoencoderKLConfig.tiny(2))
    loss = replace(GANAutoencoderLossConfig.tiny(), disc_start=3, learn_logvar=learn_logvar)
    system = LitGANAutoencoder(model, loss, OPTIMIZER)
    state = system.state_dict()
    assert "loss.logvar" in state and state["loss.logvar"].shape == ()
    assert any(k.startswith("model.encoder.") for k in state)
    assert "loss.discriminator.main.0.weight" in state
    d_initial = [p.detach().clone() for p in system.discriminator.parameters()]
    _fit(system, 3)
    assert all(
        torch.equal(a, b) for a, b in zip(d_initial, system.discriminator.parameters(), strict=True)
    )  # before disc_start the discriminator does not move
    _fit(system, 6)
    h = system.history
    assert system.model is model  # trained in place: the caller's module
    assert [r["step"] for r in h] == [0, 1, 2, *range(6)]
    assert all((r["d_loss"] > 0) == (r["step"] >= 3) for r in h[3:])
    assert h[-1]["rec"] < h[0]["rec"] and h[-1]["kl"] > 0
    logvar = float(system.loss.logvar)
    assert (logvar < 0) if learn_logvar else (logvar == 0.0)  # official: never moves
    ae_optimizer = system.configure_optimizers()[0]
    in_optimizer = any(
        p is system.loss.logvar for g in ae_optimizer.param_groups for p in g["params"]
    )
    assert in_optimizer == learn_logvar
    settings = ae_optimizer.defaults
    assert settings["lr"] == pytest.approx(2e-3) and settings["betas"] == (0.5, 0.9)
    frozen = freeze(system.model)  # handed on: eval mode, no gradients
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert frozen.encode_latent(torch.zeros(1, 3, 16, 16)).shape == (1, 4, 8, 8)


def test_one_system_for_vq_and_kl_and_its_errors():
    torch.manual_seed(0)
    config = VQGANConfig.tiny()
    vq = LitGANAutoencoder(VQModel(config), config.loss, config.optimizer)
    assert "loss.logvar" not in vq.state_dict()  # the VQ objective has no log-variance
    assert vq.hparams["loss"] == asdict(config.loss)
    lit = LitVQGAN(config)
    assert lit.hparams["config"] == asdict(config) and isinstance(lit, LitGANAutoencoder)
    assert [k for k in lit.state_dict()] == [k for k in vq.state_dict()]  # one key layout
    kl = AutoencoderKL(AutoencoderKLConfig.tiny(2))
    with pytest.raises(ValueError, match="perceptual module"):
        LitGANAutoencoder(kl, GANAutoencoderLossConfig.ldm_kl(), OPTIMIZER)
    with pytest.raises(TypeError, match="VQModel or an AutoencoderKL"):
        LitGANAutoencoder(torch.nn.Linear(2, 2), GANAutoencoderLossConfig.tiny(), OPTIMIZER)
    with pytest.raises(TypeError, match="GANAutoencoderLossConfig"):
        LitGANAutoencoder(kl, config, OPTIMIZER)
    with pytest.raises(TypeError, match="GANOptimizerConfig"):
        LitGANAutoencoder(kl, GANAutoencoderLossConfig.tiny(), config)
    with pytest.raises(TypeError, match="must be a VQGANConfig"):
        LitVQGAN(config.architecture)
