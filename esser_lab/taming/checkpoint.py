"""Loading the released Taming Transformers checkpoints, safely and strictly.

The official files are PyTorch-Lightning (1.x) ``.ckpt`` pickles: the weights under
``"state_dict"``, beside ``epoch``, ``global_step``, optimizer states and the callbacks' states,
whose dict is keyed by the callback *class* (``pytorch_lightning.callbacks.model_checkpoint
.ModelCheckpoint``). A plain ``torch.load`` would import and run whatever the pickle names; here
the file is read with ``weights_only=True`` and an allow-list of exactly the non-tensor globals such
checkpoints hold, each mapped to an inert stand-in (the old ``pytorch_lightning`` is not needed).
Any other global is refused with its name.

* VQGAN (``vqgan_imagenet_f16_1024/ckpts/last.ckpt``, ``..._16384``): 398 tensors; the 55 under
  ``loss.`` (LPIPS and the discriminator) are training-time companions and are dropped; the other
  343 load into :class:`~esser_lab.taming.model.VQModel` with ``strict=True``.
* Transformer checkpoints (``Net2NetTransformer``): ``transformer.*`` (the GPT),
  ``first_stage_model.*`` (the VQGAN, without ``loss.``) and, for image-conditioned models,
  ``cond_stage_model.*``. :func:`split_transformer_checkpoint` separates the three parts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from esser_lab.taming.model import VQGANConfig, VQModel

__all__ = [
    "CheckpointError",
    "load_lightning_state_dict",
    "load_vqgan",
    "split_transformer_checkpoint",
]


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, unsafe or does not fit the model."""


class _Inert:
    """Stands in for a class named in a checkpoint's pickle: accepts any state, does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        self.state = state


# The non-tensor globals found in Lightning 1.x checkpoints of this era (callback classes used as
# dict keys, and the enum/namespace types some of them store). Mapped to the inert stand-in.
_LIGHTNING_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "argparse.Namespace",
)


def _safe_globals() -> list:
    import numpy as np

    inert = [(type(name.rsplit(".", 1)[1], (_Inert,), {}), name) for name in _LIGHTNING_GLOBALS]
    # numpy scalars (e.g. a best-model score) pickle through ``numpy.core.multiarray.scalar``
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    extra = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    extra.append(np.dtype)
    extra += [type(np.dtype(t)) for t in ("float64", "float32", "int64")]
    return inert + extra


def load_lightning_state_dict(path: str | Path) -> dict[str, Tensor]:
    """``ckpt["state_dict"]`` of a Lightning ``.ckpt`` (or a bare state dict), read weights-only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}. Download the released file yourself (esser_lab never "
            "downloads) and put it under data/checkpoints/taming/ (see data/README.md)"
        )
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises several types for bad files)
        message = str(error)
        unsafe = [line.strip() for line in message.splitlines() if "Unsupported global" in line]
        reason = (
            unsafe[0].split(" was not")[0] if unsafe else message.splitlines()[0] if message else ""
        )
        raise CheckpointError(
            f"could not read {path} as a weights-only PyTorch checkpoint ({type(error).__name__}: "
            f"{reason}). Either the file is corrupted or truncated, or its pickle names globals "
            "outside the allow-list; it is not unpickled further."
        ) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} holds no state dict of tensors (expected ckpt['state_dict'])"
        )
    return state


def _load_strict(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{what} does not match the model: {len(missing)} missing key(s) {missing[:5]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{what} has tensors of the wrong shape (another config?): {wrong[:5]}"
        )
    model.load_state_dict(state, strict=True)


def load_vqgan(path: str | Path, config: VQGANConfig | None = None) -> VQModel:
    """A :class:`VQModel` with the released VQGAN weights of ``path`` (``loss.*`` dropped).

    ``config`` defaults to the ImageNet f16 model whose codebook size the file has.
    """
    state = load_lightning_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    if config is None:
        codebook = state.get("quantize.embedding.weight")
        if codebook is None:
            raise CheckpointError(
                f"{path} has no 'quantize.embedding.weight': not a VQGAN checkpoint"
            )
        config = (
            VQGANConfig.paper(codebook.shape[0]) if codebook.shape[0] in (1024, 16384) else None
        )
        if config is None:
            raise CheckpointError(
                f"{path} has {codebook.shape[0]} codes; pass the matching VQGANConfig explicitly"
            )
    model = VQModel(config)
    _load_strict(model, state, f"VQGAN checkpoint {Path(path).name}")
    return model.eval()


def split_transformer_checkpoint(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """The parts of a released transformer checkpoint, prefixes removed.

    Returns ``{"transformer": ..., "first_stage_model": ..., "cond_stage_model": ...}`` (the last
    only when present). Keys outside these prefixes (and ``*.loss.*``) are reported, not kept.
    """
    state = load_lightning_state_dict(path)
    parts: dict[str, dict[str, Tensor]] = {}
    other = []
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix in ("transformer", "first_stage_model", "cond_stage_model"):
            if not rest.startswith("loss."):
                parts.setdefault(prefix, {})[rest] = value
        else:
            other.append(key)
    if "transformer" not in parts or "first_stage_model" not in parts:
        raise CheckpointError(
            f"{path} is not a Net2NetTransformer checkpoint: expected 'transformer.*' and "
            f"'first_stage_model.*' keys, found prefixes {sorted({k.split('.')[0] for k in state})}"
        )
    if other:
        raise CheckpointError(f"{path} has keys outside the known parts: {other[:5]}")
    return parts
