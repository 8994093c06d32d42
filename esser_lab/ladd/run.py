"""Chapter 18's student for ``python -m esser_lab ladd fit`` (see :mod:`esser_lab.cli`).

As the chapter: the package's shipped rectified-flow teacher (chapter 17's MMDiT on the toy
autoencoder's latents, ``esser_lab/ladd/weights/teacher_tiny.safetensors``, re-made by
``python -m esser_lab.ladd.teacher``; the chapter distils it at every scale) is distilled into a
2-step student by :class:`LitLADD`. Its data are the teacher's own guided samples for the captions
of chapter 17's training sprites (seed 1; noise seed 10; read from the package's file when it
holds exactly these, else generated, on a GPU when there is one), or with ``--data.latents
real`` the encoded sprites themselves (the chapter's data comparison). The re-noising level t̂
is the chapter's high-noise one (``--set model.ladd.disc_mean=-1`` for its low-noise arm).
``full`` is the chapter's: ``LADDConfig.small()`` trained longer on more captions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive
from esser_lab.ladd.model import LADDConfig

__all__ = ["NOTE", "STAGES", "LADDRun", "TeacherSamples"]

NOTE = (
    "The teacher ships with the package (re-made by python -m esser_lab.ladd.teacher) and is "
    "distilled at every preset, as in the chapter; SD3-Turbo's teacher (SD3 8 B) is not offered."
)


@dataclass(frozen=True)
class TeacherSamples:
    """The student's data: the teacher's guided samples (``synthetic``) or the real latents."""

    num_train: int
    latents: Literal["synthetic", "real"] = "synthetic"
    teacher_steps: int = 50  # Euler steps of the teacher's samples ("the many-step teacher")
    guidance: float = 3.0
    noise_seed: int = 10
    seed: int = 1  # the captions' sprites


@dataclass(frozen=True)
class LADDRun:
    """The distillation's config (student steps, t̂'s logit-normal, …), its steps and batch."""

    ladd: LADDConfig
    num_steps: int
    batch_size: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))


def _model(preset: str) -> LADDRun:
    config = LADDConfig.tiny() if preset == "tiny" else LADDConfig.small()
    config = replace(config, student_steps=2, disc_mean=1.0, disc_std=1.0)  # high t̂
    steps = {"tiny": 100, "small": 2000, "full": 10_000}[preset]
    batch = {"tiny": 32, "small": 128, "full": 256}[preset]
    return LADDRun(config, steps, batch)


def _data(preset: str) -> TeacherSamples:
    return TeacherSamples(
        {"tiny": 512, "small": 4096, "full": 16_384}[preset],
        teacher_steps={"tiny": 25, "small": 50, "full": 50}[preset],
    )


def _build(config: LADDRun, data: TeacherSamples, run: Run) -> Plan:
    import torch

    from esser_lab.data.modules import batch_loader
    from esser_lab.ladd.method import synthesize
    from esser_lab.ladd.synthetic import load_synthetic
    from esser_lab.ladd.teacher import load_teacher, sprite_latents
    from esser_lab.ladd.training import LitLADD
    from esser_lab.sd3.text import ToyTextEncoder

    with torch.random.fork_rng(devices=[]):  # the student's init draws as right after seeding
        teacher = load_teacher()
        real, train = sprite_latents(data.num_train, seed=data.seed)
    encoder = ToyTextEncoder(teacher.config.context_dim, teacher.config.adm_in, seed=0)
    note = f"{data.num_train} encoded sprites"
    latents = real
    if data.latents == "synthetic":
        settings = {"steps": data.teacher_steps, "guidance": data.guidance}
        latents = load_synthetic(train.tokens, seed=data.noise_seed, **settings)
        made = "the package's file"
        if latents is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            null = {k: torch.zeros_like(v) for k, v in encoder.encode(train.tokens[:1]).items()}
            latents = synthesize(
                teacher.to(device), encoder.encode(train.tokens), null, tuple(real.shape[1:]),
                seed=data.noise_seed, **settings,
            ).cpu()  # fmt: skip
            teacher = teacher.cpu()
            made = "generated"
        note = (f"the teacher's samples ({data.teacher_steps} guided Euler steps, s = "
                f"{data.guidance:g}; {made}) for {data.num_train} captions")  # fmt: skip
    system = LitLADD(teacher, encoder, config.ladd)
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            {"latent": latents, "tokens": train.tokens},
            config.batch_size,
            shuffle=True,
            seed=run.seed,
        ),  # fmt: skip
        progress_keys=("loss_g", "loss_d"),
        data_note=note,
    )


STAGES = {
    "student": Stage(
        "the few-step student of the shipped teacher (--data.latents synthetic|real)",
        _model,
        _data,
        _build,
    ),
}
