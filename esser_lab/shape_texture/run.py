"""Chapter 11's two networks for ``python -m esser_lab shape_texture fit`` (see
:mod:`esser_lab.cli`).

As the chapter: a ResNet (:class:`LitShapeTexture`, SGD with momentum) classifies the shape of
cue-conflict images (:mod:`esser_lab.data.cue_conflict`, drawn with seed 1). ``--stage
shortcut`` trains on the IN-like set (texture i goes with shape i 90 % of the time), ``--stage
randomised`` on the SIN-like set (texture drawn independently); each exports its network as
``<stage>.safetensors`` for the dimension estimates. ``full`` is the chapter's: the ``small``
network at 32 px (``ShapeTextureConfig.paper()``, ResNet-50 at 224 px, is ImageNet's; set its
fields with ``--set`` to train it on the procedural images).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

from esser_lab.cli import Plan, Run, Stage
from esser_lab.shape_texture.model import ShapeTextureConfig

__all__ = ["NOTE", "STAGES", "CueConflictData", "network_config"]

NOTE = (
    "full is the chapter's: the small network at 32 px on more steps. ShapeTextureConfig.paper() "
    "(ResNet-50 at 224 px) is ImageNet's; its fields can be set with --set, on the procedural "
    "images."
)


@dataclass(frozen=True)
class CueConflictData:
    """Cue-conflict images at the network's size; ``shortcut_p``: how often texture i goes with
    shape i in the IN-like set (the randomised set ignores it)."""

    num_train: int
    seed: int = 1
    shortcut_p: float = 0.9


def network_config(preset: str) -> ShapeTextureConfig:
    """The chapter's network: ``tiny()`` at 16 px, ``small()`` at 32 px for small and full."""
    from esser_lab.data import cue_conflict

    classes = len(cue_conflict.SHAPES)
    if preset == "tiny":
        return ShapeTextureConfig.tiny(classes, 16)
    return ShapeTextureConfig.small(classes, 32)


def _data(preset: str) -> CueConflictData:
    return CueConflictData({"tiny": 4096, "small": 20_000, "full": 20_000}[preset])


def _build(config: ShapeTextureConfig, data: CueConflictData, run: Run, regime: str) -> Plan:
    import torch

    from esser_lab.data import cue_conflict
    from esser_lab.data.modules import batch_loader
    from esser_lab.shape_texture.model import ShapeTextureNet
    from esser_lab.shape_texture.training import LitShapeTexture

    generator = torch.Generator().manual_seed(data.seed)
    train = cue_conflict.sample(
        data.num_train,
        config.image_size,
        generator=generator,
        regime=regime,
        shortcut_p=data.shortcut_p,
    )
    network = ShapeTextureNet(config)
    loader = batch_loader(
        {"image": train.image, "label": train.shape}, config.batch_size, shuffle=True, seed=run.seed
    )
    return Plan(
        LitShapeTexture(network),
        config.num_steps,
        train_dataloaders=loader,
        export=(network, asdict(config)),
        data_note=f"{data.num_train} {regime} cue-conflict images at {config.image_size} px",
    )


STAGES = {
    "shortcut": Stage(
        "the IN-like network: texture goes with the shape (exports shortcut.safetensors)",
        network_config,
        _data,
        partial(_build, regime="shortcut"),
    ),
    "randomised": Stage(
        "the SIN-like network: texture drawn independently (exports randomised.safetensors)",
        network_config,
        _data,
        partial(_build, regime="randomised"),
    ),
}
