"""``LitStyleTransfer``: the Lightning system for chapter 3, a GAN with manual optimisation."""

from __future__ import annotations

from dataclasses import asdict

import torch

from esser_lab.nn.distributed import mean_over_ranks
from esser_lab.style_transfer.method import (
    DiscriminatorLoss,
    GeneratorLoss,
    StyleBatch,
    discriminator_loss,
    generator_loss,
    update_success_rate,
)
from esser_lab.style_transfer.model import StyleTransferConfig, StyleTransferModel
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now


class LitStyleTransfer(ResumableModule):
    """Two Adam optimisers (lr, β = (β₁, 0.999)); one player steps per batch.

    As in the official ``model.py``: the generator steps while the running discriminator success
    rate is at least ``config.discriminator_success_rate``, else the discriminator, so neither
    side runs away. A negative rate makes both step on every batch (the code's ``dsr < 0``
    branch). Batches are dicts with the keys of :class:`StyleBatch`.

    The one intended host sync per step: the batch's fooled rate (or accuracy) is read with
    ``.item()`` to update the success rate, a Python float, because it decides in Python which
    player steps next, as the official code does. (A device-side choice would have to run both
    players' graphs every step.) Every other value is logged lazily, on logging steps only.
    """

    resume_attributes = ("success_rate", "generator_steps", "discriminator_steps")

    def __init__(self, config: StyleTransferConfig) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.config = config
        self.model = StyleTransferModel(config)
        self.automatic_optimization = False
        self.success_rate = config.discriminator_success_rate
        self.generator_steps = 0
        self.discriminator_steps = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        data = StyleBatch.from_dict(batch)
        c = self.config
        both = c.discriminator_success_rate < 0  # official ``dsr < 0``: both players step
        logged: dict[str, float | torch.Tensor] = {}
        stylised = None
        if both or self.success_rate >= c.discriminator_success_rate:
            terms = self._generator_step(data)
            stylised = terms.stylised
            logged.update(
                g_loss=terms.loss.detach(),
                image=terms.image,
                fpt=terms.fpt,
                fpd=terms.fpd,
                style_ce=terms.style_class,
            )
            # under DDP the batch's rate is averaged over the ranks, so every replica picks the
            # same player for the next batch
            fooled = mean_over_ranks(terms.fooled.detach()).item()
            self.success_rate = update_success_rate(
                self.success_rate, fooled, True, c.success_rate_momentum
            )
        if both or stylised is None:
            if stylised is None:
                with torch.no_grad():
                    stylised = self.model(data.photo, self.model.encode_style(data.painting))
            d_terms = self._discriminator_step(data, stylised)
            logged.update(d_loss=d_terms.loss.detach(), d_acc=d_terms.accuracy)
            accuracy = mean_over_ranks(d_terms.accuracy.detach()).item()
            self.success_rate = update_success_rate(
                self.success_rate, accuracy, False, c.success_rate_momentum
            )
        logged["success_rate"] = self.success_rate
        if log_now(self):
            self.log_dict(logged, on_step=True, prog_bar=True)

    def _generator_step(self, data: StyleBatch) -> GeneratorLoss:
        opt_g, _ = self.optimizers()
        self.toggle_optimizer(opt_g)
        terms = generator_loss(self.model, data)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(terms.loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.generator_steps += 1
        return terms

    def _discriminator_step(self, data: StyleBatch, stylised: torch.Tensor) -> DiscriminatorLoss:
        _, opt_d = self.optimizers()
        self.toggle_optimizer(opt_d)
        terms = discriminator_loss(self.model, data, stylised)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(terms.loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.discriminator_steps += 1
        return terms

    def configure_optimizers(self):  # noqa: ANN201
        betas = (self.config.beta1, 0.999)
        lr = self.config.learning_rate
        generator = torch.optim.Adam(
            self.model.generator_parameters(), lr=lr, betas=betas, foreach=True
        )
        discriminator = torch.optim.Adam(
            self.model.discriminator.parameters(), lr=lr, betas=betas, foreach=True
        )
        return [generator, discriminator]
