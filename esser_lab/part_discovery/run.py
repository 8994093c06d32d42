"""Chapter 8's training for ``python -m esser_lab part_discovery fit`` (see :mod:`esser_lab.cli`).

Pairs of procedural figures (``PartPairsDataModule``); with the VGG19 likelihood (the paper's)
the VGG19 weights are read from ``data/checkpoints/vgg19/vgg19.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass

from esser_lab.cli import Plan, Run, Stage, vgg19_feature_loss
from esser_lab.part_discovery.model import PartDiscoveryConfig

__all__ = ["STAGES", "PartPairsData"]


@dataclass(frozen=True)
class PartPairsData:
    """One appearance in two independent poses (``figures.same_appearance_pairs``)."""

    num_train: int
    num_val: int = 64
    seed: int = 0


def _model(preset: str) -> PartDiscoveryConfig:
    presets = {"tiny": PartDiscoveryConfig.tiny, "small": PartDiscoveryConfig.small}
    return presets.get(preset, PartDiscoveryConfig.paper)()


def _build(config: PartDiscoveryConfig, data: PartPairsData, run: Run) -> Plan:
    from esser_lab.part_discovery.training import LitPartDiscovery, PartPairsDataModule

    datamodule = PartPairsDataModule(
        config.image_size,
        config.batch_size,
        data.num_train,
        data.num_val,
        data.seed,
        on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for, not held
    )
    perceptual = vgg19_feature_loss(run) if config.likelihood == "vgg19" else None
    return Plan(
        LitPartDiscovery(config, perceptual),
        config.num_steps,
        datamodule=datamodule,
        progress_keys=("loss", "rec", "hard_ce"),
        data_note=f"{data.num_train} procedural figure pairs at {config.image_size} px",
    )


STAGES = {
    "part_discovery": Stage(
        "the part discovery model",
        _model,
        lambda preset: PartPairsData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset]),
        _build,
    ),
}
