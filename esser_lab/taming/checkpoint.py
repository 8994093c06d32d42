"""Loading the released Taming Transformers checkpoints, safely and strictly.

The official files are PyTorch-Lightning (1.x) ``.ckpt`` pickles: the weights under
``"state_dict"``, beside ``epoch``, ``global_step``, optimizer states and the callbacks' states,
whose dict is keyed by the callback *class* (``pytorch_lightning.callbacks.model_checkpoint
.ModelCheckpoint``). A plain ``torch.load`` would import and run whatever the pickle names; here
the file is read by :mod:`esser_lab.weights` (``weights_only=True`` with an allow-list of exactly
the non-tensor globals such checkpoints hold, each mapped to an inert stand-in; the old
``pytorch_lightning`` is not needed). Any other global is refused with its name. Every failure is a
:class:`~esser_lab.weights.WeightsError` (``CheckpointError`` here is the same class).

* VQGAN (``vqgan_imagenet_f16_1024/ckpts/last.ckpt``, ``..._16384``): 398 tensors; the 55 under
  ``loss.`` (LPIPS and the discriminator) are training-time companions and are dropped; the other
  343 load into :class:`~esser_lab.taming.model.VQModel` with ``strict=True``.
* Transformer checkpoints (``Net2NetTransformer``): ``transformer.*`` (the GPT),
  ``first_stage_model.*`` (the VQGAN, without ``loss.``) and, for image-conditioned models,
  ``cond_stage_model.*``. :func:`split_transformer_checkpoint` separates the three parts.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.weights import WeightsError, load_weights, read_state_dict

__all__ = [
    "CheckpointError",
    "load_lightning_state_dict",
    "load_vqgan",
    "split_transformer_checkpoint",
]


CheckpointError = WeightsError  # the name chapter 10 and its tests import

TAMING_HINT = (
    "Download the released file yourself (esser_lab never downloads) and put it under "
    "data/checkpoints/taming/ (see data/README.md)"
)


def load_lightning_state_dict(path: str | Path) -> dict[str, Tensor]:
    """``ckpt["state_dict"]`` of a Lightning ``.ckpt`` (or a bare state dict), read weights-only.

    A thin wrapper of :func:`esser_lab.weights.read_state_dict` with the Taming download hint.
    """
    return read_state_dict(path, hint=TAMING_HINT)


def _load_strict(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    load_weights(model, state, what=what)


def load_vqgan(path: str | Path, config: VQGANConfig | None = None) -> VQModel:
    """A :class:`VQModel` with the released VQGAN weights of ``path`` (``loss.*`` dropped).

    ``config`` defaults to the ImageNet f16 model whose codebook size the file has.
    """
    state = read_state_dict(path, drop=("loss.",), hint=TAMING_HINT)
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
