"""``LitNet2Net`` (the translator τ on (N2)) and ``LitRegressionBaseline``: thin Lightning systems.

Both read batches ``{"image": (b, 3, h, w), "caption": [str] * b}`` and encode them with the frozen
experts at every step (the code's ``encode_to_z`` / ``encode_to_c``, under ``no_grad``), or
batches of codes encoded once beforehand, ``{"z_target": (b, dim), "z_cond": (b, cond_in)}``
(the experts are frozen, so this only saves time). They optimise only their own network, with
the official optimiser: Adam(amsgrad, β = (0.5, 0.9)) at ``base_learning_rate × batch size ×
GPUs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from esser_lab.data.modules import TensorBatches, batch_loader
from esser_lab.net2net.method import conditional_nll, regression_loss
from esser_lab.net2net.model import Net2Net, RegressionBaseline
from esser_lab.scale import Scale
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now, make_trainer

__all__ = ["LitNet2Net", "LitRegressionBaseline", "fit"]


class _System(ResumableModule):
    resume_attributes = ("history",)

    def __init__(self, net2net: Net2Net, devices: int = 1) -> None:
        super().__init__()
        self.net2net = net2net
        self.learning_rate = net2net.config.learning_rate(devices)
        self.history = History()

    def _codes(self, batch: dict) -> tuple[Tensor, Tensor]:
        if "z_target" in batch:
            return batch["z_target"], batch["z_cond"]
        z_target = self.net2net.encode_target(batch["image"])
        z_cond = self.net2net.encode_condition(batch["caption"]).to(z_target)
        return z_target, z_cond

    def _adam(self, parameters) -> torch.optim.Adam:  # noqa: ANN001
        c = self.net2net.config
        return torch.optim.Adam(
            parameters, lr=self.learning_rate, betas=c.betas, amsgrad=c.amsgrad, fused=True
        )


class LitNet2Net(_System):
    """Trains ``net2net.flow`` on the conditional NLL (N2); the experts stay frozen."""

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        z_target, z_cond = self._codes(batch)
        loss, parts = conditional_nll(self.net2net.flow, z_target, z_cond)
        if log_now(self):
            self.log_dict({"loss": loss.detach(), "nll": parts["nll"]}, prog_bar=True)
        self.history.append({"loss": loss, **parts})  # read lazily: no host sync per step
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self._adam(self.net2net.flow.parameters())  # the flow only, as the code


class LitRegressionBaseline(_System):
    """Trains a :class:`RegressionBaseline` ``z_Φ → z_Θ`` with MSE on the same codes."""

    def __init__(self, net2net: Net2Net, regressor: RegressionBaseline, devices: int = 1) -> None:
        super().__init__(net2net, devices)
        self.regressor = regressor

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        z_target, z_cond = self._codes(batch)
        loss = regression_loss(self.regressor(z_cond), z_target)
        if log_now(self):
            self.log("loss", loss.detach(), prog_bar=True)
        self.history.append({"loss": loss})
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self._adam(self.regressor.parameters())


def fit(
    system: _System,
    fields: dict[str, Tensor | Sequence[str]],
    *,
    scale: Scale,
    steps: int,
    seed: int = 0,
    progress_every: int = 200,
) -> _System:
    """Train ``system`` with the config's batch size; returns it in eval mode.

    ``fields`` is ``{"image": (n, 3, h, w), "caption": n strings}`` or precomputed codes
    ``{"z_target": (n, dim), "z_cond": (n, cond_in)}``.
    """
    if set(fields) not in ({"image", "caption"}, {"z_target", "z_cond"}):
        raise ValueError(
            "fields must be {'image', 'caption'} or {'z_target', 'z_cond'}, "
            f"got {sorted(fields)}"
        )
    torch.manual_seed(seed)
    batch_size = system.net2net.config.batch_size
    data = TensorBatches({k: v if isinstance(v, Tensor) else list(v) for k, v in fields.items()})
    loader = batch_loader(data, batch_size, shuffle=True, seed=seed)
    trainer = make_trainer(scale, steps, progress_every=progress_every, progress_keys=("loss",))
    trainer.fit(system, loader)
    return system.eval()
