"""``LitPartBased``: the Lightning system that trains the part-based model (or its ablation)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from esser_lab.part_based.method import part_based_loss
from esser_lab.part_based.model import PartBased, PartBasedConfig
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now


class LitPartBased(ResumableModule):
    """Wires the model to Adam(lr) as the official code does (no schedule, default betas).

    Batches are dicts with ``image (b, 3, h, w)`` in [-1, 1]; nothing else is used (the method is
    unsupervised). The random spatial and colour transforms are drawn from a generator seeded
    with ``seed``, on the batch's device, so a run is repeatable from its seed.
    """

    resume_generators = ("generator",)

    def __init__(self, config: PartBasedConfig, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config), "seed": seed})
        self.config = config
        self.seed = seed
        self.model = PartBased(config)
        self.generator: torch.Generator | None = None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        image = batch["image"]
        if self.generator is None or self.generator.device != image.device:
            # its own stream per DDP rank (rank 0, and one process, keep ``seed``'s)
            seed = self.seed + 1_000_003 * self.global_rank
            self.generator = torch.Generator(device=image.device).manual_seed(seed)
        terms = part_based_loss(self.model, image, self.generator)
        if log_now(self):
            self.log_dict(
                {
                    "loss": terms.loss.detach(),
                    "rec": terms.reconstruction,
                    "eq_mu": terms.equivariance_mu,
                    "eq_sigma": terms.equivariance_sigma,
                },
                on_step=True,
                prog_bar=True,
            )
        return terms.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generator = torch.Generator(device=batch["image"].device).manual_seed(self.seed + 1)
        terms = part_based_loss(self.model, batch["image"], generator)
        self.log_dict({"val_loss": terms.loss, "val_rec": terms.reconstruction}, prog_bar=True)
        return terms.loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate, foreach=True)
