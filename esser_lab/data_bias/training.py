"""``LitDataBias``: trains the domain-conditional flow on the frozen shared autoencoder."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor

from esser_lab.data_bias.method import data_bias_loss
from esser_lab.data_bias.model import DataBiasConfig, DataBiasModel
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitDataBias"]


class LitDataBias(ResumableModule):
    """One step: the conditional NLL (B1) of a batch ``{"image", "domain"}``, one Adam step on
    the flow (Adam with β = (0.5, 0.9) and amsgrad, as ``Net2NetFlow``). ``history`` keeps one
    dict of scalars per step for the chapter's plots."""

    resume_attributes = ("history",)

    def __init__(self, config: DataBiasConfig, autoencoder: DenseAutoencoder | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.config = config
        self.model = DataBiasModel(config, autoencoder)
        self.history = History()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, parts = data_bias_loss(self.model, batch["image"], batch["domain"])
        self.history.append({"step": self.global_step, "loss": loss, **parts})  # read lazily
        if log_now(self):
            self.log_dict({"loss": loss.detach(), "nll": parts["nll"]}, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c = self.config
        # only the flow (and its condition embedder) trains: the autoencoder is frozen
        return torch.optim.Adam(
            self.model.flow.parameters(),
            lr=c.learning_rate,
            betas=c.betas,
            amsgrad=c.amsgrad,
            foreach=True,
        )
