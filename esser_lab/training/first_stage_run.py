"""The 2020 papers' first-stage autoencoder as a stage of ``python -m esser_lab <paper> fit``.

Chapters 5, 6, 7 and 9 train a :class:`~esser_lab.nn.autoencoder.DenseAutoencoder` first and
freeze it (:func:`esser_lab.training.first_stage.train_first_stage`). The command line trains it
as its own stage (``--stage autoencoder``) and exports it as ``autoencoder.safetensors`` with
this config, which the next stage (``--stage flow``) reads back with :func:`load_first_stage`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch import Tensor
from torch.utils.data import DataLoader

from esser_lab.config import config_from_dict
from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.training.checkpoint import load_checkpoint, read_checkpoint
from esser_lab.training.first_stage import LitDenseAutoencoder, freeze

__all__ = ["FirstStageConfig", "first_stage_plan", "image_batches", "load_first_stage"]


@dataclass(frozen=True)
class FirstStageConfig:
    """The autoencoder (``DenseAutoencoder`` arguments) and how ``train_first_stage`` fits it."""

    image_size: int
    n_down: int
    z_dim: int
    width: int
    num_steps: int
    batch_size: int = 64
    learning_rate: float = 1e-3
    kl_weight: float = 1e-3
    image_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("image_size", "n_down", "z_dim", "width", "num_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.image_size % 2**self.n_down:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of 2**n_down={2**self.n_down}"
            )
        if not self.learning_rate > 0 or self.kl_weight < 0:
            raise ValueError("need learning_rate > 0 and kl_weight ≥ 0")

    @classmethod
    def from_dict(cls, values: dict) -> FirstStageConfig:
        return config_from_dict(cls, values)

    def build(self) -> DenseAutoencoder:
        return DenseAutoencoder(
            self.image_size, self.image_channels, self.n_down, self.z_dim, self.width
        )


def image_batches(images: Tensor, batch_size: int, seed: int = 0) -> DataLoader:
    """Shuffled whole batches ``{"image"}`` of ``images``, as ``train_first_stage`` draws them."""
    sampler = BatchIndexSampler(len(images), batch_size, shuffle=True, seed=seed)
    return BatchLoader(TensorBatches({"image": images}), sampler)


def first_stage_plan(config: FirstStageConfig, images: Tensor, seed: int = 0):  # noqa: ANN201
    """The autoencoder stage's :class:`esser_lab.cli.Plan` on ``images`` (n, c, h, w)."""
    from esser_lab.cli import Plan

    if images.shape[1:] != (config.image_channels, config.image_size, config.image_size):
        raise ValueError(
            f"images must be (n, {config.image_channels}, {config.image_size}, "
            f"{config.image_size}), got {tuple(images.shape)}"
        )
    system = LitDenseAutoencoder(config.build(), config.learning_rate, config.kl_weight)
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=image_batches(images, config.batch_size, seed),
        progress_keys=("loss", "rec"),
        export=(system.autoencoder, asdict(config)),
        data_note=f"{len(images)} images",
    )


def load_first_stage(path: str | Path, z_dim: int | None = None) -> DenseAutoencoder:
    """The frozen autoencoder exported by the autoencoder stage (``autoencoder.safetensors``).

    ``z_dim``: the code size the next stage expects; a mismatch is a clear error.
    """
    _, stored = read_checkpoint(path)
    config = FirstStageConfig.from_dict(stored)
    if z_dim is not None and config.z_dim != z_dim:
        raise ValueError(
            f"{path} holds an autoencoder with a {config.z_dim}-d code but this stage's config "
            f"expects {z_dim}: train the autoencoder stage with the same preset, or override"
        )
    autoencoder = config.build()
    load_checkpoint(autoencoder, path)
    return freeze(autoencoder)
