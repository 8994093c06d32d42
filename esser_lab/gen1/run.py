"""Chapter 16's model for ``python -m esser_lab gen1 fit`` (see :mod:`esser_lab.cli`).

As the chapter (:func:`esser_lab.gen1.chapter.fit_gen1`): procedural clips of one object
(:func:`esser_lab.data.video.sample_clips`, seed 1) with their exact depth as the structure and
the object's content code (:func:`esser_lab.gen1.claims.content_code`) as the content; one
:class:`LitGen1` (v-prediction, Stable Diffusion's noise schedule, clips folded 2×2 into latents
by ``PixelFold``, image batches and content dropout). ``full`` is the chapter's: the ``small`` UNet
trained longer on more clips (``Gen1Config.paper()`` is Stable Diffusion's UNet on SD's KL-f8
latents, initialised from SD's file: see the chapter's full-scale section).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.gen1.model import Gen1Config

__all__ = ["NOTE", "STAGES", "ClipsData", "Gen1Run"]

FOLD = 2  # PixelFold(2): 2×2 pixels to 12 latent channels

NOTE = (
    "Gen1Config.paper() starts from Stable Diffusion's weights on its KL-f8 latents "
    "(esser_lab.gen1.checkpoint): not offered here; full is the chapter's: the small UNet, "
    "longer."
)


@dataclass(frozen=True)
class ClipsData:
    """Clips of ``objects`` objects at the UNet's pixel size (the chapter's seed 1)."""

    num_train: int
    frames: int = 8
    objects: int = 1
    seed: int = 1


@dataclass(frozen=True)
class Gen1Run:
    """The video UNet and how the chapter trains it (``fit_gen1``'s arguments)."""

    unet: Gen1Config
    num_steps: int
    batch_size: int
    learning_rate: float
    p_image: float = 0.25  # the share of batches trained as single images (no temporal layers)
    p_drop: float = 0.1  # content dropout

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))
        check_rates(self, ("learning_rate",))


def _content_dim(objects: int = 1) -> int:
    from esser_lab.data.sprites import COLOURS, TEXTURES

    return objects * (len(COLOURS) + len(TEXTURES))  # content_code's width


def _model(preset: str) -> Gen1Run:
    make = Gen1Config.tiny if preset == "tiny" else Gen1Config.small
    config = replace(make(_content_dim()), parameterization="v")
    steps = {"tiny": 220, "small": 20_000, "full": 100_000}[preset]
    batch = {"tiny": 6, "small": 32, "full": 64}[preset]
    rate = {"tiny": 2e-3, "small": 5e-4, "full": 1e-4}[preset]
    return Gen1Run(config, steps, batch, rate)


def _data(preset: str) -> ClipsData:
    return ClipsData({"tiny": 1024, "small": 8192, "full": 32_768}[preset])


def _build(config: Gen1Run, data: ClipsData, run: Run) -> Plan:
    import torch

    from esser_lab.data.modules import batch_loader
    from esser_lab.data.video import sample_clips
    from esser_lab.diffusion import DiscreteSchedule
    from esser_lab.gen1.claims import content_code
    from esser_lab.gen1.method import PixelFold
    from esser_lab.gen1.model import Gen1UNet
    from esser_lab.gen1.training import LitGen1

    size = config.unet.unet.image_size * FOLD
    clips = sample_clips(
        data.num_train,
        data.frames,
        size,
        data.objects,
        generator=torch.Generator().manual_seed(data.seed),
    )
    code = content_code(clips.colour, clips.texture, clips.object_depth)
    if code.shape[1] != config.unet.content_dim:
        raise ValueError(
            f"the content code of {data.objects} object(s) is {code.shape[1]}-d but the UNet's "
            f"content_dim is {config.unet.content_dim}: pass --set "
            f"model.unet.content_dim={code.shape[1]}"
        )
    system = LitGen1(
        Gen1UNet(config.unet),
        PixelFold(FOLD),
        DiscreteSchedule.stable_diffusion(),  # Gen-1 is SD-based: SD's schedule
        learning_rate=config.learning_rate,
        p_image=config.p_image,
        p_drop=config.p_drop,
    )
    fields = {"video": clips.video, "depth": clips.depth, "content": code}
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(fields, config.batch_size, shuffle=True, seed=run.seed),
        data_note=f"{data.num_train} clips of {data.frames} frames at {size} px",
    )


STAGES = {
    "gen1": Stage("the structure- and content-guided video UNet", _model, _data, _build),
}
