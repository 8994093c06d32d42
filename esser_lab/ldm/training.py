"""``LitLatentDiffusion``: the Lightning system of a latent-diffusion model (chapter 14).

Each batch: encode the images with the frozen first stage (a posterior *sample* for a KL
autoencoder, as the official ``get_first_stage_encoding``), scale, and take one AdamW step on
``L_simple`` (:func:`esser_lab.ldm.method.ldm_loss`) over the UNet (and the class embedding, which
the class-conditional LDMs train: ``cond_stage_trainable``). With ``scale_by_std`` the first batch
sets ``scale_factor = 1 / std(z)`` before its step (official ``on_train_batch_start``, at step 0
only). After each step the EMA of the UNet is updated (official ``on_train_batch_end``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.ldm.method import ldm_loss
from esser_lab.ldm.model import LatentDiffusion
from esser_lab.nn.distributed import gather_over_ranks
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitLatentDiffusion"]


class LitLatentDiffusion(ResumableModule):
    """Trains ``ldm`` (a :class:`LatentDiffusion`); ``learning_rate`` defaults to the config's
    ``base_learning_rate × batch_size``. Batches are ``{"image", "label"}`` dicts or
    ``(image, label)`` pairs. ``history`` keeps the loss per step (lazily read tensors)."""

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(self, ldm: LatentDiffusion, learning_rate: float | None = None) -> None:
        super().__init__()
        if not isinstance(ldm, LatentDiffusion):
            raise TypeError(f"ldm must be a LatentDiffusion, got {type(ldm).__name__}")
        self.ldm = ldm
        self.learning_rate = ldm.config.learning_rate if learning_rate is None else learning_rate
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use
        self._scale_pending: bool | None = None  # set at train start (None: decide in the step)

    def on_train_start(self) -> None:
        # whether the first batch sets scale_by_std's factor: read once here, before the steps
        # (reading the ``_scale_set`` buffer inside a step would be a host sync on a GPU)
        ldm = self.ldm
        self._scale_pending = ldm.config.scale_by_std and not bool(ldm._scale_set)

    def _batch(
        self, batch: dict[str, Tensor] | tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, dict):
            return batch["image"], batch.get("label")
        image, label = batch
        return image, label

    def training_step(self, batch, batch_idx: int) -> Tensor:  # noqa: ANN001
        if self.generator is None:
            seed = int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)
        x, labels = self._batch(batch)
        ldm = self.ldm
        z = ldm.first_stage_model.encode_latent(x, generator=self.generator)
        pending = self._scale_pending
        if pending is None:  # a step outside Lightning's fit: read the flag here
            pending = ldm.config.scale_by_std and not bool(ldm._scale_set)
        if pending and self.global_step == 0:
            self._scale_pending = False
            # once, from the first batch's unscaled latents: the global batch's, on every rank
            ldm.set_scale_from(gather_over_ranks(z))
        z0 = ldm.scale_factor.to(z) * z
        out = ldm_loss(ldm, z0.detach(), labels, self.generator)
        self.history.append({"step": self.global_step, "loss": out.loss.detach()})
        if log_now(self):
            self.log("loss", out.loss.detach(), on_step=True, prog_bar=True)
        return out.loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if self.ldm.config.use_ema:
            self.ldm.model_ema.update(self.ldm.model)

    def configure_optimizers(self):  # noqa: ANN201
        params = list(self.ldm.model.parameters())
        if hasattr(self.ldm, "cond_stage_model"):
            params += list(self.ldm.cond_stage_model.parameters())
        return torch.optim.AdamW(params, lr=self.learning_rate, foreach=True)
