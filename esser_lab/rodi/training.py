"""``LitRoDi``: the Lightning system (manual optimisation: the model and two MI estimators)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from esser_lab.data.modules import _ProceduralDataModule
from esser_lab.nn.distributed import mean_over_ranks
from esser_lab.rodi.data import appearance_pairs
from esser_lab.rodi.method import (
    constraint_penalty,
    critic_loss,
    dual_update,
    elbo_loss,
    ema_update,
    gamma_update,
    mi_logits,
)
from esser_lab.rodi.model import MIEstimator, RoDi, RoDiConfig
from esser_lab.scale import Scale
from esser_lab.training import seed_everything
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now, make_trainer


class FigurePairsDataModule(_ProceduralDataModule):
    """Pairs of figures with one appearance and two poses (``appearance_pairs``)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_train: int,
        num_val: int,
        jitter: float,
        seed: int = 0,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(size, batch_size, num_train, num_val, seed, on_the_fly)
        self.jitter = jitter
        self.save_hyperparameters()

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        pairs = appearance_pairs(n, self.size, self.jitter, generator=generator)
        return {"image": pairs.image, "alpha_image": pairs.alpha_image}


def fit_rodi(
    config: RoDiConfig,
    data: FigurePairsDataModule,
    scale: Scale,
    *,
    seed: int = 0,
    progress_every: int | None = None,
) -> LitRoDi:
    """Train one system from ``seed`` for ``config.num_steps`` steps; returned in eval mode.

    ``progress_every`` (default: twice per run) sets how often the text progress prints.
    """
    seed_everything(seed)
    system = LitRoDi(config)
    keys = ("loss", "rec", "kl", "gamma", "mi_honest_avg")
    trainer = make_trainer(
        scale,
        config.num_steps,
        progress_every=progress_every or max(config.num_steps // 2, 1),
        progress_keys=keys + (("mi_attacked_avg", "lambda") if system.constrained else ()),
    )
    trainer.fit(system, datamodule=data)
    return system.eval()


class LitRoDi(ResumableModule):
    """Trains RoDi (``objective="rodi"``), the ``MIMin`` ablation (``"mimin"``: γ fixed, MI
    constraint) or the fixed-γ baseline (``objective="fixed"``).

    Each step: (1) the model's loss, (R1) plus (R4) with the attacked estimator T₁, one Adam step;
    (2) one step of each estimator's critic loss (R2) on detached codes (the baseline trains only
    the honest T₂, to report MI); (3) the running means of Î₁, Î₂ and, after the warm-up, the
    updates (R5) of λ and (R6) of γ (RoDi only; ``MIMin`` keeps γ at γ₀). λ, γ and the running
    means are buffers, so they are saved; they are updated on the device in float64 (the
    numbers Python floats gave), so a step reads nothing back to the host but on logging steps.
    ``history`` keeps one dict of scalars per step for the chapter's plots.

    # official code: a third estimator (``Elbo``'s ``mi_``) is trained for logging only; T₂ plays
    # that role here. The official estimators step *before* the model's backward pass, which
    # modifies weights the pending backward still needs; we step the model first.
    """

    resume_attributes = ("history",)

    def __init__(self, config: RoDiConfig) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config)})
        self.automatic_optimization = False
        self.config = config
        self.model = RoDi(config)
        self.constrained = config.constrained  # T₁ and the MI constraint (RoDi, MIMin)
        self.estimator_attacked = MIEstimator(config) if self.constrained else None
        self.estimator_honest = MIEstimator(config)
        for name, value in {
            "lambda_": config.lambda_init,
            "gamma": config.gamma_init,
            "mi_attacked_avg": 0.0,
            "mi_honest_avg": 0.0,
            "ema_count": 0.0,
        }.items():
            self.register_buffer(name, torch.tensor(float(value)))
        self.history = History()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        c = self.config
        optimizers = self.optimizers()
        model_opt, honest_opt = optimizers[0], optimizers[1]
        x, x_alpha = batch["image"], batch["alpha_image"]
        warm = self.global_step >= c.warmup_steps
        # γ, λ and the running means stay on the device (no host sync): the float32 buffers are
        # read as float64, updated in float64 as Python floats were, and rounded back into them
        gamma, lambda_ = self.gamma.clone(), self.lambda_.clone()  # this step's values

        output = self.model(x, x_alpha)
        terms = elbo_loss(x, output, gamma)
        loss, constraint, mi_attacked = terms.loss, torch.zeros(()), torch.zeros(())
        if self.constrained:
            # gradient flows into π only; α is detached (official ``RoDi``)
            mi_attacked = self.estimator_attacked(output.pi, output.alpha.detach()).mean()
            penalty, constraint = constraint_penalty(mi_attacked, c.epsilon, lambda_, c.mu, warm)
            loss = loss + penalty
        model_opt.zero_grad()
        self.manual_backward(loss)
        model_opt.step()

        pi, alpha = output.pi.detach(), output.alpha.detach()
        honest = self._critic_step(self.estimator_honest, honest_opt, pi, alpha)
        # under DDP the readings that steer λ, γ and the running means are averaged over the
        # ranks, so every replica takes the same updates (those of the global batch)
        mi_honest = mean_over_ranks(honest.mi.detach()).double()
        count = self.ema_count.double()
        mi_honest_avg, _ = ema_update(self.mi_honest_avg.double(), count, mi_honest, c.ema_decay)
        self.mi_honest_avg.copy_(mi_honest_avg)
        # tensors: ``history`` reads them lazily
        logs = {"loss": loss.detach(), "rec": terms.reconstruction}
        logs |= {"kl": terms.kl, "gamma": gamma, "mi_honest": mi_honest}
        if self.constrained:
            attacked = self._critic_step(self.estimator_attacked, optimizers[2], pi, alpha)
            mi_attacked = mean_over_ranks(mi_attacked.detach())
            mi_attacked_avg, _ = ema_update(
                self.mi_attacked_avg.double(), count, mi_attacked.double(), c.ema_decay
            )
            self.mi_attacked_avg.copy_(mi_attacked_avg)
            constraint = mean_over_ranks(constraint).double()
            self.lambda_.copy_(dual_update(lambda_.double(), constraint, c.mu, warm))
            if c.objective == "rodi":  # MIMin keeps γ fixed
                self.gamma.copy_(
                    gamma_update(
                        gamma.double(), mi_honest_avg, mi_attacked_avg, c.l_gamma, c.b_gamma, warm
                    )
                )
            logs |= {"mi_attacked": mi_attacked.detach(), "lambda": lambda_}
            logs |= {"acc_attacked": attacked.accuracy}
        self.ema_count.add_(1)
        logs |= {"mi_honest_avg": mi_honest_avg, "mi_attacked_avg": self.mi_attacked_avg}
        self.history.append({"step": self.global_step, **logs})  # copies the buffer's value
        # Lightning logs a few keys only: each costs a little per step, and ``history`` has all
        shown = ("loss", "rec", "kl", "gamma", "mi_honest_avg", "mi_attacked_avg", "lambda")
        shown = shown if self.constrained else shown[:5]
        if log_now(self):  # values reach Lightning on logging steps only (float32, as before)
            self.log_dict({k: logs[k].float() for k in shown}, on_step=True, prog_bar=True)

    def _critic_step(self, estimator, optimizer, pi: torch.Tensor, alpha: torch.Tensor):
        terms = critic_loss(*mi_logits(estimator, pi, alpha))
        optimizer.zero_grad()  # also clears what the model's backward left in T₁
        self.manual_backward(terms.loss)
        # the bare torch optimizer: Lightning counts every wrapped step in ``global_step``, which
        # should count model steps only (it drives the warm-up and ``max_steps``)
        optimizer.optimizer.step()
        return terms

    def configure_optimizers(self):  # noqa: ANN201
        c = self.config

        def adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
            return torch.optim.Adam(module.parameters(), lr=lr, betas=c.betas, fused=True)

        # official ``MI``: estimators at 2× the model's learning rate, also Adam(β = (0.5, 0.9)).
        # (Its ``update_lr`` then resets them to 1× after the first step, evidently by mistake.)
        estimator_lr = c.estimator_lr_factor * c.learning_rate
        optimizers = [
            adam(self.model, c.learning_rate),
            adam(self.estimator_honest, estimator_lr),
        ]
        if self.constrained:
            optimizers.append(adam(self.estimator_attacked, estimator_lr))
        return optimizers
