"""Chapter 10's two stages for ``python -m esser_lab taming fit`` (see :mod:`esser_lab.cli`).

``--stage vqgan`` trains :class:`LitVQGAN` on sprites (or ``--data.folder``: a folder of real
images, :class:`esser_lab.data.modules.ImageFolderDataModule`) and exports the autoencoder as
``vqgan.safetensors``; ``--stage transformer`` trains the class-conditional GPT
(:class:`LitTamingTransformer`) on that frozen VQGAN's codes of sprites, the colour as the class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from esser_lab.cli import Plan, Run, Stage, lpips
from esser_lab.taming.model import VQGANConfig
from esser_lab.taming.transformer import TamingTransformerConfig

__all__ = ["STAGES", "TransformerData", "VQGANData"]


@dataclass(frozen=True)
class VQGANData:
    """Sprites (``SpritesDataModule``) or, with ``folder``, real images at the model's size."""

    num_train: int
    num_val: int = 16
    seed: int = 0
    folder: str | None = None  # an image folder (ImageFolderDataModule) instead of sprites
    num_workers: int = 0  # loader workers for the folder


@dataclass(frozen=True)
class TransformerData:
    """The sprites whose codes the GPT learns (chapter 10 draws them with seed 7)."""

    num_train: int
    seed: int = 7


def _vqgan(preset: str) -> VQGANConfig:
    return {"tiny": VQGANConfig.tiny, "small": VQGANConfig.small, "full": VQGANConfig.paper}[
        preset
    ]()


def _num_colours() -> int:
    from esser_lab.data import sprites

    return len(sprites.COLOURS)


def _transformer(preset: str) -> TamingTransformerConfig:
    """Chapter 10's GPT for the same preset's VQGAN: its codebook, its grid, the sprite colours."""
    first = _vqgan(preset)
    grid = first.resolution // first.factor
    if preset == "full":
        return replace(
            TamingTransformerConfig.paper(), vocab_size=first.n_embed, block_size=grid**2
        )
    base = {"tiny": TamingTransformerConfig.tiny, "small": TamingTransformerConfig.small}[preset]()
    extra = {"block_size": grid**2, "batch_size": 24} if preset == "tiny" else {}
    return replace(base, vocab_size=first.n_embed, n_classes=_num_colours(), **extra)


def _build_vqgan(config: VQGANConfig, data: VQGANData, run: Run) -> Plan:
    from esser_lab.data.modules import ImageFolderDataModule, SpritesDataModule
    from esser_lab.taming.training import LitVQGAN

    size = config.resolution
    if data.folder is not None:
        datamodule = ImageFolderDataModule(
            data.folder, size, config.batch_size, num_workers=data.num_workers, seed=data.seed
        )
        note = f"images from {data.folder} at {size} px"
    else:
        datamodule = SpritesDataModule(
            size,
            config.batch_size,
            data.num_train,
            data.num_val,
            data.seed,
            on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for
        )
        note = f"{data.num_train} procedural sprites at {size} px"
    perceptual = None
    if config.perceptual_weight > 0:  # LPIPS: published weights or a stand-in (--pretrained)
        perceptual = lpips(run)
    system = LitVQGAN(config, perceptual)
    return Plan(
        system,
        config.num_steps,
        datamodule=datamodule,
        progress_keys=("loss", "rec", "perplexity", "d_weight", "d_loss"),
        export=(system.model, asdict(config)),
        data_note=note,
    )


def load_first_stage(path) -> torch.nn.Module:  # noqa: ANN001
    """The VQGAN exported by the vqgan stage, frozen."""
    from esser_lab.taming.model import VQModel
    from esser_lab.training.checkpoint import load_checkpoint, read_checkpoint

    _, stored = read_checkpoint(path)
    model = VQModel(VQGANConfig.from_dict(stored))
    load_checkpoint(model, path)
    return model.requires_grad_(False).eval()


def _build_transformer(config: TamingTransformerConfig, data: TransformerData, run: Run) -> Plan:
    from esser_lab.data import sprites
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches
    from esser_lab.taming.transformer import TamingTransformer
    from esser_lab.taming.transformer_training import LitTamingTransformer

    first_stage = load_first_stage(run.first_stage)
    first = first_stage.config
    grid = first.resolution // first.factor
    if config.vocab_size != first.n_embed or config.block_size < grid**2:
        raise ValueError(
            f"the GPT's vocab_size {config.vocab_size} must be the VQGAN's codebook size "
            f"{first.n_embed}, and its block_size {config.block_size} at least the {grid}×{grid} "
            f"grid's {grid**2} codes: pass --model.vocab_size {first.n_embed} "
            f"--model.block_size {grid**2}"
        )
    train = sprites.sample(
        data.num_train, first.resolution, generator=torch.Generator().manual_seed(data.seed)
    )
    labels = train.colour[:, 0]
    if config.n_classes is not None and int(labels.max()) >= config.n_classes:
        raise ValueError(f"n_classes must be ≥ {int(labels.max()) + 1} (the sprite colours)")
    with torch.no_grad():  # the codes in raster order, (b, h·w), as TamingTransformer.encode_to_z
        codes = torch.cat(
            [first_stage.encode(x).indices.flatten(1) for x in train.image.split(1024)]
        )
    model = TamingTransformer(config, first_stage)
    batches = TensorBatches({"z_indices": codes, "label": labels})
    sampler = BatchIndexSampler(len(batches), config.batch_size, shuffle=True, seed=run.seed)
    steps = {"tiny": 160, "small": 5_000, "full": 100_000}[run.preset]  # chapter 10's
    return Plan(
        LitTamingTransformer(model),
        steps,
        train_dataloaders=BatchLoader(batches, sampler),
        data_note=f"the codes of {data.num_train} sprites, their colour as the class",
    )


STAGES = {
    "vqgan": Stage(
        "the VQGAN first stage (exports vqgan.safetensors)",
        _vqgan,
        lambda preset: VQGANData({"tiny": 4096, "small": 16_384, "full": 50_000}[preset]),
        _build_vqgan,
    ),
    "transformer": Stage(
        "the class-conditional GPT on the frozen VQGAN's codes",
        _transformer,
        lambda preset: TransformerData({"tiny": 4096, "small": 16_384, "full": 50_000}[preset]),
        _build_transformer,
        needs="vqgan",
    ),
}
