"""``LitShapeTexture``: a shape classifier trained with (S1), and a callback that estimates its
shape and texture dimensions during training (the paper's dimensions over epochs).

SGD with momentum and weight decay, as torchvision's ImageNet recipe that trained the paper's
backbones (constant rate here; torchvision steps it down every 30 epochs).
"""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch
from torch import Tensor

from esser_lab.data.cue_conflict import CuePairs
from esser_lab.shape_texture.method import StageDims, classification_loss, dims_per_stage
from esser_lab.shape_texture.model import ShapeTextureNet
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["DimsOverTraining", "LitShapeTexture"]


class LitShapeTexture(ResumableModule):
    """Trains ``model`` on ``{"image", "label"}`` batches (or ``(image, label)`` pairs);
    ``history`` keeps the loss and the batch accuracy per step."""

    resume_attributes = ("history",)

    def __init__(self, model: ShapeTextureNet) -> None:
        super().__init__()
        if not isinstance(model, ShapeTextureNet):
            raise TypeError(f"model must be a ShapeTextureNet, got {type(model).__name__}")
        self.model = model
        self.history = History()

    def training_step(self, batch, batch_idx: int) -> Tensor:  # noqa: ANN001
        x, y = (batch["image"], batch["label"]) if isinstance(batch, dict) else batch
        logits = self.model(x)
        loss = classification_loss(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        self.history.append(
            {"step": self.global_step, "loss": loss.detach(), "accuracy": accuracy.detach()}
        )
        if log_now(self):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True)
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        c = self.model.config
        return torch.optim.SGD(
            self.model.parameters(),
            lr=c.learning_rate,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
        )


class DimsOverTraining(L.Callback):
    """(S2)–(S3) at every stage, before training and after each step in ``at_steps``.

    ``records`` maps the step (0 = before the first update) to the per-stage estimates.
    """

    def __init__(self, pairs: CuePairs, at_steps: Iterable[int]) -> None:
        super().__init__()
        self.pairs = pairs
        self.at_steps = sorted(set(int(s) for s in at_steps))
        if not self.at_steps or self.at_steps[0] < 1:
            raise ValueError(f"at_steps must be positive step counts, got {self.at_steps}")
        self.records: dict[int, list[StageDims]] = {}

    def _record(self, step: int, pl_module: L.LightningModule) -> None:
        self.records[step] = dims_per_stage(pl_module.model, self.pairs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self._record(0, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step in self.at_steps:
            self._record(trainer.global_step, pl_module)
