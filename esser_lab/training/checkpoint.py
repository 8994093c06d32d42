"""Checkpoint I/O with safetensors: tensors plus the model's config as a plain JSON dict.

Nothing is ever unpickled. Loading is strict: missing and unexpected keys are named.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

CONFIG_KEY = "esser_lab.config"


def save_checkpoint(model: nn.Module, path: str | Path, config: dict | None = None) -> Path:
    """Write ``model``'s state dict and ``config`` (a JSON-able dict) to a ``.safetensors`` file."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoints are .safetensors files, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(config or {})}
    save_file(state, str(path), metadata=metadata)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, config)`` from a file written by :func:`save_checkpoint`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {error}") from error
    try:
        config = json.loads(metadata.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the stored config is not valid JSON: {error}") from error
    return state, config


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load ``path`` into ``model`` strictly; return the stored config dict."""
    state, config = read_checkpoint(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {type(model).__name__}: missing keys {missing[:10]}"
            f"{' …' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]}"
            f"{' …' if len(unexpected) > 10 else ''}"
        )
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{path}: shape mismatch for {wrong[:5]}")
    model.load_state_dict(state, strict=True)
    return config
