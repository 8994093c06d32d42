"""Chapter 6's two stages for ``python -m esser_lab net2net fit`` (see :mod:`esser_lab.cli`).

``--stage autoencoder`` trains the image expert Θ (a ``DenseAutoencoder`` on captioned sprites,
exported as ``autoencoder.safetensors``); ``--stage flow`` trains τ (:class:`LitNet2Net`) between
the fixed random word-embedding "language model" Φ and the frozen Θ, on codes computed once.
The experts' widths follow the config: Θ's code is ``dim`` wide, Φ's vectors ``cond_in``. At
``full`` that is the paper's flow (268-d target, 768-d condition) on sprite stand-ins for BigGAN
and SBERT (the real experts: chapter 6, "Full scale").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.net2net.model import Net2NetConfig
from esser_lab.training.first_stage_run import FirstStageConfig

__all__ = ["STAGES", "CaptionedData", "first_stage_config"]


@dataclass(frozen=True)
class CaptionedData:
    """Captioned sprites (``captioned_sprites``; chapter 6 draws them with seed 1)."""

    num_train: int
    seed: int = 1


def _model(preset: str) -> Net2NetConfig:
    return {"tiny": Net2NetConfig.tiny, "small": Net2NetConfig.small, "full": Net2NetConfig.paper}[
        preset
    ]()


def first_stage_config(preset: str) -> FirstStageConfig:
    """Θ for ``preset``: chapter 6's 16-px autoencoder, its code as wide as the flow's ``dim``."""
    size, n_down, width, steps = {
        "tiny": (16, 2, 16, 500),
        "small": (16, 2, 32, 5_000),
        "full": (32, 3, 64, 20_000),
    }[preset]
    return FirstStageConfig(size, n_down, _model(preset).dim, width, steps)


def _captioned(data: CaptionedData, size: int):  # noqa: ANN202
    from esser_lab.net2net.data import captioned_sprites

    generator = torch.Generator().manual_seed(data.seed)
    return captioned_sprites(data.num_train, size, generator=generator)


def _build_autoencoder(config: FirstStageConfig, data: CaptionedData, run: Run) -> Plan:
    from esser_lab.training.first_stage_run import first_stage_plan

    return first_stage_plan(config, _captioned(data, config.image_size).image, run.seed)


def _build_flow(config: Net2NetConfig, data: CaptionedData, run: Run) -> Plan:
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches
    from esser_lab.net2net import AutoencoderExpert, Net2Net, WordEmbeddingEncoder
    from esser_lab.net2net.training import LitNet2Net
    from esser_lab.training.first_stage_run import load_first_stage

    autoencoder = load_first_stage(run.first_stage, config.dim)
    train = _captioned(data, autoencoder.in_size)
    vocabulary = sorted({word for caption in train.caption for word in caption.split()})
    phi = WordEmbeddingEncoder(vocabulary, dim=config.cond_in, seed=0)
    net2net = Net2Net(config, phi, AutoencoderExpert(autoencoder))
    codes = {
        "z_target": net2net.encode_target(train.image),
        "z_cond": net2net.encode_condition(train.caption),
    }
    sampler = BatchIndexSampler(len(train.image), config.batch_size, shuffle=True, seed=run.seed)
    return Plan(
        LitNet2Net(net2net),
        config.num_steps,
        train_dataloaders=BatchLoader(TensorBatches(codes), sampler),
        data_note=f"codes of {data.num_train} captioned sprites ({len(vocabulary)} words)",
    )


STAGES = {
    "autoencoder": Stage(
        "the image expert Θ (exports autoencoder.safetensors)",
        first_stage_config,
        lambda preset: CaptionedData({"tiny": 6000, "small": 50_000, "full": 50_000}[preset]),
        _build_autoencoder,
    ),
    "flow": Stage(
        "τ between Φ and the frozen Θ",
        _model,
        lambda preset: CaptionedData({"tiny": 6000, "small": 50_000, "full": 50_000}[preset]),
        _build_flow,
        "autoencoder",
    ),
}
