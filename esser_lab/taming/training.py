"""``LitVQGAN``: the Lightning system of the VQGAN first stage (manual optimisation)."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor, nn

from esser_lab.losses.adversarial import NLayerDiscriminator
from esser_lab.taming.method import autoencoder_loss, discriminator_loss
from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitVQGAN"]


class LitVQGAN(ResumableModule):
    """Trains ``VQModel`` against a PatchGAN (and a perceptual distance, when given).

    Each batch: (1) the autoencoder step on the objective's min side (``autoencoder_loss``), with
    the adaptive weight λ at ``model.last_layer()``; (2) the discriminator step on detached images
    (``discriminator_loss``), from ``disc_start`` on. Both Adam(lr = base_lr × batch, β = (0.5,
    0.9)). The discriminator and the perceptual network live in ``self.loss`` (keys
    ``loss.discriminator.*``, ``loss.perceptual_loss.*``), as in the official ``loss`` submodule;
    ``self.model`` is the bare autoencoder. ``history`` keeps one dict of scalars per batch.

    ``perceptual`` must be given when ``config.perceptual_weight > 0`` (e.g.
    ``esser_lab.losses.lpips.LPIPS()``, with the user's weight files); it is frozen.

    # official code (PL 1.x, ``optimizer_idx``): the forward pass runs twice per batch, once per
    # optimizer; here once, the discriminator step reusing x̂ detached. Before ``disc_start`` the
    # discriminator step is skipped (the official one steps Adam on a loss × 0: no weight change).
    """

    resume_attributes = ("history",)

    def __init__(self, config: VQGANConfig, perceptual: nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.automatic_optimization = False
        self.config = config
        self.model = VQModel(config)
        if config.perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                f"perceptual_weight={config.perceptual_weight} needs a perceptual module "
                "(e.g. esser_lab.losses.lpips.LPIPS()); set perceptual_weight=0 to train without"
            )
        if perceptual is not None and not isinstance(perceptual, nn.Module):
            raise TypeError(f"perceptual must be an nn.Module, got {type(perceptual).__name__}")
        self.loss = nn.ModuleDict(
            {
                "discriminator": NLayerDiscriminator(
                    config.disc_in_channels, config.disc_ndf, config.disc_num_layers
                )
            }
        )
        if perceptual is not None:
            self.loss["perceptual_loss"] = perceptual.requires_grad_(False).eval()
        self.history = History()

    @property
    def discriminator(self) -> NLayerDiscriminator:
        return self.loss["discriminator"]

    def training_step(self, batch: dict[str, Tensor] | Tensor, batch_idx: int) -> None:
        c = self.config
        ae_opt, d_opt = self.optimizers()
        x = batch["image"] if isinstance(batch, dict) else batch
        step = self.global_step  # batches done so far (only the AE step advances it)

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
            perceptual=self.loss["perceptual_loss"] if "perceptual_loss" in self.loss else None,
        )
        ae_opt.zero_grad()
        self.manual_backward(ae.loss)
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

        logs = {  # tensors: ``history`` reads them lazily (no host sync per step)
            "loss": ae.loss.detach(),
            "rec": ae.l1,
            "nll": ae.nll,
            "p_loss": ae.perceptual,
            "q_loss": ae.q_loss,
            "perplexity": q.perplexity,
            "d_weight": ae.d_weight,
            "g_loss": ae.g_loss,
            "d_loss": d.loss.detach(),
            "logits_real": d.logits_real,
            "logits_fake": d.logits_fake,
        }
        self.history.append({"step": step, **logs})
        if log_now(self):
            shown = ("loss", "rec", "q_loss", "perplexity", "d_weight", "d_loss")
            self.log_dict({k: logs[k] for k in shown}, on_step=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201
        c = self.config

        def adam(module: nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam(
                module.parameters(), lr=c.learning_rate, betas=c.betas, foreach=True
            )

        # official: the AE optimizer holds encoder, decoder, quantize, quant_conv and
        # post_quant_conv (= ``self.model``); the D optimizer the discriminator only
        return [adam(self.model), adam(self.discriminator)]
