"""Chapter 19's three arms for ``python -m esser_lab selfflow fit`` (see :mod:`esser_lab.cli`).

As the chapter: 16-px images of the relations rule (:func:`esser_lab.data.relations.relation_batch`,
seed 1), one unconditional :class:`SelfFlowDiT` trained by :class:`LitSelfFlow` with the same
steps, batch and learning rate in each arm: ``--stage selfflow`` (dual-timestep scheduling and
the EMA self-distillation), ``--stage dts`` (dual-timestep scheduling alone) and ``--stage
vanilla`` (flow matching). The student block sits at about 0.3 of the depth and the teacher's
at 0.7 (the release's 8/28 and 20/28); ``--set model.method.FIELD=…`` changes any of
:class:`SelfFlowMethod`. ``full`` is the chapter's: a wider toy DiT (384 wide, 12 deep) trained
longer; ``SelfFlowConfig.paper()`` is the released class-conditional SiT-XL/2 on SD-VAE latents,
which this training path (unconditional) does not take.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.selfflow.method import SelfFlowMethod
from esser_lab.selfflow.model import SelfFlowConfig

__all__ = ["NOTE", "STAGES", "RelationsData", "SelfFlowRun"]

NOTE = (
    "SelfFlowConfig.paper() is the released class-conditional SiT-XL/2 on SD-VAE latents; "
    "LitSelfFlow trains unconditional models only, so it is not offered here."
)


@dataclass(frozen=True)
class RelationsData:
    """Images of the relations rule (the chapter's seed 1); 16×16, whatever the preset."""

    num_train: int
    seed: int = 1


@dataclass(frozen=True)
class SelfFlowRun:
    """The DiT, the arm's method and how the chapter trains every arm."""

    dit: SelfFlowConfig
    method: SelfFlowMethod
    num_steps: int
    batch_size: int
    learning_rate: float

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))
        check_rates(self, ("learning_rate",))
        if not self.method.student_layer < self.method.teacher_layer <= self.dit.depth:
            raise ValueError(
                f"need student_layer < teacher_layer ≤ depth, got {self.method.student_layer}, "
                f"{self.method.teacher_layer} and {self.dit.depth}"
            )


def _model(preset: str, arm: str) -> SelfFlowRun:
    tiny = SelfFlowConfig.tiny()
    config = {
        "tiny": tiny,
        "small": replace(tiny, hidden=192, depth=8, heads=6),
        "full": replace(tiny, hidden=384, depth=12, heads=6),
    }[preset]
    student = max(1, round(0.3 * config.depth))
    teacher = max(student + 1, round(0.7 * config.depth))
    decay = {"tiny": 0.99, "small": 0.999, "full": 0.9999}[preset]
    method = SelfFlowMethod(student_layer=student, teacher_layer=teacher, ema_decay=decay)
    method = {"selfflow": method, "dts": method.dts_only(), "vanilla": method.vanilla()}[arm]
    steps = {"tiny": 150, "small": 20_000, "full": 100_000}[preset]
    batch = {"tiny": 64, "small": 128, "full": 256}[preset]
    rate = {"tiny": 1e-3, "small": 3e-4, "full": 1e-4}[preset]
    return SelfFlowRun(config, method, steps, batch, rate)


def _data(preset: str) -> RelationsData:
    return RelationsData({"tiny": 8192, "small": 50_000, "full": 200_000}[preset])


def _build(config: SelfFlowRun, data: RelationsData, run: Run) -> Plan:
    import torch

    from esser_lab.data.modules import batch_loader
    from esser_lab.data.relations import relation_batch
    from esser_lab.selfflow.model import SelfFlowDiT
    from esser_lab.selfflow.training import LitSelfFlow

    train = relation_batch(data.num_train, torch.Generator().manual_seed(data.seed))
    size = tuple(train.image.shape[1:])
    expected = (config.dit.in_channels, config.dit.input_size, config.dit.input_size)
    if size != expected:
        raise ValueError(f"the relation images are {size}, the DiT expects {expected}")
    system = LitSelfFlow(SelfFlowDiT(config.dit), config.method, learning_rate=config.learning_rate)
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(
            {"image": train.image}, config.batch_size, shuffle=True, seed=run.seed
        ),
        data_note=f"{data.num_train} relation images at {size[-1]} px",
    )


STAGES = {
    "selfflow": Stage(
        "Self-Flow: dual-timestep scheduling + EMA self-distillation",
        partial(_model, arm="selfflow"),
        _data,
        _build,
    ),
    "dts": Stage("dual-timestep scheduling alone", partial(_model, arm="dts"), _data, _build),
    "vanilla": Stage("vanilla flow matching", partial(_model, arm="vanilla"), _data, _build),
}
