"""Chapter 14's stages for ``python -m esser_lab ldm fit`` (see :mod:`esser_lab.cli`).

As the chapter: scikit-learn's digits (1,500 of them, drawn by a permutation seeded 0), one KL
autoencoder and one class-conditional UNet. ``--stage autoencoder`` trains the KL first stage
(:class:`LitGANAutoencoder`: L1 + KL, no LPIPS, the discriminator off, as at every scale of the
chapter) at f = 4 and exports ``autoencoder.safetensors``; ``--stage ldm`` trains the latent
diffusion model (:class:`LitLatentDiffusion`, ``scale_by_std``) on that frozen autoencoder's
latents; ``--stage pixel`` the same UNet in pixel space (LDM-1, the chapter's comparison).
Other factors: ``--set model.autoencoder.ddconfig.ch_mult=[1,1,1,1]`` (f = 8 at tiny), with the
ldm stage's ``--model.unet`` side and channels following (the error says which).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive
from esser_lab.ldm.model import LDMConfig
from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.nn.first_stage import AutoencoderKLConfig

__all__ = ["NOTE", "STAGES", "DigitsData", "KLAutoencoderRun", "load_first_stage"]

SIZE = {"tiny": 16, "small": 32, "full": 64}  # the chapter's image side
BATCH = {"tiny": 32, "small": 64, "full": 64}
LATENT_FACTOR = 4  # the chapter's "moderate f"

NOTE = (
    "LDMConfig.paper() (cin256-v2) diffuses an ImageNet VQ-f4 autoencoder's latents, which this "
    "command does not train; full is the chapter's: the small UNet on 64-px digits, longer."
)


@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's digits at the model's size: the first ``num_train`` of a permutation
    seeded ``seed`` (the chapter holds the other 297 out)."""

    num_train: int = 1500
    seed: int = 0


@dataclass(frozen=True)
class KLAutoencoderRun:
    """The KL first stage and how the chapter trains it (``LitGANAutoencoder``)."""

    autoencoder: AutoencoderKLConfig
    loss: GANAutoencoderLossConfig
    optimizer: GANOptimizerConfig
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps",))


def _autoencoder(preset: str) -> KLAutoencoderRun:
    """The chapter's f = 4 autoencoder on 1-channel digits; L1 + KL, no LPIPS, no discriminator."""
    size, batch = SIZE[preset], BATCH[preset]
    make = AutoencoderKLConfig.tiny if size == 16 else AutoencoderKLConfig.small
    base = make(LATENT_FACTOR)
    dd = replace(base.ddconfig, in_channels=1, out_ch=1, resolution=size)
    loss = replace(
        GANAutoencoderLossConfig.tiny(), disc_start=10**9, disc_in_channels=1, learn_logvar=False
    )
    optimizer = GANOptimizerConfig(base_learning_rate=2e-3 / batch, batch_size=batch)
    steps = {"tiny": 60, "small": 5_000, "full": 50_000}[preset]
    return KLAutoencoderRun(replace(base, ddconfig=dd), loss, optimizer, steps)


def _ldm(preset: str, channels: int, side: int) -> LDMConfig:
    make = LDMConfig.tiny if preset == "tiny" else LDMConfig.small
    steps = {"tiny": 150, "small": 20_000, "full": 200_000}[preset]
    return replace(make(channels, side), batch_size=BATCH[preset], num_steps=steps)


def _latent_ldm(preset: str) -> LDMConfig:
    first = _autoencoder(preset).autoencoder
    return _ldm(preset, first.embed_dim, first.resolution // first.factor)


def _pixel_ldm(preset: str) -> LDMConfig:
    return replace(_ldm(preset, 1, SIZE[preset]), scale_by_std=False)


def _digits(data: DigitsData, size: int) -> dict[str, torch.Tensor]:
    from esser_lab.data.digits import load_digits

    images, labels = load_digits(size)
    if not 1 <= data.num_train <= len(images):
        raise ValueError(f"num_train must be in [1, {len(images)}], got {data.num_train}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(data.seed))
    keep = order[: data.num_train]
    return {"image": images[keep], "label": labels[keep]}


def _build_autoencoder(config: KLAutoencoderRun, data: DigitsData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.nn.first_stage import AutoencoderKL
    from esser_lab.taming.training import LitGANAutoencoder

    first = config.autoencoder
    if first.in_channels != 1:
        raise ValueError(f"the digits are grey: autoencoder in_channels must be 1, got "
                         f"{first.in_channels}")  # fmt: skip
    if config.loss.perceptual_weight > 0:
        raise ValueError("the chapter trains without LPIPS: loss.perceptual_weight must be 0")
    model = AutoencoderKL(first)
    system = LitGANAutoencoder(model, config.loss, config.optimizer)
    fields = _digits(data, first.resolution)
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            {"image": fields["image"]}, config.optimizer.batch_size, shuffle=True, seed=run.seed
        ),
        progress_keys=("loss", "rec"),
        export=(model, asdict(first)),
        data_note=f"{data.num_train} digits at {first.resolution} px, f = {first.factor}",
    )


def load_first_stage(path) -> torch.nn.Module:  # noqa: ANN001
    """The KL autoencoder exported by the autoencoder stage, frozen."""
    from esser_lab.nn.first_stage import AutoencoderKL
    from esser_lab.training.checkpoint import load_checkpoint, read_checkpoint

    _, stored = read_checkpoint(path)
    model = AutoencoderKL(AutoencoderKLConfig.from_dict(stored))
    load_checkpoint(model, path)
    return model.requires_grad_(False).eval()


def _diffusion_plan(config: LDMConfig, data: DigitsData, run: Run, first_stage, size) -> Plan:  # noqa: ANN001
    from esser_lab.data.modules import batch_loader
    from esser_lab.ldm.model import LatentDiffusion
    from esser_lab.ldm.training import LitLatentDiffusion

    if config.n_classes < 11:
        raise ValueError(f"n_classes must be ≥ 11 (10 digits + the null class), got "
                         f"{config.n_classes}")  # fmt: skip
    system = LitLatentDiffusion(LatentDiffusion(config, first_stage))
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            _digits(data, size), config.batch_size, shuffle=True, seed=run.seed
        ),
        data_note=f"{data.num_train} digits at {size} px, their class as the condition",
    )


def _build_ldm(config: LDMConfig, data: DigitsData, run: Run) -> Plan:
    with torch.random.fork_rng(devices=[]):  # the LDM's init draws as right after seeding
        first_stage = load_first_stage(run.first_stage)
    first = first_stage.config
    side, channels = first.resolution // first.factor, first.embed_dim
    unet = config.unet
    if (unet.image_size, unet.in_channels, unet.out_channels) != (side, channels, channels):
        raise ValueError(
            f"the UNet must fit the autoencoder's {channels}×{side}×{side} latents, got "
            f"image_size {unet.image_size}, in/out channels {unet.in_channels}/"
            f"{unet.out_channels}: pass --set model.unet.image_size={side} "
            f"--set model.unet.in_channels={channels} --set model.unet.out_channels={channels}"
        )
    return _diffusion_plan(config, data, run, first_stage, first.resolution)


def _build_pixel(config: LDMConfig, data: DigitsData, run: Run) -> Plan:
    from esser_lab.ldm.model import IdentityFirstStage

    unet = config.unet
    if unet.in_channels != 1 or unet.out_channels != 1:
        raise ValueError("the digits are grey: the pixel UNet needs in/out channels 1")
    return _diffusion_plan(config, data, run, IdentityFirstStage(1), unet.image_size)


STAGES = {
    "autoencoder": Stage(
        "the KL autoencoder, f = 4 (exports autoencoder.safetensors)",
        _autoencoder,
        lambda preset: DigitsData(),
        _build_autoencoder,
    ),
    "ldm": Stage(
        "the class-conditional LDM on the frozen autoencoder's latents",
        _latent_ldm,
        lambda preset: DigitsData(),
        _build_ldm,
        needs="autoencoder",
    ),
    "pixel": Stage(
        "the same UNet in pixel space (LDM-1, the chapter's comparison)",
        _pixel_ldm,
        lambda preset: DigitsData(),
        _build_pixel,
    ),
}
