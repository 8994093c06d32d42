"""The Lightning systems of chapter 13: ``LitImageBART`` and the baseline's ``LitCodeGPT``.

Both train on code batches ``{"codes": (b, l)}`` (remapped VQGAN codes, encoded once beforehand
with the frozen first stage: the same numbers as encoding every step, cheaper at tiny scale)
with AdamW (0.9, 0.95), and keep the loss of every step in ``history``. Weight decay follows the
official code per network: the encoder–decoders (``DenoisingXTransformer.configure_optimizers``)
are decayed as plain AdamW does, every parameter with ``weight_decay`` (0.01); a last-scale GPT
and the baseline GPT keep the minGPT rule (Linear weights only,
:func:`~esser_lab.nn.transformer.configure_gpt_optimizer`). ``LitImageBART`` draws the forward
chain and the scales from its own generator (saved for an exact resume).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor

from esser_lab.imagebart.method import Order, ar_loss, imagebart_loss
from esser_lab.imagebart.model import ImageBART
from esser_lab.nn.transformer import GPT, configure_gpt_optimizer
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitCodeGPT", "LitImageBART", "imagebart_optimizer"]


def imagebart_optimizer(model: ImageBART, learning_rate: float) -> torch.optim.AdamW:
    """AdamW (``config.betas``) over ``model``'s trainable parameters: the encoder–decoders'
    with ``config.weight_decay`` on all of them (the official ``DenoisingXTransformer``'s plain
    AdamW), a last-scale GPT's on its Linear weights only (minGPT, ``DenoisingTransformer``)."""
    if not isinstance(model, ImageBART):
        raise TypeError(f"model must be an ImageBART, got {type(model).__name__}")
    c = model.config
    encoder_decoders = [p for p in model.transitions.parameters() if p.requires_grad]
    groups = [{"params": encoder_decoders, "weight_decay": c.weight_decay}]
    if model.last_scale is not None:
        gpt_groups = configure_gpt_optimizer(model.last_scale, learning_rate, c.weight_decay)
        groups += [
            {"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in gpt_groups.param_groups
        ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=c.betas, foreach=True)


def _codes(batch: dict[str, Tensor]) -> Tensor:
    if not isinstance(batch, dict) or "codes" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"a batch must be a dict with 'codes' (b, l), got {got}")
    return batch["codes"]


class LitImageBART(ResumableModule):
    """Trains every transition of ``model`` with (M4) (:func:`imagebart_loss`)."""

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(self, model: ImageBART, learning_rate: float | None = None) -> None:
        super().__init__()
        if not isinstance(model, ImageBART):
            raise TypeError(f"model must be an ImageBART, got {type(model).__name__}")
        self.save_hyperparameters({"config": asdict(model.config)})
        self.model = model
        self.learning_rate = model.config.learning_rate if learning_rate is None else learning_rate
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        loss = imagebart_loss(self.model, _codes(batch), self.generator)
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW: every encoder–decoder parameter decayed; a last-scale GPT by the minGPT rule."""
        return imagebart_optimizer(self.model, self.learning_rate)


class LitCodeGPT(ResumableModule):
    """Trains a GPT over the codes read in ``order`` (the autoregressive baseline)."""

    resume_attributes = ("history",)

    def __init__(
        self,
        gpt: GPT,
        order: Order,
        learning_rate: float,
        sos_token: int = 0,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TypeError(
                f"gpt must be an esser_lab.nn.transformer.GPT, got {type(gpt).__name__}"
            )
        if order not in ("raster", "reverse"):
            raise ValueError(f"order must be 'raster' or 'reverse', got {order!r}")
        self.save_hyperparameters({"order": order, "learning_rate": learning_rate})
        self.gpt, self.order, self.sos_token = gpt, order, sos_token
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.history = History()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = ar_loss(self.gpt, _codes(batch), self.order, self.sos_token)
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return configure_gpt_optimizer(self.gpt, self.learning_rate, self.weight_decay)
