"""The system: ``LitInvariances`` trains the cINN t between two frozen experts.

Only t's parameters (flow and embedder) are optimised. The explained network (the
:class:`Greybox`) and the autoencoder are frozen, so what they compute for an image never
changes: :func:`encode_experts` runs them once over the training images, and every step draws a
fresh z_ae ~ q(z_ae | x) from the stored posterior. The official ``AutoencoderConcatTrainer``
re-encodes each batch under ``torch.no_grad``; the numbers are the same, the toy is faster.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.data.modules import batch_loader
from esser_lab.invariances.method import invariance_nll
from esser_lab.invariances.model import ConditionalTransformer, Greybox, InvariancesConfig
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.scale import Scale
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now, make_trainer


@torch.no_grad()
def encode_experts(
    autoencoder: DenseAutoencoder, greybox: Greybox, images: Tensor, batch_size: int = 1024
) -> dict[str, Tensor]:
    """``{"phi", "z_mean", "z_logvar"}`` for ``images``: Φ(x) and the posterior q(z_ae | x)."""
    if images.dim() != 4:
        raise ValueError(f"images must be (n, c, h, w), got {tuple(images.shape)}")
    phi, mean, logvar = [], [], []
    device = next(autoencoder.parameters()).device  # encoded there, kept next to ``images``
    for chunk in images.split(batch_size):
        chunk = chunk.to(device)
        posterior = autoencoder.encode(chunk)
        phi.append(greybox.encode(chunk).to(images.device))
        mean.append(posterior.mean.to(images.device))
        logvar.append(posterior.logvar.to(images.device))
    return {"phi": torch.cat(phi), "z_mean": torch.cat(mean), "z_logvar": torch.cat(logvar)}


class LitInvariances(ResumableModule):
    """(I2) on batches ``{"phi", "z_mean", "z_logvar"}`` from :func:`encode_experts`."""

    resume_attributes = ("history",)

    def __init__(self, config: InvariancesConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = ConditionalTransformer(config)
        self.history = History()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        mean, logvar = batch["z_mean"], batch["z_logvar"]
        z_ae = mean + (0.5 * logvar).exp() * torch.randn_like(mean)  # official: a posterior sample
        loss, parts = invariance_nll(self.transformer, z_ae, batch["phi"])
        self.history.append({"step": self.global_step, "loss": loss, **parts})  # read lazily
        if log_now(self):
            self.log_dict({"loss": loss.detach(), "nll": parts["nll"]}, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.Adam(
            self.transformer.parameters(), lr=c.learning_rate, betas=c.betas, foreach=True
        )


def fit_invariances(
    config: InvariancesConfig,
    experts: dict[str, Tensor],
    *,
    scale: Scale,
    seed: int = 0,
    progress_every: int = 200,
) -> LitInvariances:
    """Train a fresh cINN on the outputs of :func:`encode_experts` for ``config.num_steps``.

    Returns the system in eval mode (its ``history`` holds the per-step losses).
    """
    if experts["phi"].shape[1] != config.cond_dim:
        raise ValueError(
            f"config.cond_dim is {config.cond_dim} but Φ(x) has {experts['phi'].shape[1]} numbers"
        )
    torch.manual_seed(seed)
    system = LitInvariances(config)
    loader = batch_loader(experts, config.batch_size, shuffle=True, seed=seed)
    trainer = make_trainer(
        scale, config.num_steps, progress_every=progress_every, progress_keys=("loss", "nll")
    )
    trainer.fit(system, loader)
    return system.cpu().eval()
