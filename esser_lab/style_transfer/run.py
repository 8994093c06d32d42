"""Chapter 3's training for ``python -m esser_lab style_transfer fit`` (see :mod:`esser_lab.cli`).

The paper trains in a curriculum of six stages (``CURRICULUM``: 128 → 768 px, each starting from
the previous stage's weights). ``--stage 1`` … ``--stage 6`` with ``--preset full`` is
``StyleTransferConfig.paper_stage(k - 1)``; stage k > 1 loads ``<k-1>.safetensors``, the model
the previous stage exported. At ``tiny`` and ``small`` every stage uses that preset's config (a
plain continuation). The data are the chapter's procedural paintings (``ArtPairsDataModule``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from esser_lab.cli import Plan, Run, Stage
from esser_lab.style_transfer.model import CURRICULUM, StyleTransferConfig

__all__ = ["STAGES", "ArtData"]


@dataclass(frozen=True)
class ArtData:
    """Procedural photos and paintings (``ArtPairsDataModule``)."""

    num_train: int
    num_val: int = 64
    seed: int = 0


def _model(stage: int):  # noqa: ANN202
    def preset_config(preset: str) -> StyleTransferConfig:
        if preset == "full":
            return StyleTransferConfig.paper_stage(stage)
        return {"tiny": StyleTransferConfig.tiny, "small": StyleTransferConfig.small}[preset]()

    return preset_config


def _data(preset: str) -> ArtData:
    return ArtData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset])


def _build(config: StyleTransferConfig, data: ArtData, run: Run) -> Plan:
    from esser_lab.data.modules import ArtPairsDataModule
    from esser_lab.style_transfer.training import LitStyleTransfer
    from esser_lab.training.checkpoint import load_checkpoint

    datamodule = ArtPairsDataModule(
        config.image_size,
        config.batch_size,
        data.num_train,
        data.num_val,
        data.seed,
        on_the_fly=run.preset != "tiny",  # small/full: batches drawn when asked for, not held
    )
    system = LitStyleTransfer(config)
    if run.first_stage is not None:  # the previous curriculum stage's model
        load_checkpoint(system.model, run.first_stage)
    return Plan(
        system,
        config.optimizer_steps,
        datamodule=datamodule,
        progress_keys=("g_loss", "image", "fpt", "fpd", "style_ce", "d_acc"),
        export=(system.model, asdict(config)),
        data_note=f"{data.num_train} procedural photo/painting rows at {config.image_size} px",
    )


STAGES = {
    str(k + 1): Stage(
        f"curriculum stage {k + 1} of {len(CURRICULUM)} ({CURRICULUM[k][0]} px at full)"
        + ("" if k == 0 else f", from stage {k}'s model"),
        _model(k),
        _data,
        _build,
        needs=None if k == 0 else str(k),
    )
    for k in range(len(CURRICULUM))
}
