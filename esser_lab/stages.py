"""What a paper's ``esser_lab.<paper>.run`` declares for ``python -m esser_lab <paper> fit``
(:mod:`esser_lab.cli`): its :class:`Stage` s, the :class:`Run` a stage is built for, the
:class:`Plan` it returns, and the pretrained losses a stage builds with under the book's rule.
Importing it is cheap (no torch, no Lightning)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Plan", "Run", "Stage", "lpips", "vgg19_feature_loss"]


@dataclass(frozen=True)
class Run:
    """What a stage's ``build`` needs to know about the run besides its two configs."""

    paper: str
    stage: str
    preset: str
    seed: int
    output_dir: Path  # this stage's folder: <--output_dir>/<stage>
    first_stage: Path | None  # the export of the stage this one builds on (``Stage.needs``)
    # pretrained networks (LPIPS, the VGG19 loss): "published" weights or seeded "stand-in"s
    pretrained: str = "stand-in"


@dataclass
class Plan:
    """A built stage: the system, its data (a datamodule or a train loader) and its length.

    ``export`` is what the next stage reads (e.g. a frozen autoencoder): a module and its
    config as a JSON-able dict, saved as ``<stage>.safetensors`` after training.
    """

    system: Any  # a LightningModule
    max_steps: int
    datamodule: Any = None
    train_dataloaders: Any = None
    progress_keys: tuple[str, ...] = ("loss",)
    export: tuple[Any, dict] | None = None
    data_note: str = ""  # one line on the data, printed at the start


@dataclass(frozen=True)
class Stage:
    """One trainable stage of a paper.

    ``model(preset)`` and ``data(preset)`` give the preset's config and data settings (frozen
    dataclasses); ``build(model_config, data_settings, run)`` returns the :class:`Plan`.
    ``needs``: the stage whose export (``<needs>.safetensors``) this one starts from.
    ``shipped``: the presets at which the package ships that stage's result (a small first stage,
    CHAPTER.md's *shipped stages*): there, without an export or ``--first_stage``, ``build`` gets
    ``run.first_stage = None`` and loads the shipped one.
    """

    help: str
    model: Callable[[str], Any]
    data: Callable[[str], Any]
    build: Callable[[Any, Any, Run], Plan]
    needs: str | None = None
    shipped: tuple[str, ...] = ()


def vgg19_feature_loss(run: Run, *, seed: int = 0) -> Any:
    """The VGG19 feature loss of chapters 1 and 8 under ``run.pretrained`` (the book's rule).

    ``"published"``: ``data/checkpoints/vgg19/vgg19.pth`` when placed, else torchvision's weights
    fetched once with their checksum; ``"stand-in"``: seeded random weights (``seed``), nothing
    read or fetched (:mod:`esser_lab.pretrained`). Prints which.
    """
    from esser_lab import pretrained

    loss = pretrained.vgg19_feature_loss(run.pretrained, seed=seed)
    print(pretrained.describe(run.pretrained, "VGG19 feature loss"))
    return loss


def lpips(run: Run, *, seed: int = 0) -> Any:
    """Chapter 10's LPIPS (VGG16) under ``run.pretrained``, as :func:`vgg19_feature_loss`."""
    from esser_lab import pretrained

    module = pretrained.lpips(run.pretrained, seed=seed)
    print(pretrained.describe(run.pretrained, "LPIPS (VGG16)"))
    return module
