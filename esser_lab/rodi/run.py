"""Chapter 4's training for ``python -m esser_lab rodi fit`` (see :mod:`esser_lab.cli`).

The chapter's four models are one system with four objectives: ``--stage rodi`` (adaptive γ and
the MI constraint), ``mimin`` (γ fixed at 1 with the constraint), ``ae`` (γ = 0) and ``vae``
(γ = 1), on pairs of procedural figures (``FigurePairsDataModule``), as :func:`fit_rodi` trains
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from esser_lab.cli import Plan, Run, Stage
from esser_lab.rodi.model import RoDiConfig

__all__ = ["STAGES", "FigurePairsData"]


@dataclass(frozen=True)
class FigurePairsData:
    """Figures with one appearance in two poses, colours jittered by ``jitter`` in the second."""

    num_train: int
    num_val: int = 64
    jitter: float = 0.15
    seed: int = 0


def _model(preset: str) -> RoDiConfig:
    return {"tiny": RoDiConfig.tiny, "small": RoDiConfig.small, "full": RoDiConfig.paper}[preset]()


def _data(preset: str) -> FigurePairsData:
    return FigurePairsData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset])


def _build(config: RoDiConfig, data: FigurePairsData, run: Run) -> Plan:
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi

    datamodule = FigurePairsDataModule(
        config.image_size,
        config.batch_size,
        data.num_train,
        data.num_val,
        data.jitter,
        data.seed,
        on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for, not held
    )
    system = LitRoDi(config)
    keys = ("loss", "rec", "kl", "gamma", "mi_honest_avg")
    return Plan(
        system,
        config.num_steps,
        datamodule=datamodule,
        progress_keys=keys + (("mi_attacked_avg", "lambda") if system.constrained else ()),
        data_note=f"{data.num_train} procedural figure pairs at {config.image_size} px",
    )


STAGES = {
    "rodi": Stage("RoDi: adaptive γ and the MI constraint", _model, _data, _build),
    "mimin": Stage(
        "MIMin: the MI constraint, γ fixed at 1", lambda p: _model(p).mimin(1.0), _data, _build
    ),
    "ae": Stage("the autoencoder baseline (γ = 0)", lambda p: _model(p).fixed(0.0), _data, _build),
    "vae": Stage("the VAE baseline (γ = 1)", lambda p: _model(p).fixed(1.0), _data, _build),
}
