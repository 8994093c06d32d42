"""``LitKeyframe``: the Lightning system of a keyframe propagation generator (chapter 15).

Esser, Michael & Sengupta 2022 (arXiv 2205.09731). Each batch is a dict of the fields of
:class:`~esser_lab.keyframe.method.KeyframeSamples` (target frame, hole mask, keyframes, flows,
flow errors). Two objectives:

* ``"l1"`` (the tiny default, stated in the chapter): one Adam step on
  :func:`~esser_lab.keyframe.method.inpainting_loss` of the generator's raw output;
* ``"paper"`` (``small``/``full``, :func:`fit_keyframe`): the official
  ``DefaultInpaintingTrainingModule`` at the weights of
  :data:`~esser_lab.keyframe.method.PAPER_LOSS`, with manual optimisation: per batch (1) the
  generator step on :func:`~esser_lab.keyframe.losses.lama_generator_loss` (known-region L1,
  non-saturating adversarial loss, discriminator feature matching, the ADE20k ResNet-50
  perceptual loss) with the discriminator frozen, (2) the discriminator step on
  :func:`~esser_lab.keyframe.losses.adversarial_discriminator_loss` (R1 on the real frames,
  the hole's patches of the detached output as fake), Adam at ``discriminator_lr_factor`` of
  the generator's learning rate; as ``configs/ours.yaml``, both optimisers step every
  ``accumulate_grad_batches`` (2) batches on the mean of their gradients, and both learning
  rates follow the config's ``LambdaWarmUpCosineScheduler`` (:class:`WarmUpCosine`: from 1e-4
  of the rate up to all of it over 1,000 steps, then a cosine down to 1e-4 of it at step
  10⁶), a Lightning scheduler per optimiser, stepped with each optimiser step.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Dataset

from esser_lab.keyframe.losses import (
    LamaNLayerDiscriminator,
    adversarial_discriminator_loss,
    lama_generator_loss,
)
from esser_lab.keyframe.method import PAPER_LOSS, KeyframeSamples, inpainting_loss
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["OBJECTIVES", "LitKeyframe", "WarmUpCosine", "fit_keyframe"]

#: ``"l1"``: the toy's loss; ``"paper"``: LaMa's losses at :data:`PAPER_LOSS`.
OBJECTIVES = ("l1", "paper")
_LOSS_KEYS = (
    "l1_weight_missing",
    "l1_weight_known",
    "adversarial_weight",
    "r1_gp_coef",
    "feature_matching_weight",
    "resnet_perceptual_weight",
)


class WarmUpCosine:
    """The learning-rate factor of the official ``scheduler_config``
    (``gi.lr_scheduler.LambdaWarmUpCosineScheduler``, the taming-transformers schedule the
    repository's missing ``gi/lr_scheduler.py`` names): at optimiser step n, ``start`` rising
    linearly to ``peak`` over ``warm_up_steps``, then ``floor`` + (``peak`` − ``floor``)·(1 +
    cos π·t)/2 with t = (n − warm_up_steps)/(``max_decay_steps`` − warm_up_steps), capped at 1.
    The config's values are the defaults (1,000 warm-up steps of 10⁶; 1e-4, 1, 1e-4); plain
    numbers only, so a :class:`~torch.optim.lr_scheduler.LambdaLR` over it saves and resumes."""

    def __init__(
        self,
        warm_up_steps: int = 1000,
        max_decay_steps: int = 1_000_000,
        start: float = 1e-4,
        peak: float = 1.0,
        floor: float = 1e-4,
    ) -> None:
        if warm_up_steps < 0 or max_decay_steps <= warm_up_steps:
            raise ValueError(
                f"need 0 ≤ warm_up_steps < max_decay_steps, got {warm_up_steps}, {max_decay_steps}"
            )
        self.warm_up_steps, self.max_decay_steps = int(warm_up_steps), int(max_decay_steps)
        self.start, self.peak, self.floor = float(start), float(peak), float(floor)

    def __call__(self, n: int) -> float:
        if n < self.warm_up_steps:
            return self.start + (self.peak - self.start) * n / self.warm_up_steps
        t = min((n - self.warm_up_steps) / (self.max_decay_steps - self.warm_up_steps), 1.0)
        return self.floor + 0.5 * (self.peak - self.floor) * (1 + math.cos(math.pi * t))


class LitKeyframe(ResumableModule):
    """Trains ``generator`` to fill the target's hole; ``learning_rate``, ``betas``: Adam's
    (the paper: Adam, ``base_learning_rate`` 1e-5, which the official ``main.py`` scales by
    accumulate_grad_batches × GPUs × batch size: 2 × GPUs × 8, 1.6e-4 on one GPU and 3.2e-4 on
    the two of the official README's training command, warmed up over
    1,000 steps, then a cosine decay; the toy's is constant, without accumulation);
    ``known_weight``: the weight of the known-region L1 (``"l1"`` only).

    ``objective="paper"`` only: ``accumulate_grad_batches`` (default the config's 2): both
    players step every that many batches, on the mean of the batches' gradients (Lightning's
    accumulation, done here: manual optimisation has none); ``schedule``: the learning-rate
    factor per optimiser step, a ``LambdaLR`` on each optimiser (None: :class:`WarmUpCosine`
    at the config's values; pass another :class:`WarmUpCosine` to fit it into a shorter run).

    ``objective="paper"``: ``perceptual`` is the frozen ADE20k encoder
    (:func:`esser_lab.keyframe.pretrained.ade20k_encoder`; None only with
    ``resnet_perceptual_weight`` 0), ``discriminator`` defaults to the paper's
    :class:`~esser_lab.keyframe.losses.LamaNLayerDiscriminator` (ndf 64, 4 layers),
    ``loss_weights`` to :data:`PAPER_LOSS`, ``discriminator_lr_factor`` to its 0.1. The
    discriminator and the perceptual encoder are submodules (keys ``discriminator.*``,
    ``perceptual.*``, as the official ``discriminator.*`` and ``loss_resnet_pl.impl.*``).

    # official code (PL 1.x, ``optimizer_idx``): the generator runs twice per batch, once per
    # optimizer; here once, the discriminator step reusing its output detached.
    """

    resume_attributes = ("history",)

    def __init__(
        self,
        generator: KeyframeGenerator,
        *,
        learning_rate: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        known_weight: float = 1.0,
        objective: Literal["l1", "paper"] = "l1",
        perceptual: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        loss_weights: dict[str, float] | None = None,
        discriminator_lr_factor: float | None = None,
        accumulate_grad_batches: int | None = None,
        schedule: WarmUpCosine | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(generator, KeyframeGenerator):
            raise TypeError(
                f"generator must be a KeyframeGenerator, got {type(generator).__name__}"
            )
        if not learning_rate > 0 or known_weight < 0:
            raise ValueError(
                f"learning_rate must be > 0 and known_weight ≥ 0, got {learning_rate}, "
                f"{known_weight}"
            )
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.generator = generator
        self.learning_rate = float(learning_rate)
        self.betas = tuple(betas)
        self.known_weight = float(known_weight)
        self.objective = objective
        self.history = History()
        self.seconds = 0.0
        if objective == "l1":
            extra = (
                perceptual,
                discriminator,
                loss_weights,
                discriminator_lr_factor,
                accumulate_grad_batches,
                schedule,
            )
            if any(x is not None for x in extra):
                raise ValueError(
                    "perceptual, discriminator, loss_weights, discriminator_lr_factor, "
                    "accumulate_grad_batches and schedule belong to objective='paper'"
                )
            return
        weights = dict(PAPER_LOSS if loss_weights is None else loss_weights)
        missing = [k for k in _LOSS_KEYS if k not in weights]
        if missing:
            raise KeyError(f"loss_weights lacks {missing} (keys as PAPER_LOSS)")
        if perceptual is None and weights["resnet_perceptual_weight"]:
            raise ValueError(
                "objective='paper' needs the perceptual encoder (esser_lab.keyframe.pretrained."
                "ade20k_encoder), or resnet_perceptual_weight 0 in loss_weights"
            )
        self.loss_weights = {k: float(weights[k]) for k in _LOSS_KEYS}
        factor = PAPER_LOSS["discriminator_lr_factor"]
        self.discriminator_lr_factor = float(
            factor if discriminator_lr_factor is None else discriminator_lr_factor
        )
        if not self.discriminator_lr_factor > 0:
            raise ValueError(
                f"discriminator_lr_factor must be > 0, got {self.discriminator_lr_factor}"
            )
        accumulate = PAPER_LOSS["accumulate_grad_batches"]
        if accumulate_grad_batches is not None:
            accumulate = accumulate_grad_batches
        if type(accumulate) is not int or accumulate < 1:
            raise ValueError(f"accumulate_grad_batches must be an int ≥ 1, got {accumulate!r}")
        self.accumulate_grad_batches = accumulate
        warm_up = int(PAPER_LOSS["warm_up_steps"])
        self.schedule = WarmUpCosine(warm_up) if schedule is None else schedule
        self.automatic_optimization = False
        self.discriminator = discriminator or LamaNLayerDiscriminator(3, 64, 4)
        self.perceptual = None if perceptual is None else perceptual.requires_grad_(False).eval()

    def forward(self, samples: KeyframeSamples) -> Tensor:
        image, keys = samples.inputs()
        return self.generator(image, keys, samples.flows, samples.flow_errors)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        samples = KeyframeSamples.from_dict(batch)
        if self.objective == "paper":
            self._paper_step(samples)
            return None
        prediction = self(samples)
        loss = inpainting_loss(prediction, samples.image, samples.mask, self.known_weight)
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True)
        return loss

    def _paper_step(self, samples: KeyframeSamples) -> None:
        g_opt, d_opt = self.optimizers()
        step = self.global_step  # optimiser steps so far (only the generator's counts)
        k = self.accumulate_grad_batches
        # the k-th batch of an accumulation steps both players (history: one row a batch)
        steps_now = (len(self.history) + 1) % k == 0
        if len(self.history) % k == 0:  # the first batch of an accumulation
            g_opt.zero_grad()
            d_opt.zero_grad()
        w = self.loss_weights
        prediction = self(samples)
        self.discriminator.requires_grad_(False)
        terms = lama_generator_loss(
            prediction, samples.image, samples.mask, self.discriminator, self.perceptual, w
        )
        self.manual_backward(terms.loss / k)  # the mean over the accumulated batches

        self.discriminator.requires_grad_(True)
        real = samples.image.detach().requires_grad_(True)  # R1 differentiates D(x) in x
        real_logits, _ = self.discriminator(real)
        fake_logits, _ = self.discriminator(prediction.detach())
        d_loss, penalty = adversarial_discriminator_loss(
            real_logits, fake_logits, real, samples.mask, gp_coef=w["r1_gp_coef"]
        )
        self.manual_backward(d_loss / k)
        lr = float(g_opt.optimizer.param_groups[0]["lr"])  # the generator's rate at this step
        if steps_now:
            g_opt.step()
            # the bare torch optimizer: a wrapped step would count in ``global_step`` again
            d_opt.optimizer.step()
            for scheduler in self.lr_schedulers():
                scheduler.step()
        logs = {
            "loss": terms.loss.detach(),
            "l1": terms.l1.detach(),
            "adversarial": terms.adversarial.detach(),
            "feature_matching": terms.feature_matching.detach(),
            "perceptual": terms.perceptual.detach(),
            "d_loss": d_loss.detach(),
            "r1": penalty,
            "logits_real": real_logits.detach().mean(),
            "logits_fake": fake_logits.detach().mean(),
        }
        self.history.append({"step": step, "lr": lr, **logs})
        if log_now(self):
            shown = ("loss", "l1", "adversarial", "d_loss")
            self.log_dict({k: logs[k] for k in shown}, on_step=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201
        def adam(parameters, lr: float) -> torch.optim.Adam:  # noqa: ANN001
            return torch.optim.Adam(parameters, lr=lr, betas=self.betas, foreach=True)

        g_opt = adam(self.generator.parameters(), self.learning_rate)
        if self.objective == "l1":
            return g_opt
        lr = self.learning_rate * self.discriminator_lr_factor
        optimizers = [g_opt, adam(self.discriminator.parameters(), lr)]
        # one LambdaLR each (the official's per-optimiser schedulers), stepped in _paper_step
        schedulers = [LambdaLR(o, lr_lambda=self.schedule) for o in optimizers]
        return optimizers, schedulers


def fit_keyframe(
    config: KeyframeConfig,
    samples: KeyframeSamples | Dataset,
    scale,  # noqa: ANN001 (esser_lab.scale.Scale)
    *,
    steps: int,
    batch_size: int,
    learning_rate: float = 2e-3,
    seed: int = 0,
    objective: Literal["l1", "paper"] | None = None,
    perceptual_path: str | None = None,
) -> LitKeyframe:
    """Train one generator of ``config`` from ``seed`` for ``steps`` steps on ``samples``
    (shuffled by ``seed``); returned in eval mode on ``scale.device`` with the wall seconds of
    training in ``.seconds``. Every arm of the chapter's ablation calls this with the same
    arguments but the config's ``streams``. ``samples``: a fixed set, or a dataset of whole
    batches of its fields (``esser_lab.data.batches.GeneratedBatches``: problems drawn when a
    batch is asked for, as small/full do).

    ``objective``: None picks ``"l1"`` at ``tiny`` (the toy's stated loss) and ``"paper"`` at
    ``small``/``full`` (LaMa's losses, :data:`PAPER_LOSS`), whose ADE20k ResNet-50 follows
    ``scale.pretrained``: the published encoder read from ``perceptual_path`` (default
    :func:`esser_lab.keyframe.pretrained.default_ade20k_path`; missing: a ``FileNotFoundError``
    saying where to put it), or a seeded stand-in (CI's small pass)."""
    from esser_lab.data.modules import batch_loader
    from esser_lab.training import seed_everything
    from esser_lab.training.trainer import make_trainer

    if objective is None:
        objective = "l1" if scale.name == "tiny" else "paper"
    perceptual = None
    if objective == "paper":
        from esser_lab.keyframe.pretrained import ade20k_encoder

        perceptual = ade20k_encoder(scale.pretrained, perceptual_path, seed=seed)
    seed_everything(seed)
    generator = KeyframeGenerator(config)
    if objective == "l1":
        system = LitKeyframe(generator, learning_rate=learning_rate)
    else:
        system = LitKeyframe(
            generator, learning_rate=learning_rate, objective="paper", perceptual=perceptual
        )
    fields = samples.as_dict() if isinstance(samples, KeyframeSamples) else samples
    loader = batch_loader(fields, batch_size, shuffle=True, seed=seed)
    start = time.perf_counter()
    trainer = make_trainer(scale, steps, progress_every=max(steps // 2, 1))
    trainer.fit(system, loader)
    system.seconds = time.perf_counter() - start
    return system.to(scale.device).eval()
