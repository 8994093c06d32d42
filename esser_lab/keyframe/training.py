"""``LitKeyframe``: the Lightning system of a keyframe propagation generator (chapter 15).

Esser, Michael & Sengupta 2022 (arXiv 2205.09731). Each batch is a dict of the fields of
:class:`~esser_lab.keyframe.method.KeyframeSamples` (target frame, hole mask, keyframes, flows,
flow errors); one Adam step on :func:`~esser_lab.keyframe.method.inpainting_loss` of the
generator's raw output. The official system (``DefaultInpaintingTrainingModule``) also trains a
discriminator with LaMa's adversarial, feature-matching and ResNet perceptual losses
(:data:`~esser_lab.keyframe.method.PAPER_LOSS`); the toy does not (see ``method``).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from esser_lab.keyframe.method import KeyframeSamples, inpainting_loss
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitKeyframe", "fit_keyframe"]


class LitKeyframe(ResumableModule):
    """Trains ``generator`` to fill the target's hole; ``learning_rate``, ``betas``: Adam's
    (the paper: Adam, ``base_learning_rate`` 1e-5, which the official ``main.py`` scales by
    accumulate_grad_batches × GPUs × batch size, 2 × 1 × 8: 1.6e-4 per GPU, warmed up over
    1,000 steps, then a cosine decay; the toy's is constant);
    ``known_weight``: the weight of the known-region L1."""

    resume_attributes = ("history",)

    def __init__(
        self,
        generator: KeyframeGenerator,
        *,
        learning_rate: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        known_weight: float = 1.0,
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
        self.generator = generator
        self.learning_rate = float(learning_rate)
        self.betas = tuple(betas)
        self.known_weight = float(known_weight)
        self.history = History()
        self.seconds = 0.0

    def forward(self, samples: KeyframeSamples) -> Tensor:
        image, keys = samples.inputs()
        return self.generator(image, keys, samples.flows, samples.flow_errors)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        samples = KeyframeSamples.from_dict(batch)
        prediction = self(samples)
        loss = inpainting_loss(prediction, samples.image, samples.mask, self.known_weight)
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.generator.parameters(), lr=self.learning_rate, betas=self.betas, foreach=True
        )


def fit_keyframe(
    config: KeyframeConfig,
    samples: KeyframeSamples,
    scale,  # noqa: ANN001 (esser_lab.scale.Scale)
    *,
    steps: int,
    batch_size: int,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> LitKeyframe:
    """Train one generator of ``config`` from ``seed`` for ``steps`` steps on ``samples``
    (shuffled by ``seed``); returned in eval mode on ``scale.device`` with the wall seconds of
    training in ``.seconds``. Every arm of the chapter's ablation calls this with the same
    arguments but the config's ``streams``."""
    from esser_lab.data.modules import batch_loader
    from esser_lab.training import seed_everything
    from esser_lab.training.trainer import make_trainer

    seed_everything(seed)
    system = LitKeyframe(KeyframeGenerator(config), learning_rate=learning_rate)
    loader = batch_loader(samples.as_dict(), batch_size, shuffle=True, seed=seed)
    start = time.perf_counter()
    trainer = make_trainer(scale, steps, progress_every=max(steps // 2, 1))
    trainer.fit(system, loader)
    system.seconds = time.perf_counter() - start
    return system.to(scale.device).eval()
