"""Chapter 17's denoiser for ``python -m esser_lab sd3 fit`` (see :mod:`esser_lab.cli`).

As the chapter: captioned sprites (:func:`esser_lab.sd3.data.captioned_batch`, seed 1) encoded
once by the package's shipped toy autoencoder (``esser_lab/sd3/weights/ae_tiny.safetensors``,
re-made by ``python -m esser_lab.sd3.first_stage``; trained at 16 px, reused on the larger
sprites of small/full as the chapter does), the captions through the toy text encoder (the
stand-in for CLIP + T5, seed 0), and one :class:`LitMMDiT` (AdamW, warm-up, caption dropout).
``--model.formulation`` picks the chapter's formulations (``rf/lognorm(0.00,1.00)``, ``rf``,
``eps/linear``, …) and ``--set model.mmdit.backbone=…`` the backbone. ``full`` is the chapter's:
the ``small`` MMDiT trained longer on 64-px sprites. ``MMDiTConfig.paper()`` (SD3-medium) needs
SD3's 16-channel autoencoder and its three text encoders, which this command does not wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.sd3.model import MMDiTConfig

__all__ = ["NOTE", "STAGES", "CaptionsData", "MMDiTRun"]

NOTE = (
    "The toy autoencoder ships with the package (re-made by python -m esser_lab.sd3.first_stage),"
    " not a stage here. MMDiTConfig.paper() (SD3-medium) needs SD3's autoencoder and its three "
    "text encoders, which this command does not wire; full is the chapter's: small, longer, 64 "
    "px."
)


@dataclass(frozen=True)
class CaptionsData:
    """Captioned sprites of ``size`` pixels (the chapter's seed 1)."""

    num_train: int
    size: int
    seed: int = 1


@dataclass(frozen=True)
class MMDiTRun:
    """The denoiser, its formulation and how the chapter trains it (``train_model``)."""

    mmdit: MMDiTConfig
    num_steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    formulation: str = "rf/lognorm(0.00,1.00)"  # esser_lab.diffusion.formulations names
    caption_dropout: float = 0.1

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))
        check_positive(self, ("warmup_steps",), minimum=0)
        check_rates(self, ("learning_rate",))


def _model(preset: str) -> MMDiTRun:
    config = MMDiTConfig.tiny() if preset == "tiny" else MMDiTConfig.small()
    steps = {"tiny": 250, "small": 4000, "full": 40_000}[preset]
    batch = {"tiny": 64, "small": 128, "full": 256}[preset]
    rate = {"tiny": 1e-3, "small": 3e-4, "full": 1e-4}[preset]
    warmup = {"tiny": 20, "small": 200, "full": 1000}[preset]
    return MMDiTRun(config, steps, batch, rate, min(warmup, steps))


def _data(preset: str) -> CaptionsData:
    return CaptionsData(
        {"tiny": 2048, "small": 20_000, "full": 50_000}[preset],
        {"tiny": 16, "small": 32, "full": 64}[preset],
    )


def _build(config: MMDiTRun, data: CaptionsData, run: Run) -> Plan:
    import torch

    from esser_lab.data.modules import batch_loader
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.data import captioned_batch
    from esser_lab.sd3.first_stage import encode_latents, load_toy_first_stage
    from esser_lab.sd3.model import MMDiT
    from esser_lab.sd3.text import ToyTextEncoder
    from esser_lab.sd3.training import LitMMDiT

    rule = formulation(config.formulation)  # a bad name: ValueError naming the choices
    train = captioned_batch(
        data.num_train, data.size, generator=torch.Generator().manual_seed(data.seed)
    )
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the MMDiT's init as after seeding
        autoencoder = load_toy_first_stage().eval()
        latents = torch.cat([encode_latents(autoencoder, x) for x in train.image.split(512)])
    if latents.shape[1] != config.mmdit.in_channels:
        raise ValueError(
            f"the toy autoencoder's latents have {latents.shape[1]} channels, the MMDiT's "
            f"in_channels is {config.mmdit.in_channels}"
        )
    encoder = ToyTextEncoder(config.mmdit.context_dim, config.mmdit.adm_in, seed=0)
    system = LitMMDiT(
        MMDiT(config.mmdit),
        rule,
        encoder,
        learning_rate=config.learning_rate,
        warmup_steps=min(config.warmup_steps, config.num_steps),
        caption_dropout=config.caption_dropout,
    )
    side = "×".join(map(str, latents.shape[1:]))
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            {"latent": latents, "tokens": train.tokens},
            config.batch_size,
            shuffle=True,
            seed=run.seed,
        ),  # fmt: skip
        data_note=f"{data.num_train} captioned sprites at {data.size} px → latents {side}",
    )


STAGES = {
    "mmdit": Stage(
        "the MMDiT on the shipped toy autoencoder's latents (--model.formulation picks the "
        "formulation)",
        _model,
        _data,
        _build,
    ),
}
