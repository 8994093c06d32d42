"""Chapter 1's training for ``python -m esser_lab vunet fit`` (see :mod:`esser_lab.cli`).

``--stage vunet`` trains :class:`LitVUNet` on procedural figures; ``--stage baseline`` the
chapter's baseline, PG2's generator in the same U-Net (``VUNetConfig.paired_baseline``), trained
on pairs of one figure in two poses. With the VGG19
likelihood (small/full) the VGG19 weights are read from ``data/checkpoints/vgg19/vgg19.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from esser_lab.cli import Plan, Run, Stage, vgg19_feature_loss
from esser_lab.vunet.model import VUNetConfig

__all__ = ["STAGES", "FiguresData", "vunet_config"]


@dataclass(frozen=True)
class FiguresData:
    """Procedural figures (``FiguresDataModule``)."""

    num_train: int
    num_val: int = 512
    seed: int = 0


def vunet_config(preset: str) -> VUNetConfig:
    """The preset; ``full`` is the paper's network with 4 stickman channels (our figures' parts)."""
    if preset == "full":
        return replace(VUNetConfig.paper(), shape_channels=4)
    return {"tiny": VUNetConfig.tiny, "small": VUNetConfig.small}[preset]()


def _data(preset: str) -> FiguresData:
    return FiguresData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset])


def _build(config: VUNetConfig, data: FiguresData, run: Run, paired: bool = False) -> Plan:
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.vunet import figure_boxes
    from esser_lab.vunet.training import LitVUNet

    datamodule = FiguresDataModule(
        size=config.image_size,
        batch_size=config.batch_size,
        num_train=data.num_train,
        num_val=data.num_val,
        seed=data.seed,
        on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for, not held
    )
    perceptual = vgg19_feature_loss(run, seed=run.seed) if config.likelihood == "vgg19" else None
    return Plan(
        LitVUNet(config, figure_boxes(), perceptual, paired=paired),
        config.total_steps,
        datamodule=datamodule,
        progress_keys=("loss", "likelihood", "kl"),
        data_note=f"{data.num_train} procedural figures at {config.image_size} px",
    )


STAGES = {
    "vunet": Stage("the VUNet", vunet_config, _data, _build),
    "baseline": Stage(
        "PG2's generator in the same U-Net, trained on pairs",
        lambda preset: vunet_config(preset).paired_baseline(),
        _data,
        partial(_build, paired=True),
    ),
}
