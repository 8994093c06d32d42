"""Chapter 2's training for ``python -m esser_lab part_based fit`` (see :mod:`esser_lab.cli`)."""

from __future__ import annotations

from dataclasses import dataclass

from esser_lab.cli import Plan, Run, Stage
from esser_lab.part_based.model import PartBasedConfig

__all__ = ["STAGES", "FiguresData"]


@dataclass(frozen=True)
class FiguresData:
    """Procedural figures (``FiguresDataModule``)."""

    num_train: int
    num_val: int = 256
    seed: int = 0


def _model(preset: str) -> PartBasedConfig:
    return {
        "tiny": PartBasedConfig.tiny,
        "small": PartBasedConfig.small,
        "full": PartBasedConfig.paper,
    }[preset]()


def _build(config: PartBasedConfig, data: FiguresData, run: Run) -> Plan:
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.part_based.training import LitPartBased

    datamodule = FiguresDataModule(
        size=config.image_size,
        batch_size=config.batch_size,
        num_train=data.num_train,
        num_val=data.num_val,
        seed=data.seed,
        on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for, not held
    )
    return Plan(
        LitPartBased(config, seed=run.seed),
        config.total_steps,
        datamodule=datamodule,
        progress_keys=("loss", "rec", "eq_mu", "eq_sigma"),
        data_note=f"{data.num_train} procedural figures at {config.image_size} px",
    )


def _data(preset: str) -> FiguresData:
    return FiguresData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset])


STAGES = {
    "part_based": Stage("the part-based model", _model, _data, _build),
    "ablation": Stage(
        "the same model without the equivariance terms (the chapter's ablation)",
        lambda preset: _model(preset).without_equivariance(),
        _data,
        _build,
    ),
}
