"""Chapter 13's stages for ``python -m esser_lab imagebart fit`` (see :mod:`esser_lab.cli`).

As the chapter, on scikit-learn's digits at 16 px (1,500 drawn by a permutation seeded 0):
``--stage vqgan`` trains the f = 2 VQGAN (:class:`LitGANAutoencoder`: L1 + the codebook loss, no
LPIPS, the discriminator never starting) and exports ``vqgan.safetensors``; ``--stage imagebart``
trains ImageBART (:class:`LitImageBART`) on that VQGAN's codes renumbered to the ones the
training digits use (the official ``remap``; the model's ``num_codes`` follows that count);
``--stage gpt`` the chapter's autoregressive baseline (:class:`LitCodeGPT`: as many layers of
ImageBART's width as its encoder and decoder together, ``--model.order raster|reverse``).
``full`` is the chapter's: the ``small`` models trained longer (``ImageBARTConfig.paper()`` is
the released FFHQ model over the FFHQ VQGAN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.imagebart.model import ImageBARTConfig
from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.taming.model import VQModelConfig

__all__ = ["NOTE", "STAGES", "CodeGPTRun", "DigitsData", "DigitsVQRun", "ImageBARTRun"]

SIZE, SIDE = 16, 8  # 16×16 digits, 8×8 codes (f = 2), at every preset (the chapter's)
BATCH = {"tiny": 32, "small": 64, "full": 64}
STEPS = {"tiny": 200, "small": 20_000, "full": 100_000}

NOTE = (
    "full is the chapter's: the small models on the digits, longer. ImageBARTConfig.paper() is "
    "the released FFHQ model over the FFHQ VQGAN, which this command does not train on."
)


@dataclass(frozen=True)
class DigitsData:
    """The first ``num_train`` digits of a permutation seeded ``seed`` (the chapter's split)."""

    num_train: int = 1500
    seed: int = 0


@dataclass(frozen=True)
class DigitsVQRun:
    """The VQGAN of the digits and how the chapter trains it."""

    vq: VQModelConfig
    loss: GANAutoencoderLossConfig
    optimizer: GANOptimizerConfig
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps",))


@dataclass(frozen=True)
class ImageBARTRun:
    """ImageBART (its ``num_codes`` is set to the first stage's codes in use) and the steps."""

    imagebart: ImageBARTConfig
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps",))


@dataclass(frozen=True)
class CodeGPTRun:
    """The autoregressive baseline over the same codes (widths and budget as ImageBART's)."""

    order: Literal["raster", "reverse"]
    n_layer: int
    n_head: int
    n_embd: int
    learning_rate: float
    batch_size: int
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("n_layer", "n_head", "n_embd", "batch_size", "num_steps"))
        check_rates(self, ("learning_rate",))


def _vq(preset: str) -> DigitsVQRun:
    from esser_lab.nn.first_stage import DDConfig

    dd = DDConfig(
        double_z=False, z_channels=8, resolution=SIZE, in_channels=1, out_ch=1, ch=32,
        ch_mult=(1, 1), num_res_blocks=0, attn_resolutions=(),
    )  # fmt: skip
    n_embed = {"tiny": 32, "small": 128, "full": 128}[preset]
    batch = BATCH[preset]
    loss = replace(GANAutoencoderLossConfig.tiny(), disc_start=10**9, disc_in_channels=1)
    optimizer = GANOptimizerConfig(base_learning_rate=2e-3 / batch, batch_size=batch)
    steps = {"tiny": 80, "small": 2_000, "full": 10_000}[preset]
    return DigitsVQRun(VQModelConfig(ddconfig=dd, n_embed=n_embed, embed_dim=8), loss, optimizer,
                       steps)  # fmt: skip


def _imagebart(preset: str) -> ImageBARTRun:
    codes = _vq(preset).vq.n_embed  # replaced by the codes in use when the stage is built
    make = ImageBARTConfig.tiny if preset == "tiny" else ImageBARTConfig.small
    config = replace(make(codes, SIDE * SIDE), batch_size=BATCH[preset])
    return ImageBARTRun(config, STEPS[preset])


def _gpt(preset: str) -> CodeGPTRun:
    c = _imagebart(preset).imagebart
    return CodeGPTRun(
        "raster", c.enc_depth + c.dec_depth, c.heads, c.dim, c.learning_rate, c.batch_size,
        STEPS[preset],
    )  # fmt: skip


def _digits(data: DigitsData) -> torch.Tensor:
    from esser_lab.data.digits import load_digits

    images, _ = load_digits(SIZE)
    if not 1 <= data.num_train <= len(images):
        raise ValueError(f"num_train must be in [1, {len(images)}], got {data.num_train}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(data.seed))
    return images[order[: data.num_train]]


def _build_vq(config: DigitsVQRun, data: DigitsData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.taming.model import VQModel
    from esser_lab.taming.training import LitGANAutoencoder

    if config.vq.ddconfig.resolution != SIZE or config.vq.ddconfig.in_channels != 1:
        raise ValueError(f"the digits are grey and {SIZE} px: the VQGAN's ddconfig needs "
                         f"resolution {SIZE} and in_channels 1")  # fmt: skip
    if config.loss.perceptual_weight > 0:
        raise ValueError("the chapter trains without LPIPS: loss.perceptual_weight must be 0")
    model = VQModel(config.vq)
    images = _digits(data)
    loader = batch_loader(
        {"image": images}, config.optimizer.batch_size, shuffle=True, seed=run.seed
    )
    return Plan(
        LitGANAutoencoder(model, config.loss, config.optimizer),
        config.num_steps,
        train_dataloaders=loader,
        progress_keys=("loss", "rec"),
        export=(model, asdict(config.vq)),
        data_note=f"{data.num_train} digits at {SIZE} px",
    )


def _codes(data: DigitsData, run: Run) -> tuple[torch.Tensor, int, int]:
    """The training digits' codes renumbered to the used ones, K, and the grid side."""
    from esser_lab.imagebart.first_stage import RemappedVQModel, used_codes
    from esser_lab.taming.model import VQModel
    from esser_lab.training.checkpoint import load_checkpoint, read_checkpoint

    _, stored = read_checkpoint(run.first_stage)
    vq_config = VQModelConfig.from_dict(stored)
    vq = VQModel(vq_config)
    load_checkpoint(vq, run.first_stage)
    vq.eval()
    images = _digits(data)
    with torch.no_grad():
        used = used_codes(vq.encode(images).indices, vq_config.n_embed)
    first_stage = RemappedVQModel(vq_config, used)
    first_stage.load_state_dict(vq.state_dict(), strict=False)  # all but the new buffer
    codes = first_stage.eval().encode_to_codes(images, torch.Generator().manual_seed(run.seed))
    side = vq_config.ddconfig.resolution // vq_config.ddconfig.factor
    return codes, first_stage.num_codes, side


def _build_imagebart(config: ImageBARTRun, data: DigitsData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.imagebart.model import ImageBART
    from esser_lab.imagebart.training import LitImageBART

    with torch.random.fork_rng(devices=[]):  # ImageBART's init draws as right after seeding
        codes, num_codes, side = _codes(data, run)
    ours = replace(config.imagebart, num_codes=num_codes, seq_len=side * side)
    return Plan(
        LitImageBART(ImageBART(ours)),
        config.num_steps,
        train_dataloaders=batch_loader(
            {"codes": codes}, ours.batch_size, shuffle=True, seed=run.seed
        ),  # fmt: skip
        data_note=f"the codes of {data.num_train} digits, K = {num_codes} codes in use",
    )


def _build_gpt(config: CodeGPTRun, data: DigitsData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.imagebart.training import LitCodeGPT
    from esser_lab.nn.transformer import GPT

    with torch.random.fork_rng(devices=[]):  # the GPT's init draws as right after seeding
        codes, num_codes, side = _codes(data, run)
    gpt = GPT(num_codes, side * side, n_layer=config.n_layer, n_head=config.n_head,
              n_embd=config.n_embd)  # fmt: skip
    return Plan(
        LitCodeGPT(gpt, config.order, config.learning_rate),
        config.num_steps,
        train_dataloaders=batch_loader(
            {"codes": codes}, config.batch_size, shuffle=True, seed=run.seed
        ),  # fmt: skip
        data_note=f"the codes of {data.num_train} digits, K = {num_codes}, {config.order} order",
    )


STAGES = {
    "vqgan": Stage(
        "the VQGAN of the digits (exports vqgan.safetensors)",
        _vq,
        lambda preset: DigitsData(),
        _build_vq,
    ),
    "imagebart": Stage(
        "ImageBART on the frozen VQGAN's codes in use (num_codes set from them)",
        _imagebart,
        lambda preset: DigitsData(),
        _build_imagebart,
        needs="vqgan",
    ),
    "gpt": Stage(
        "the autoregressive baseline (GPT, raster or reverse order) on the same codes",
        _gpt,
        lambda preset: DigitsData(),
        _build_gpt,
        needs="vqgan",
    ),
}
