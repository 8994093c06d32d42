"""Chapter 15's generator for ``python -m esser_lab keyframe fit`` (see :mod:`esser_lab.cli`).

As the chapter: procedural clips (:func:`esser_lab.data.video.sample_clips`, seed 1) become fill
problems (:func:`keyframe_samples`, seed 3, half of them with corrupted flow), and one
:class:`LitKeyframe` trains on them. ``--stage generator`` trains the preset's arm (both streams);
the chapter's ablation arms are ``--set 'model.generator.streams=[]'`` (no keyframe),
``[global]`` and ``[local]``. The objective is the chapter's: the toy's L1 at ``tiny``, the
paper's (LaMa's losses, the discriminator, the ADE20k ResNet-50 perceptual loss, accumulation
and warm-up + cosine) at ``small``/``full``, at the official ``main.py`` learning rate.

The perceptual network follows ``--pretrained``: ``stand-in`` gives seeded weights (measures
nothing perceptual); ``published`` needs a user-provided file, never downloaded (it is not in
torchvision and has no published checksum): place the CSAIL release's ``encoder_epoch_20.pth``
at :func:`esser_lab.keyframe.pretrained.default_ade20k_path` or pass
``--model.perceptual_path``; without it the stage stops with a message saying where it goes.
``full`` is the chapter's: the ``small`` generator trained longer on more clips
(``KeyframeConfig.paper()`` is ``configs/ours.yaml`` at 256², for Places365 and real videos).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.keyframe.model import KeyframeConfig

__all__ = ["NOTE", "STAGES", "ClipsData", "KeyframeRun"]

NOTE = (
    "small/full with --pretrained published need a file you provide: the ADE20k ResNet-50 of the "
    "perceptual loss is never downloaded (not in torchvision, no published checksum); place "
    "encoder_epoch_20.pth where the error says or pass --model.perceptual_path, or use "
    "--pretrained stand-in (seeded weights: measures nothing perceptual). KeyframeConfig.paper() "
    "needs Places365 and real videos."
)


@dataclass(frozen=True)
class ClipsData:
    """Clips at the generator's size and their fill problems (the chapter's seeds)."""

    num_train: int
    frames: int = 8
    corrupt: float = 0.5  # the share of problems whose flow is wrong
    clip_seed: int = 1
    problem_seed: int = 3


@dataclass(frozen=True)
class KeyframeRun:
    """The generator and how the chapter trains it (``fit_keyframe``'s arguments)."""

    generator: KeyframeConfig
    num_steps: int
    batch_size: int
    learning_rate: float
    objective: Literal["l1", "paper"]
    perceptual_path: str | None = None  # the ADE20k encoder's file (published weights only)

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))
        check_rates(self, ("learning_rate",))


def _model(preset: str) -> KeyframeRun:
    from esser_lab.keyframe.method import PAPER_LOSS

    config = KeyframeConfig.tiny() if preset == "tiny" else KeyframeConfig.small()
    steps = {"tiny": 200, "small": 20_000, "full": 100_000}[preset]
    batch = {"tiny": 8, "small": 32, "full": 64}[preset]
    if preset == "tiny":
        return KeyframeRun(config, steps, batch, 2e-3, "l1")
    # the official main.py: base_learning_rate × accumulate_grad_batches × GPUs × batch size
    # (one GPU here)
    rate = PAPER_LOSS["base_learning_rate"] * PAPER_LOSS["accumulate_grad_batches"] * batch
    return KeyframeRun(config, steps, batch, rate, "paper")


def _data(preset: str) -> ClipsData:
    return ClipsData({"tiny": 1600, "small": 50_000, "full": 200_000}[preset])


def _build(config: KeyframeRun, data: ClipsData, run: Run) -> Plan:
    import torch

    from esser_lab.data.modules import batch_loader
    from esser_lab.data.video import sample_clips
    from esser_lab.keyframe.method import keyframe_samples
    from esser_lab.keyframe.model import KeyframeGenerator
    from esser_lab.keyframe.training import LitKeyframe

    size = config.generator.image_size
    clips = sample_clips(
        data.num_train, data.frames, size, generator=torch.Generator().manual_seed(data.clip_seed)
    )
    train = keyframe_samples(
        clips, torch.Generator().manual_seed(data.problem_seed), corrupt=data.corrupt
    )
    generator = KeyframeGenerator(config.generator)
    if config.objective == "l1":
        system = LitKeyframe(generator, learning_rate=config.learning_rate)
    else:
        from esser_lab.keyframe.pretrained import ade20k_encoder
        from esser_lab.pretrained import describe

        perceptual = ade20k_encoder(run.pretrained, config.perceptual_path, seed=run.seed)
        print(describe(run.pretrained, "the ADE20k ResNet-50 of the perceptual loss"))
        system = LitKeyframe(
            generator,
            learning_rate=config.learning_rate,
            objective="paper",
            perceptual=perceptual,
        )
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            train.as_dict(), config.batch_size, shuffle=True, seed=run.seed
        ),
        data_note=f"{data.num_train} clips of {data.frames} frames at {size} px, "
        f"{data.corrupt:.0%} with wrong flow",
    )


STAGES = {
    "generator": Stage(
        "the keyframe generator (the ablation's arms: --set model.generator.streams=[...])",
        _model,
        _data,
        _build,
    ),
}
