"""``LitPartDiscovery``: the Lightning system, and the data module of same-appearance pairs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from esser_lab.data import figures
from esser_lab.data.modules import _ProceduralDataModule
from esser_lab.nn.distributed import mean_over_ranks
from esser_lab.part_discovery.method import lor_update, part_discovery_loss
from esser_lab.part_discovery.model import Critic, PartDiscovery, PartDiscoveryConfig
from esser_lab.rodi.method import constraint_penalty, critic_loss, dual_update, shuffle_pairs
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now


class PartPairsDataModule(_ProceduralDataModule):
    """View 0 and view 1: one appearance in two independent poses (``same_appearance_pairs``).

    ``on_the_fly=False`` (tiny) generates the training set once in ``setup``; ``True`` (small,
    full: 50k pairs of 64 px images would take gigabytes) draws each batch when it is asked for
    (:class:`~esser_lab.data.modules.GeneratedBatches`). The validation set is made once.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        seed: int = 0,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(size, batch_size, num_train, num_val, seed, on_the_fly)

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        view0, view1 = figures.same_appearance_pairs(n, self.size, generator=generator)
        return {"view0": view0.image, "view1": view1.image}


class LitPartDiscovery(ResumableModule):
    """Trains ``PartDiscovery`` on (P1)–(P6), plus (P7)–(P8) when ``config.mi_constraint``.

    Each step: one Adam step of the model; with the MI constraint also one step of each critic
    (the attacked T₀, whose logits the π-encoder is trained against, and the independent T₁) on
    detached codes, then the dual update of loa (``esser_lab.rodi.dual_update``) and (P8) of lor.
    loa and lor are buffers, so checkpoints keep them; they are updated on the device, so a step
    reads nothing back to the host. ``history`` keeps per-step scalars (read lazily).

    # official code: a third critic (``mi_estimator``) is trained for logging only; T₁'s
    # reading plays that role here. The α the critics see is the α-encoder on the whole view.
    """

    resume_attributes = ("history",)

    def __init__(self, config: PartDiscoveryConfig, perceptual: torch.nn.Module | None = None):
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.automatic_optimization = False
        self.config = config
        self.model = PartDiscovery(config)
        self.perceptual = perceptual
        c = config
        self.critics = None
        if c.mi_constraint:
            self.critics = torch.nn.ModuleList(
                Critic(c.pi_size, c.appearance_size, c.critic_width, c.critic_blocks)
                for _ in range(2)
            )
        self.register_buffer("loa", torch.tensor(float(c.loa_init)))
        self.register_buffer("lor", torch.tensor(float(c.lor_init)))
        self.history = History()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        c, step = self.config, self.global_step
        optimizers = self.optimizers()
        model_opt = optimizers[0] if isinstance(optimizers, list) else optimizers
        x0, x1 = batch["view0"], batch["view1"]
        output = self.model(x0, x1)
        terms = part_discovery_loss(x0, output, c, step, self.perceptual)
        kl_pi = output.layout0.posterior.kl().mean()
        # e^lor on the device (no host sync): float64 as ``math.exp`` was, then kl_pi's dtype as
        # a Python scalar would have been cast
        loss = terms.loss + torch.exp(self.lor.double()).to(kl_pi.dtype) * kl_pi
        # tensors where the step has no float of its own: ``history`` reads them lazily
        logs = {"rec": terms.reconstruction, "kl_pi": kl_pi.detach()}
        if self.critics is not None:
            alpha1, alpha0 = self.model.alpha_encoder(x1), self.model.alpha_encoder(x0)
            pi = output.layout0.pi
            joint = self.critics[0](pi, alpha1.detach())  # (P7): gradient into π only
            target = (1.0 - c.mi_slack) * c.mi_target
            loa = self.loa.clone()  # this step's value
            penalty, gain = constraint_penalty(joint.mean(), target, loa, c.loa_lr, True)
            loss = loss + penalty
        model_opt.zero_grad()
        self.manual_backward(loss)
        model_opt.step()
        if self.critics is not None:
            pi, alpha1 = pi.detach(), alpha1.detach()
            marginal_alpha = shuffle_pairs(alpha0.detach())  # official: reversed α of view 0
            readings = []
            for critic, opt in zip(self.critics, optimizers[1:], strict=True):
                critic_terms = critic_loss(critic(pi, alpha1), critic(pi, marginal_alpha))
                opt.zero_grad()
                self.manual_backward(critic_terms.loss)
                opt.optimizer.step()  # bare step: ``global_step`` counts model steps only
                # under DDP: the mean over the ranks, so every replica updates loa/lor alike
                readings.append(mean_over_ranks(critic_terms.mi).double())
            # loa and lor stay on the device: float64 updates (the numbers of Python floats),
            # rounded into the float32 buffers; no host sync
            gain = mean_over_ranks(gain).double()
            self.loa.copy_(dual_update(loa.double(), gain, c.loa_lr, True))
            self.lor.copy_(lor_update(self.lor.double(), readings[1], c))
            logs |= {"mi_attacked": readings[0], "mi_independent": readings[1]}
            logs |= {"loa": self.loa, "lor": self.lor}  # ``append`` copies the buffers' values
        logs |= {"loss": loss.detach(), "hard_ce": terms.hard_ce}
        logs |= {"compactness": terms.compactness, "mask_kl": terms.mask_kl}
        self.history.append({"step": step, **logs})
        if log_now(self):
            shown = {k: logs[k] for k in ("loss", "rec", "hard_ce")}
            self.log_dict(shown, on_step=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201
        c = self.config

        def adam(module: torch.nn.Module) -> torch.optim.Adam:
            # edflow's TF trainer: Adam(β = (0.5, 0.9)) (as in RoDi's code)
            return torch.optim.Adam(
                module.parameters(), lr=c.learning_rate, betas=(0.5, 0.9), foreach=True
            )

        if self.critics is None:
            return adam(self.model)
        return [adam(self.model), *(adam(critic) for critic in self.critics)]
