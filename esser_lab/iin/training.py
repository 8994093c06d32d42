"""``LitIIN``: trains the interpretation network on a frozen first stage's codes.

The official ``Trainer``/``FactorTrainer`` encode every batch with the frozen autoencoder and draw
``z`` from its posterior (``posterior.sample()``). The frozen encoder is a fixed function, so we
encode the data set once (:func:`encode_posteriors`, the posterior's mean and log-variance) and
draw a fresh sample every step: the same distribution of ``z``, without re-running the encoder.
Each step is one Adam step on the unsupervised NLL (I1) (batches with ``posterior``) or on the
dIIN pair NLL (I2) (batches with ``posterior_a``, ``posterior_b`` and ``shared``).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor

from esser_lab.data.modules import BatchLoader, batch_loader
from esser_lab.iin.method import factor_nll_loss, nll_loss
from esser_lab.iin.model import FactorTransformer, IINConfig
from esser_lab.nn.autoencoder import DenseAutoencoder, DiagonalGaussian
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

#: The first stage's KL weight at the paper's scale: ``LossPND``'s default
#: (``Loss/kl_weight``, 1.0, in ``iin/losses/ae.py``), which ``configs/cmnist_ae.yaml`` keeps.
FIRST_STAGE_KL_WEIGHT = 1.0


@torch.no_grad()
def encode_posteriors(first_stage: DenseAutoencoder, images: Tensor, chunk: int = 1024) -> Tensor:
    """The frozen first stage's posterior parameters ``(n, 2·z_dim)`` [mean, log-variance]."""
    first_stage.eval()
    parts = [torch.cat([q.mean, q.logvar], 1) for q in map(first_stage.encode, images.split(chunk))]
    return torch.cat(parts)


class LitIIN(ResumableModule):
    """The system: a ``FactorTransformer`` on samples of a frozen first stage's posterior.

    ``history`` keeps one dict of scalars per step for the chapter's plots. The learning rate is
    ``config.learning_rate``, linearly decayed to zero between ``decay_start`` and ``num_steps``
    (the code's ``get_decay_factor``).
    """

    resume_attributes = ("history",)

    def __init__(self, config: IINConfig) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.config = config
        self.model = FactorTransformer(config)
        self.history = History()

    def sample_z(self, parameters: Tensor) -> Tensor:
        """A sample of ``q(z | x)`` from its parameters ``(b, 2·z_dim)``."""
        if parameters.dim() != 2 or parameters.shape[1] != 2 * self.config.z_dim:
            raise ValueError(
                f"posterior parameters must be (batch, {2 * self.config.z_dim}) [mean, logvar], "
                f"got {tuple(parameters.shape)}"
            )
        return DiagonalGaussian(parameters).sample()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if "shared" in batch:
            b = batch["posterior_a"].shape[0]
            z = self.sample_z(torch.cat([batch["posterior_a"], batch["posterior_b"]]))
            factors, logdet = self.model(z)  # one pass over both halves of the pair
            factors_a, factors_b = [f[:b] for f in factors], [f[b:] for f in factors]
            loss, parts = factor_nll_loss(
                factors_a, logdet[:b], factors_b, logdet[b:], batch["shared"], self.config.rho
            )
        else:
            factors, logdet = self.model(self.sample_z(batch["posterior"]))
            loss, parts = nll_loss(torch.cat(factors, dim=1), logdet)
        self.history.append({"step": self.global_step, "loss": loss, **parts})  # read lazily
        if log_now(self):
            self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        c = self.config
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=c.learning_rate, betas=c.betas, foreach=True
        )

        def decay(step: int) -> float:
            if c.num_steps <= c.decay_start:
                return 1.0
            return 1.0 - min(max((step - c.decay_start) / (c.num_steps - c.decay_start), 0.0), 1.0)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def batches(fields: dict[str, Tensor], batch_size: int, seed: int = 0) -> BatchLoader:
    """Whole batches of pre-computed tensors, reshuffled every epoch from ``seed``."""
    return batch_loader(fields, batch_size, shuffle=True, seed=seed)
