"""The Lightning system of GAN-trained first stages: VQGAN (chapter 10) and the LDM autoencoders.

``LitGANAutoencoder`` takes an autoencoder built beforehand (a :class:`VQModel` or an
:class:`~esser_lab.nn.first_stage.AutoencoderKL`), trains it against a PatchGAN with manual
optimisation, and leaves it in ``system.model``: a first stage to freeze and hand to a second
stage. ``LitVQGAN`` is chapter 10's entry point: the same system built from a flat
:class:`VQGANConfig`.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor, nn

from esser_lab.losses.adversarial import NLayerDiscriminator
from esser_lab.losses.gan_autoencoder import (
    GANAutoencoderLossConfig,
    GANOptimizerConfig,
    discriminator_loss,
    kl_autoencoder_loss,
)
from esser_lab.nn.first_stage import AutoencoderKL
from esser_lab.taming.method import autoencoder_loss
from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["GANOptimizerConfig", "LitGANAutoencoder", "LitVQGAN"]


class LitGANAutoencoder(ResumableModule):
    """Trains a VQ or KL autoencoder against a PatchGAN (and a perceptual distance, when given).

    Each batch: (1) the autoencoder step on the objective's min side (VQ:
    :func:`~esser_lab.taming.method.autoencoder_loss`; KL:
    :func:`~esser_lab.losses.gan_autoencoder.kl_autoencoder_loss`), with the adaptive weight λ at
    ``model.last_layer()``; (2) the discriminator step on detached images
    (``discriminator_loss``), from ``disc_start`` on. Both Adam(lr = base_lr × batch, β = (0.5,
    0.9)). The discriminator, the perceptual network and (KL) the learned scalar log-variance
    live in ``self.loss`` (keys ``loss.discriminator.*``, ``loss.perceptual_loss.*``,
    ``loss.logvar``), as in the official ``loss`` submodule; ``self.model`` is the bare
    autoencoder (keys ``model.*``). ``history`` keeps one dict of scalars per batch.

    ``perceptual`` must be given when ``loss.perceptual_weight > 0`` (e.g.
    ``esser_lab.losses.lpips.LPIPS()``, with the user's weight files); it is frozen. The KL
    posterior is sampled from torch's global generator (saved with a checkpoint for exact resume).

    # official code (PL 1.x, ``optimizer_idx``): the forward pass runs twice per batch, once per
    # optimizer; here once, the discriminator step reusing x̂ detached. Before ``disc_start`` the
    # discriminator step is skipped (the official one steps Adam on a loss × 0: no weight change).
    """

    resume_attributes = ("history",)

    def __init__(
        self,
        model: VQModel | AutoencoderKL,
        loss: GANAutoencoderLossConfig,
        optimizer: GANOptimizerConfig,
        perceptual: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, VQModel | AutoencoderKL):
            raise TypeError(
                f"model must be a VQModel or an AutoencoderKL, got {type(model).__name__}"
            )
        if not isinstance(loss, GANAutoencoderLossConfig):
            raise TypeError(f"loss must be a GANAutoencoderLossConfig, got {type(loss).__name__}")
        if not isinstance(optimizer, GANOptimizerConfig):
            raise TypeError(
                f"optimizer must be a GANOptimizerConfig, got {type(optimizer).__name__}"
            )
        if loss.perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                f"perceptual_weight={loss.perceptual_weight} needs a perceptual module "
                "(e.g. esser_lab.losses.lpips.LPIPS()); set perceptual_weight=0 to train without"
            )
        if perceptual is not None and not isinstance(perceptual, nn.Module):
            raise TypeError(f"perceptual must be an nn.Module, got {type(perceptual).__name__}")
        self.save_hyperparameters(
            {"model": asdict(model.config), "loss": asdict(loss), "optimizer": asdict(optimizer)}
        )
        self.automatic_optimization = False
        self.loss_config, self.optimizer_config = loss, optimizer
        self.model = model
        self.loss = nn.ModuleDict(
            {
                "discriminator": NLayerDiscriminator(
                    loss.disc_in_channels, loss.disc_ndf, loss.disc_num_layers
                )
            }
        )
        if perceptual is not None:
            self.loss["perceptual_loss"] = perceptual.requires_grad_(False).eval()
        if self.is_kl:
            logvar = torch.full((), float(loss.logvar_init))
            self.loss.register_parameter(
                "logvar", nn.Parameter(logvar, requires_grad=loss.learn_logvar)
            )
        self.history = History()

    @property
    def is_kl(self) -> bool:
        return isinstance(self.model, AutoencoderKL)

    @property
    def discriminator(self) -> NLayerDiscriminator:
        return self.loss["discriminator"]

    @property
    def perceptual(self) -> nn.Module | None:
        return self.loss["perceptual_loss"] if "perceptual_loss" in self.loss else None

    def _vq_step(self, x: Tensor, step: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        c = self.loss_config
        x_hat, q = self.model(x)
        ae = autoencoder_loss(
            x,
            x_hat,
            q.loss,
            self.discriminator,
            self.model.last_layer(),
            step,
            disc_start=c.disc_start,
            disc_weight=c.disc_weight,
            codebook_weight=c.codebook_weight,
            perceptual_weight=c.perceptual_weight,
            perceptual=self.perceptual,
        )
        logs = {
            "loss": ae.loss.detach(),
            "rec": ae.l1,
            "nll": ae.nll,
            "p_loss": ae.perceptual,
            "q_loss": ae.q_loss,
            "perplexity": q.perplexity,
            "d_weight": ae.d_weight,
            "g_loss": ae.g_loss,
        }
        return x_hat, ae.loss, logs

    def _kl_step(self, x: Tensor, step: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        c = self.loss_config
        x_hat, posterior = self.model(x)  # a posterior sample, as the official training_step
        ae = kl_autoencoder_loss(
            x,
            x_hat,
            posterior,
            self.loss.logvar,
            self.discriminator,
            self.model.last_layer(),
            step,
            disc_start=c.disc_start,
            disc_weight=c.disc_weight,
            kl_weight=c.kl_weight,
            perceptual_weight=c.perceptual_weight,
            perceptual=self.perceptual,
        )
        logs = {
            "loss": ae.loss.detach(),
            "rec": ae.l1,
            "nll": ae.nll,
            "p_loss": ae.perceptual,
            "kl": ae.kl,
            "logvar": ae.logvar,
            "d_weight": ae.d_weight,
            "g_loss": ae.g_loss,
        }
        return x_hat, ae.loss, logs

    def training_step(self, batch: dict[str, Tensor] | Tensor, batch_idx: int) -> None:
        c = self.loss_config
        ae_opt, d_opt = self.optimizers()
        x = batch["image"] if isinstance(batch, dict) else batch
        step = self.global_step  # batches done so far (only the AE step advances it)

        x_hat, ae_loss, logs = (self._kl_step if self.is_kl else self._vq_step)(x, step)
        ae_opt.zero_grad()
        self.manual_backward(ae_loss)
        ae_opt.step()

        d = discriminator_loss(
            x, x_hat, self.discriminator, step, disc_start=c.disc_start, kind=c.disc_loss
        )
        if d.disc_factor > 0:
            d_opt.zero_grad()  # also clears what the AE backward left in D
            self.manual_backward(d.loss)
            # the bare torch optimizer: a wrapped step would count in ``global_step``, which
            # counts batches (as the official PL 1.x loop did); it drives ``disc_start``
            d_opt.optimizer.step()

        logs |= {  # tensors: ``history`` reads them lazily (no host sync per step)
            "d_loss": d.loss.detach(),
            "logits_real": d.logits_real,
            "logits_fake": d.logits_fake,
        }
        self.history.append({"step": step, **logs})
        if log_now(self):
            middle = ("kl", "logvar") if self.is_kl else ("q_loss", "perplexity")
            shown = ("loss", "rec", *middle, "d_weight", "d_loss")
            self.log_dict({k: logs[k] for k in shown}, on_step=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201
        c = self.optimizer_config

        def adam(parameters) -> torch.optim.Adam:  # noqa: ANN001
            return torch.optim.Adam(parameters, lr=c.learning_rate, betas=c.betas, foreach=True)

        # official: the AE optimizer holds encoder, decoder, (quantize,) quant_conv and
        # post_quant_conv (= ``self.model``); the D optimizer the discriminator only. KL: ours
        # adds ``loss.logvar`` when it is learned (GANAutoencoderLossConfig.learn_logvar)
        ae_parameters = self.model.parameters()
        if self.is_kl and self.loss.logvar.requires_grad:
            ae_parameters = [*self.model.parameters(), self.loss.logvar]
        return [adam(ae_parameters), adam(self.discriminator.parameters())]


class LitVQGAN(LitGANAutoencoder):
    """Chapter 10's VQGAN system: ``LitGANAutoencoder`` with a ``VQModel`` built from ``config``.

    ``config``'s views give the parts (``architecture``, ``loss``, ``optimizer``); the model is
    built first, then the discriminator (the order that fixes chapter 10's initial weights).
    """

    def __init__(self, config: VQGANConfig, perceptual: nn.Module | None = None) -> None:
        if not isinstance(config, VQGANConfig):
            raise TypeError(f"config must be a VQGANConfig, got {type(config).__name__}")
        super().__init__(VQModel(config), config.loss, config.optimizer, perceptual)
        self.save_hyperparameters({"config": asdict(config)})
        self.config = config
