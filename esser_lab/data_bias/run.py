"""Chapter 9's two stages for ``python -m esser_lab data_bias fit`` (see :mod:`esser_lab.cli`).

Both read :class:`DataBiasConfig`: ``--stage autoencoder`` trains the shared first stage from its
``ae_*`` fields on the three procedural sprite domains (exported as ``autoencoder.safetensors``),
``--stage flow`` the domain-conditional flow (:class:`LitDataBias`) on the frozen autoencoder.
At ``full`` the configuration is the paper's, on sprite domains (the paper's face data sets are
not procedural; chapter 9, "Full scale"), with ``small``'s 20,000 images per domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.data_bias.model import DataBiasConfig

__all__ = ["STAGES", "DomainsData"]


@dataclass(frozen=True)
class DomainsData:
    """``num_per_domain`` sprites of each domain (``sample_domains``; chapter 9 uses seed 1)."""

    num_per_domain: int
    seed: int = 1


def _model(preset: str) -> DataBiasConfig:
    presets = {"tiny": DataBiasConfig.tiny, "small": DataBiasConfig.small}
    return presets.get(preset, DataBiasConfig.paper)()


def _data(preset: str) -> DomainsData:
    return DomainsData({"tiny": 2048, "small": 20_000, "full": 20_000}[preset])


def _domains(data: DomainsData, size: int):  # noqa: ANN202
    from esser_lab.data_bias import DOMAINS, sample_domains

    labels = torch.arange(len(DOMAINS)).repeat_interleave(data.num_per_domain)
    return sample_domains(labels, size, generator=torch.Generator().manual_seed(data.seed))


def _first_stage(config: DataBiasConfig):  # noqa: ANN202
    from esser_lab.training.first_stage_run import FirstStageConfig

    return FirstStageConfig(
        image_size=config.image_size,
        n_down=config.ae_n_down,
        z_dim=config.z_dim,
        width=config.ae_width,
        num_steps=config.ae_steps,
        batch_size=config.ae_batch_size,
        learning_rate=config.ae_learning_rate,
        kl_weight=config.ae_kl_weight,
        image_channels=config.image_channels,
    )


def _build_autoencoder(config: DataBiasConfig, data: DomainsData, run: Run) -> Plan:
    from esser_lab.training.first_stage_run import first_stage_plan

    train = _domains(data, config.image_size)
    return first_stage_plan(_first_stage(config), train.image, run.seed)


def _build_flow(config: DataBiasConfig, data: DomainsData, run: Run) -> Plan:
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches
    from esser_lab.data_bias.training import LitDataBias
    from esser_lab.training.first_stage_run import load_first_stage

    autoencoder = load_first_stage(run.first_stage, config.z_dim)
    train = _domains(data, config.image_size)
    batches = TensorBatches({"image": train.image, "domain": train.domain})
    sampler = BatchIndexSampler(len(batches), config.batch_size, shuffle=True, seed=run.seed)
    return Plan(
        LitDataBias(config, autoencoder),
        config.num_steps,
        train_dataloaders=BatchLoader(batches, sampler),
        progress_keys=("loss", "nll"),
        data_note=f"{len(batches)} sprites from the three domains",
    )


STAGES = {
    "autoencoder": Stage(
        "the shared first stage from the ae_* fields (exports autoencoder.safetensors)",
        _model,
        _data,
        _build_autoencoder,
    ),
    "flow": Stage(
        "the domain-conditional flow on the frozen autoencoder",
        _model,
        _data,
        _build_flow,
        "autoencoder",
    ),
}
