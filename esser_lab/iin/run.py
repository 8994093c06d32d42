"""Chapter 5's two stages for ``python -m esser_lab iin fit`` (see :mod:`esser_lab.cli`).

``--stage autoencoder`` trains the first-stage ``DenseAutoencoder`` on plain sprites (exported as
``autoencoder.safetensors``); ``--stage flow`` trains the dIIN (:class:`LitIIN`) on the frozen
autoencoder's posteriors of factor pairs, with the factor sizes estimated by (I3) unless
``--model.factor_sizes`` gives them. ``--model.n_factors 1`` trains the unsupervised IIN on plain
sprites instead (the chapter's second flow runs it for half the steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.iin.model import IINConfig
from esser_lab.training.first_stage_run import FirstStageConfig

__all__ = ["STAGES", "SpritesData", "first_stage_config"]


@dataclass(frozen=True)
class SpritesData:
    """Plain sprites and factor pairs, drawn in that order from one generator seeded ``seed``."""

    num_train: int
    seed: int = 0


def _model(preset: str) -> IINConfig:
    return {"tiny": IINConfig.tiny, "small": IINConfig.small, "full": IINConfig.paper}[preset]()


def first_stage_config(preset: str) -> FirstStageConfig:
    """Chapter 5's autoencoder for ``preset`` (1e-3 KL weight at tiny, the official 1.0 above)."""
    from esser_lab.iin.training import FIRST_STAGE_KL_WEIGHT

    config = _model(preset)
    n_down, width, steps = {
        "tiny": (2, 16, 600),
        "small": (3, 32, 10_000),
        "full": (4, 64, 100_000),
    }[preset]
    return FirstStageConfig(
        image_size=config.image_size,
        n_down=n_down,
        z_dim=config.z_dim,
        width=width,
        num_steps=steps,
        learning_rate=2e-3,
        kl_weight=1e-3 if preset == "tiny" else FIRST_STAGE_KL_WEIGHT,
    )


def _data(preset: str) -> SpritesData:
    return SpritesData({"tiny": 4096, "small": 50_000, "full": 200_000}[preset])


def _sprites(data: SpritesData, size: int):  # noqa: ANN202
    from esser_lab.iin import factor_pairs, plain_sprites

    generator = torch.Generator().manual_seed(data.seed)
    train = plain_sprites(data.num_train, size, generator=generator)
    return train, factor_pairs(data.num_train, size, generator=generator)


def _build_autoencoder(config: FirstStageConfig, data: SpritesData, run: Run) -> Plan:
    from esser_lab.iin import plain_sprites
    from esser_lab.training.first_stage_run import first_stage_plan

    generator = torch.Generator().manual_seed(data.seed)
    train = plain_sprites(data.num_train, config.image_size, generator=generator)
    return first_stage_plan(config, train.image, run.seed)


def _build_flow(config: IINConfig, data: SpritesData, run: Run) -> Plan:
    from esser_lab.iin import estimate_factor_dims
    from esser_lab.iin.training import LitIIN, batches, encode_posteriors
    from esser_lab.training.first_stage_run import load_first_stage

    autoencoder = load_first_stage(run.first_stage, config.z_dim)
    train, pairs = _sprites(data, config.image_size)
    if config.n_factors == 1:  # the unsupervised IIN
        fields = {"posterior": encode_posteriors(autoencoder, train.image)}
    else:
        posterior_a = encode_posteriors(autoencoder, pairs.first.image)
        posterior_b = encode_posteriors(autoencoder, pairs.second.image)
        if not config.factor_sizes:  # (I3) on the codes, as the chapter
            z = config.z_dim
            dims = estimate_factor_dims(
                posterior_a[:, :z], posterior_b[:, :z], pairs.shared, config.n_factors
            ).dims
            config = replace(config, factor_sizes=tuple(dims))
        fields = {"posterior_a": posterior_a, "posterior_b": posterior_b, "shared": pairs.shared}
    system = LitIIN(config)
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batches(fields, config.batch_size),
        data_note=f"posteriors of {data.num_train} sprites; factor sizes {config.factor_sizes}",
    )


STAGES = {
    "autoencoder": Stage(
        "the first-stage autoencoder (exports autoencoder.safetensors)",
        first_stage_config,
        _data,
        _build_autoencoder,
    ),
    "flow": Stage(
        "the dIIN on the frozen autoencoder's codes", _model, _data, _build_flow, "autoencoder"
    ),
}
