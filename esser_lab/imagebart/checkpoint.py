"""Loading the released ImageBART checkpoints (per-scale Lightning ``.ckpt`` files), strictly.

Each scale of a released model is its own file (``models/ffhq_4_scales_geometric/scale{1..4}``):
``transformer.*`` (the transition), ``transformer_ema.*`` (LitEma shadows), ``first_stage_model.*``
(the taming VQGAN with its ``quantize.used`` remap buffer, without ``loss.*`` in the released
configs' ``DummyLoss``), and the buffers ``sos_token``, ``alphats``, ``alphacum``. The files are
read weights-only through :mod:`esser_lab.weights` (an allow-list of Lightning's non-tensor
globals; never unpickled).

* :func:`load_last_scale`: the last scale's minGPT (``DecoderOnlyDenoiser``, ``transformer.{tok_emb,
  pos_emb, blocks.N…, ln_f, head}``) into :class:`~esser_lab.nn.transformer.GPT` at the config's
  size, strict; optionally with the EMA weights.
* :func:`load_transition`: an encoder–decoder scale (x-transformers names, ``log_scalors``) into
  :class:`~esser_lab.imagebart.xtransformer.XTransformer`, strict, optionally its EMA.
* :func:`load_first_stage`: the VQGAN with ``remap`` into
  :class:`~esser_lab.imagebart.first_stage.RemappedVQModel`, strict (``quantize.used`` included).
* :func:`check_schedule`: the stored ``alphats`` / ``alphacum`` against our schedule.

The module names follow the x-transformers copy in the official repository
(``imagebart/modules/xtransformers/x_transformer.py``), read offline; no released file was
available here, so the tests check loading on files written in that layout.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from esser_lab.imagebart.first_stage import RemappedVQModel
from esser_lab.imagebart.model import ImageBARTConfig
from esser_lab.imagebart.xtransformer import XTransformer
from esser_lab.nn.transformer import GPT
from esser_lab.taming.model import VQModelConfig
from esser_lab.training.ema import shadow_name
from esser_lab.weights import WeightsError, adopt_weights, load_weights, read_state_dict

__all__ = [
    "check_schedule",
    "load_first_stage",
    "load_last_scale",
    "load_transition",
    "split_scale_checkpoint",
]

HINT = (
    "Download the released ImageBART files yourself (esser_lab never downloads) and put them "
    "under data/checkpoints/imagebart/ (see data/README.md)"
)
_PARTS = ("transformer", "transformer_ema", "first_stage_model")
_BUFFERS = ("sos_token", "alphats", "alphacum")


def split_scale_checkpoint(source: str | Path | dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """The parts of one scale's checkpoint, prefixes removed: ``transformer``,
    ``transformer_ema`` (if present), ``first_stage_model`` and ``buffers``. Any other key is an
    error that names it."""
    state = source if isinstance(source, dict) else read_state_dict(source, hint=HINT)
    parts: dict[str, dict[str, Tensor]] = {"buffers": {}}
    other = []
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix in _PARTS and rest:
            if prefix == "first_stage_model" and rest.startswith("loss."):
                continue
            parts.setdefault(prefix, {})[rest] = value
        elif key in _BUFFERS:
            parts["buffers"][key] = value
        else:
            other.append(key)
    if "transformer" not in parts:
        raise WeightsError(
            "not an ImageBART scale checkpoint: expected 'transformer.*' keys, found prefixes "
            f"{sorted({k.split('.')[0] for k in state})}"
        )
    if other:
        raise WeightsError(f"keys outside the known parts of an ImageBART scale: {other[:5]}")
    return parts


def load_last_scale(
    source: str | Path | dict[str, Tensor],
    config: ImageBARTConfig | None = None,
    use_ema: bool = False,
) -> GPT:
    """The last scale's GPT at ``config``'s size (default: the paper's FFHQ model), strict.

    ``use_ema``: the ``transformer_ema.*`` shadows (LitEma: names without dots, plus
    ``num_updates`` and ``decay``) instead of the training weights.
    """
    config = ImageBARTConfig.paper() if config is None else config
    if config.last_scale != "gpt":
        raise ValueError("config.last_scale must be 'gpt' to load a DecoderOnlyDenoiser scale")
    parts = split_scale_checkpoint(source)
    with torch.device("meta"):
        gpt = config.build_gpt()
    state = _transformer_state(parts, gpt, use_ema)
    adopt_weights(gpt, state, what="ImageBART last-scale GPT", hint=HINT)
    return gpt.eval()


def _transformer_state(
    parts: dict[str, dict[str, Tensor]], model: torch.nn.Module, use_ema: bool
) -> dict[str, Tensor]:
    if not use_ema:
        return parts["transformer"]
    shadows = parts.get("transformer_ema")
    if shadows is None:
        raise WeightsError("the checkpoint has no 'transformer_ema.*' weights")
    state = {}
    for name, _ in model.named_parameters():
        if shadow_name(name) not in shadows:
            raise WeightsError(f"the EMA lacks the shadow of {name!r} ({shadow_name(name)!r})")
        state[name] = shadows[shadow_name(name)]
    for name, _ in model.named_buffers():  # buffers (the GPT's causal masks) are not averaged
        if name not in parts["transformer"]:
            raise WeightsError(f"the checkpoint lacks the buffer 'transformer.{name}'")
        state[name] = parts["transformer"][name]
    return state


def load_transition(
    source: str | Path | dict[str, Tensor],
    config: ImageBARTConfig | None = None,
    use_ema: bool = False,
) -> XTransformer:
    """One encoder–decoder scale (``DenoisingXTransformer`` with a ``ResidualScaledXTransformer``:
    ``transformer.{encoder,decoder}.*`` and ``transformer.log_scalors``) at ``config``'s size
    (default: the paper's FFHQ model), strict; ``use_ema``: the ``transformer_ema.*`` shadows."""
    config = ImageBARTConfig.paper() if config is None else config
    parts = split_scale_checkpoint(source)
    with torch.device("meta"):
        net = config.build_xtransformer()
    state = _transformer_state(parts, net, use_ema)
    adopt_weights(net, state, what="ImageBART encoder-decoder scale", hint=HINT)
    return net.eval()


def load_first_stage(
    source: str | Path | dict[str, Tensor], config: VQModelConfig | None = None
) -> RemappedVQModel:
    """The remapped VQGAN of a scale checkpoint (default architecture: the FFHQ f16 VQGAN)."""
    config = VQModelConfig.paper(1024) if config is None else config
    parts = split_scale_checkpoint(source)
    state = parts.get("first_stage_model")
    if state is None or "quantize.used" not in state:
        raise WeightsError(
            "the checkpoint has no 'first_stage_model.quantize.used' (the remap list of the "
            "used codes): not an ImageBART scale with a remapped VQGAN"
        )
    model = RemappedVQModel(config, state["quantize.used"])
    load_weights(model, state, what="ImageBART first stage (VQGAN with remap)", hint=HINT)
    return model.eval()


def check_schedule(source: str | Path | dict[str, Tensor], config: ImageBARTConfig) -> None:
    """Raises unless the stored ``alphats`` and ``alphacum`` equal ``config``'s schedule."""
    buffers = split_scale_checkpoint(source)["buffers"]
    schedule = config.schedule_tensor()
    for name, expected in (("alphats", schedule.alphas), ("alphacum", schedule.alphacum)):
        stored = buffers.get(name)
        if (
            stored is None
            or stored.shape != expected.shape
            or not torch.allclose(stored.double(), expected, atol=1e-6)
        ):
            raise WeightsError(
                f"{name} of the checkpoint ({None if stored is None else stored.tolist()}) is not "
                f"the {config.schedule} schedule of {config.n_scales} scales "
                f"({expected.tolist()})"
            )
