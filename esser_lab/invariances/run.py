"""Chapter 7's two stages for ``python -m esser_lab invariances fit`` (see :mod:`esser_lab.cli`).

``--stage autoencoder`` trains the first-stage ``DenseAutoencoder`` on random-colour shape
sprites (exported as ``autoencoder.safetensors``); ``--stage flow`` trains the shape classifier
to explain (``--data.classifier invariant`` on random colours, or ``biased``: colour = class) and
then the cINN (:class:`LitInvariances`) on its logits Φ(x) and the frozen autoencoder's codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.invariances.model import InvariancesConfig
from esser_lab.training.first_stage_run import FirstStageConfig

__all__ = ["STAGES", "ShapeData", "first_stage_config"]


@dataclass(frozen=True)
class ShapeData:
    """Shape sprites (``shape_sprites``: random colours from seed 0, the biased set from seed 1)."""

    num_train: int
    classifier: Literal["invariant", "biased"] = "invariant"  # the network the flow explains
    classifier_steps: int = 400


def _model(preset: str) -> InvariancesConfig:
    presets = {"tiny": InvariancesConfig.tiny, "small": InvariancesConfig.small}
    return presets.get(preset, InvariancesConfig.paper)()


def first_stage_config(preset: str) -> FirstStageConfig:
    """Chapter 7's autoencoder for ``preset``."""
    config = _model(preset)
    n_down, width, steps = {
        "tiny": (2, 16, 600),
        "small": (3, 32, 10_000),
        "full": (3, 64, 50_000),
    }[preset]
    return FirstStageConfig(config.image_size, n_down, config.z_dim, width, steps)


def _data(preset: str) -> ShapeData:
    return ShapeData(
        {"tiny": 4096, "small": 50_000, "full": 50_000}[preset],
        classifier_steps={"tiny": 400, "small": 3000, "full": 3000}[preset],
    )


def _build_autoencoder(config: FirstStageConfig, data: ShapeData, run: Run) -> Plan:
    from esser_lab.invariances import shape_sprites
    from esser_lab.training.first_stage_run import first_stage_plan

    generator = torch.Generator().manual_seed(0)
    train = shape_sprites(data.num_train, config.image_size, generator=generator)
    return first_stage_plan(config, train.image, run.seed)


def _build_flow(config: InvariancesConfig, data: ShapeData, run: Run) -> Plan:
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches
    from esser_lab.invariances import Greybox, shape_sprites
    from esser_lab.invariances.data import NUM_SHAPES
    from esser_lab.invariances.training import LitInvariances, encode_experts
    from esser_lab.metrics.classifiers import fit_classifier
    from esser_lab.training.first_stage_run import load_first_stage

    autoencoder = load_first_stage(run.first_stage, config.z_dim)
    size = autoencoder.in_size
    train = shape_sprites(data.num_train, size, generator=torch.Generator().manual_seed(0))
    labelled = train
    if data.classifier == "biased":
        labelled = shape_sprites(
            data.num_train, size, generator=torch.Generator().manual_seed(1), biased=True
        )
    classifier = fit_classifier(
        labelled.image,
        labelled.shape[:, 0],
        NUM_SHAPES,
        steps=data.classifier_steps,
        generator=torch.Generator().manual_seed(run.seed),
    )
    greybox = Greybox.from_expert(classifier, split=8)  # Φ(x): the logits
    experts = encode_experts(autoencoder, greybox, train.image)
    if experts["phi"].shape[1] != config.cond_dim:
        raise ValueError(
            f"cond_dim is {config.cond_dim} but the classifier's logits have "
            f"{experts['phi'].shape[1]} numbers: pass --model.cond_dim {experts['phi'].shape[1]}"
        )
    sampler = BatchIndexSampler(data.num_train, config.batch_size, shuffle=True, seed=run.seed)
    return Plan(
        LitInvariances(config),
        config.num_steps,
        train_dataloaders=BatchLoader(TensorBatches(experts), sampler),
        progress_keys=("loss", "nll"),
        data_note=f"{data.num_train} random-colour sprites; the {data.classifier} classifier",
    )


STAGES = {
    "autoencoder": Stage(
        "the first-stage autoencoder (exports autoencoder.safetensors)",
        first_stage_config,
        _data,
        _build_autoencoder,
    ),
    "flow": Stage(
        "the classifier to explain, then the cINN on its logits",
        _model,
        _data,
        _build_flow,
        "autoencoder",
    ),
}
