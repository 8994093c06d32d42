"""Training and freezing the 2020 papers' first-stage autoencoder (:mod:`esser_lab.nn.autoencoder`).

Chapters 5–9 interpret or translate the latent space of an autoencoder that is trained first and
then frozen (the code's ``disabled_train``: eval mode forever, no gradients). This module is that
shared system layer: ``LitDenseAutoencoder`` (Adam with β = (0.5, 0.9) as in ``iin``'s trainer, the
learned scalar log-variance of ``LossPND``) and ``train_first_stage`` that fits one on a tensor of
images through :func:`esser_lab.training.trainer.make_trainer` and returns it frozen.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esser_lab.data.modules import batch_loader
from esser_lab.nn.autoencoder import DenseAutoencoder, autoencoder_loss
from esser_lab.scale import Scale
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now, make_trainer

__all__ = ["LitDenseAutoencoder", "freeze", "train_first_stage"]


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode forever and no gradients: a frozen expert (the code's ``disabled_train``)."""
    model.eval()
    model.requires_grad_(False)
    model.train = lambda mode=True: model  # type: ignore[method-assign]  # stays in eval mode
    return model


class LitDenseAutoencoder(ResumableModule):
    """The first stage's system: ``autoencoder_loss`` with a learned scalar log-variance."""

    resume_attributes = ("history",)

    def __init__(
        self,
        autoencoder: DenseAutoencoder,
        learning_rate: float = 1e-3,
        kl_weight: float = 1e-3,
        logvar_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.learning_rate, self.kl_weight = learning_rate, kl_weight
        self.logvar = nn.Parameter(torch.tensor(float(logvar_init)))
        self.history = History()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["image"]
        reconstruction, posterior = self.autoencoder(x)
        loss, parts = autoencoder_loss(x, reconstruction, posterior, self.logvar, self.kl_weight)
        if log_now(self):
            self.log_dict({"loss": loss.detach(), "rec": parts["rec"]}, prog_bar=True)
        self.history.append({"loss": loss, **parts})  # read lazily: no host sync per step
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=self.learning_rate, betas=(0.5, 0.9), foreach=True
        )


def train_first_stage(
    images: Tensor,
    autoencoder: DenseAutoencoder,
    *,
    scale: Scale,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    kl_weight: float = 1e-3,
    seed: int = 0,
    progress_every: int = 100,
) -> tuple[DenseAutoencoder, LitDenseAutoencoder]:
    """Fit ``autoencoder`` on ``images`` ``(n, c, h, w)`` in [-1, 1]; return it frozen + the system.

    The system's ``history`` holds the per-step losses for plots.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must be a (n, c, h, w) tensor, got {getattr(images, 'shape', type(images))}"
        )
    torch.manual_seed(seed)
    system = LitDenseAutoencoder(autoencoder, learning_rate, kl_weight)
    loader = batch_loader({"image": images}, batch_size, shuffle=True, seed=seed)
    trainer = make_trainer(
        scale, steps, progress_every=progress_every, progress_keys=("loss", "rec")
    )
    trainer.fit(system, loader)
    return freeze(system.autoencoder.cpu()), system
