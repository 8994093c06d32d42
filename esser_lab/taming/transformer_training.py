"""``LitTamingTransformer``: the Lightning system of the second stage of Taming Transformers.

Thin: one AdamW step of the next-code cross-entropy (``TamingTransformer.loss``) per
batch; the first stage stays frozen and out of the optimiser.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor

from esser_lab.nn.transformer import configure_gpt_optimizer
from esser_lab.taming.transformer import TamingTransformer, next_token_loss
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitTamingTransformer"]


class LitTamingTransformer(ResumableModule):
    """Trains ``model.transformer`` (the official ``Net2NetTransformer`` training step).

    A batch is a dict with either ``"image"`` (b, c, H, W) in [−1, 1], encoded by the frozen
    first stage at every step as in the official code, or ``"z_indices"`` (b, h·w), codes
    encoded once beforehand (the same numbers, cheaper at tiny scale); plus ``"label"`` (b,)
    for a class-conditional model. Optimiser (minGPT recipe): AdamW with ``config.betas``,
    weight decay ``config.weight_decay`` on Linear weights only; learning rate
    ``config.learning_rate()`` unless given. ``history`` keeps the loss of every step.
    """

    resume_attributes = ("history",)

    def __init__(self, model: TamingTransformer, learning_rate: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(model.config)})
        self.model = model
        self.learning_rate = (
            model.config.learning_rate() if learning_rate is None else learning_rate
        )
        self.history = History()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if not isinstance(batch, dict):
            raise TypeError(f"a batch must be a dict of tensors, got {type(batch).__name__}")
        if "z_indices" in batch:
            z_indices = batch["z_indices"]
        elif "image" in batch:
            z_indices = self.model.encode_to_z(batch["image"])
        else:
            raise ValueError(f"a batch needs 'image' or 'z_indices', got keys {sorted(batch)}")
        loss = next_token_loss(*self.model(z_indices, batch.get("label")))
        self.history.append({"step": self.global_step, "loss": loss})  # read lazily
        if log_now(self):
            self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c = self.model.config
        return configure_gpt_optimizer(
            self.model.transformer, self.learning_rate, c.weight_decay, c.betas
        )
