"""Checkpoint I/O with safetensors: tensors plus the model's config as a plain JSON dict.

The file is ``<name>.safetensors``: the model's state dict, and the config under the metadata key
``"esser_lab.config"`` as JSON. Reading and writing go through :mod:`esser_lab.weights`, so
nothing is ever unpickled, loading is strict (missing, unexpected and mis-shaped keys are named)
and every failure is a :class:`~esser_lab.weights.WeightsError` (a ``ValueError``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from esser_lab.weights import (
    WeightsError,
    load_weights,
    read_metadata,
    read_state_dict,
    save_weights,
)

CONFIG_KEY = "esser_lab.config"


def save_checkpoint(model: nn.Module, path: str | Path, config: dict | None = None) -> Path:
    """Write ``model``'s state dict and ``config`` (a JSON-able dict) to a ``.safetensors`` file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"checkpoints are .safetensors files, got {path.name!r}")
    return save_weights(model, path, metadata={CONFIG_KEY: json.dumps(config or {})})


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, config)`` from a file written by :func:`save_checkpoint`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"checkpoints are .safetensors files, got {path.name!r}")
    hint = "Save one with esser_lab.training.save_checkpoint (or train the stage that exports it)"
    state = read_state_dict(path, hint=hint)
    try:
        config = json.loads(read_metadata(path).get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as error:
        raise WeightsError(f"{path}: the stored config is not valid JSON: {error}") from None
    return state, config


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load ``path`` into ``model`` strictly; return the stored config dict."""
    state, config = read_checkpoint(path)
    load_weights(model, state, what=f"checkpoint {path}")
    return config
