"""Weights exported by diffusers, read into the book's classes (which keep the CompVis names).

Most Stable Diffusion 1.x and latent-diffusion weights in circulation today are diffusers
exports: a folder with ``unet/diffusion_pytorch_model.safetensors`` and
``vae/diffusion_pytorch_model.safetensors`` whose tensors are the same as in the original
``.ckpt`` release under other names. This module holds the one renaming between the two layouts,
in both directions, so that

* :func:`load_diffusers_unet` reads a diffusers ``UNet2DConditionModel`` file into
  :class:`esser_lab.nn.unet.UNetModel` of a given :class:`~esser_lab.nn.unet.UNetConfig`
  (e.g. ``UNetConfig.stable_diffusion_v1()``);
* :func:`load_diffusers_autoencoder` reads a diffusers ``AutoencoderKL`` (or ``VQModel``) file
  into :class:`esser_lab.nn.first_stage.AutoencoderKL` (or :class:`esser_lab.taming.VQModel`);
* ``bench/peers.py`` times the book's models against diffusers' with the very same weights
  (:func:`unet_to_diffusers`, :func:`autoencoder_to_diffusers`).

The renaming is not written twice: the map from our names to diffusers' names is the one
function per model below; reading a diffusers file inverts that map over the keys of the model
being loaded, so a key with no counterpart (or a file of another configuration) ends as a
missing or unexpected key that :func:`esser_lab.weights.load_weights` names. Two differences
are more than names: diffusers' autoencoder attention uses ``Linear`` layers where the CompVis
code uses 1×1 convolutions (the weights gain or lose the two trailing unit axes), and exports
made before diffusers 0.14 call those layers ``query``/``key``/``value``/``proj_attn`` (read
too). Loading builds the model on the meta device and adopts the file's tensors (no random
initialisation, no second copy of Stable Diffusion's 3.4 GB).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from esser_lab.weights import WeightsError, adopt_weights, read_state_dict

if TYPE_CHECKING:
    from esser_lab.nn.first_stage import AutoencoderKLConfig
    from esser_lab.nn.unet import UNetConfig, UNetModel
    from esser_lab.taming.model import VQModelConfig

__all__ = [
    "autoencoder_key_to_diffusers",
    "autoencoder_to_diffusers",
    "load_diffusers_autoencoder",
    "load_diffusers_unet",
    "unet_key_to_diffusers",
    "unet_to_diffusers",
]

DIFFUSERS_HINT = (
    "a diffusers export keeps the UNet in unet/diffusion_pytorch_model.safetensors and the "
    "autoencoder in vae/diffusion_pytorch_model.safetensors; esser_lab never downloads them"
)

# ---- the UNet ------------------------------------------------------------------------------------

_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_UNET_FIXED = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


def unet_key_to_diffusers(key: str, config: UNetConfig) -> str:
    """One key of our :class:`~esser_lab.nn.unet.UNetModel` (the official ``openaimodel``
    names, found under ``model.diffusion_model.*`` in a release) → the name of the same tensor
    in diffusers' ``UNet2DConditionModel``.

    ``input_blocks`` hold the input conv, then per level ``num_res_blocks`` blocks and a
    down-sampler (``num_res_blocks + 1`` entries a level); ``output_blocks`` hold
    ``num_res_blocks + 1`` blocks per level, lowest resolution first, as diffusers'
    ``up_blocks``. In a block, ``.0`` is the ResBlock, ``.1`` the SpatialTransformer (whose inner
    names diffusers shares) and the last entry of a level's last output block its up-sampler.
    Raises ``KeyError`` for a key diffusers cannot hold (``label_emb``, the legacy
    ``AttentionBlock``, ``resblock_updown``).
    """
    stride = config.num_res_blocks + 1
    head, _, kind = key.rpartition(".")  # kind: weight / bias
    if head in _UNET_FIXED:
        return f"{_UNET_FIXED[head]}.{kind}"
    match = re.fullmatch(
        r"(input_blocks|middle_block|output_blocks)\.(?:(\d+)\.)?(\d+)\.(.+)", head
    )
    if match is None:
        raise KeyError(f"no diffusers counterpart for {key!r}")
    part, block, layer, rest = match[1], match[2], int(match[3]), match[4]
    if part == "middle_block":
        owner = ("mid_block.resnets.0", "mid_block.attentions.0", "mid_block.resnets.1")[layer]
    elif part == "input_blocks":
        level, index = divmod(int(block) - 1, stride)
        if index == config.num_res_blocks:  # the level's down-sampler
            if rest != "op":
                raise KeyError(f"no diffusers counterpart for {key!r}")
            return f"down_blocks.{level}.downsamplers.0.conv.{kind}"
        owner = f"down_blocks.{level}.{'resnets' if layer == 0 else 'attentions'}.{index}"
    else:
        level, index = divmod(int(block), stride)
        if rest == "conv" and layer > 0:  # the level's up-sampler
            return f"up_blocks.{level}.upsamplers.0.conv.{kind}"
        owner = f"up_blocks.{level}.{'resnets' if layer == 0 else 'attentions'}.{index}"
    if owner.split(".")[-2] == "resnets":
        if rest not in _RESNET:
            raise KeyError(f"no diffusers counterpart for {key!r}")
        rest = _RESNET[rest]
    return f"{owner}.{rest}.{kind}"


def unet_to_diffusers(state: Mapping[str, Tensor], config: UNetConfig) -> dict[str, Tensor]:
    """Our UNet's state dict under diffusers' names (the same tensors: no reshaping)."""
    out = {unet_key_to_diffusers(key, config): value for key, value in state.items()}
    if len(out) != len(state):
        raise ValueError("two of our UNet keys map to one diffusers key")
    return out


# ---- the autoencoders (the ddconv family of chapters 10 and 14) ----------------------------------

_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_RESNET_AE = {"nin_shortcut": "conv_shortcut"}


def autoencoder_key_to_diffusers(key: str, levels: int) -> str:
    """One key of our first stages (the official taming / latent-diffusion ``Encoder`` and
    ``Decoder`` names; ``levels = len(ch_mult)``) → diffusers' ``AutoencoderKL`` / ``VQModel``
    name. ``quant_conv``, ``post_quant_conv`` and ``quantize.embedding`` keep their names; the
    decoder's levels are counted from the lowest resolution in diffusers (``up.{i}`` →
    ``up_blocks.{levels-1-i}``)."""
    match = re.fullmatch(
        r"(encoder|decoder)\.(?:(mid)\.(block_1|block_2|attn_1)|(down|up)\.(\d+)\."
        r"(block|attn|downsample|upsample)(?:\.(\d+))?)\.(\w+)\.(weight|bias)",
        key,
    )
    if match is None:
        part, _, rest = key.partition(".")
        if part in ("encoder", "decoder") and rest.split(".")[0] == "norm_out":
            return f"{part}.conv_norm_out.{rest.split('.', 1)[1]}"
        return key  # conv_in, conv_out, quant_conv, post_quant_conv, quantize.embedding
    part, mid, mid_name, direction, level, block, index, layer, kind = match.groups()
    if mid:
        owner = {
            "block_1": "mid_block.resnets.0",
            "block_2": "mid_block.resnets.1",
            "attn_1": "mid_block.attentions.0",
        }[mid_name]
    else:
        i = int(level) if direction == "down" else levels - 1 - int(level)
        owner = f"{direction}_blocks.{i}"
        if block in ("downsample", "upsample"):
            return f"{part}.{owner}.{block}rs.0.{layer}.{kind}"
        owner += f".{'resnets' if block == 'block' else 'attentions'}.{index}"
    table = _ATTENTION if "attentions" in owner else _RESNET_AE
    return f"{part}.{owner}.{table.get(layer, layer)}.{kind}"


def _is_attention_weight(diffusers_key: str) -> bool:
    """A q/k/v/out weight of an autoencoder attention block: Linear in diffusers, 1×1 conv here."""
    return ".attentions." in diffusers_key and diffusers_key.endswith(
        ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")
    )


def autoencoder_to_diffusers(state: Mapping[str, Tensor], levels: int) -> dict[str, Tensor]:
    """A first stage's state dict (our / the official names) under diffusers' names, the
    attention convs' ``(C, C, 1, 1)`` weights as ``Linear``'s ``(C, C)``."""
    out = {}
    for key, value in state.items():
        new = autoencoder_key_to_diffusers(key, levels)
        out[new] = value[:, :, 0, 0] if _is_attention_weight(new) else value
    if len(out) != len(state):
        raise ValueError("two of our autoencoder keys map to one diffusers key")
    return out


# ---- reading diffusers files ---------------------------------------------------------------------


def _read(source: str | Path | Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    if isinstance(source, Mapping):
        return dict(source), "the state dict"
    if isinstance(source, str | Path):
        return read_state_dict(source, hint=DIFFUSERS_HINT), str(source)
    raise WeightsError(f"source must be a path or a state dict, got {type(source).__name__}")


def load_diffusers_unet(
    source: str | Path | Mapping[str, Tensor],
    config: UNetConfig,
    dtype: torch.dtype | None = torch.float32,
) -> UNetModel:
    """A :class:`~esser_lab.nn.unet.UNetModel` of ``config`` from a diffusers
    ``UNet2DConditionModel`` file (``unet/diffusion_pytorch_model.safetensors``) or state dict.

    Every tensor must find its place (strict): a file of another configuration, or a
    ``config`` diffusers cannot express (class labels, ``resblock_updown``), raises
    :class:`~esser_lab.weights.WeightsError` naming the keys. Returned in eval mode, in
    ``dtype`` (``None``: the file's, e.g. float16 for an ``fp16`` variant).
    """
    from esser_lab.nn.unet import UNetModel

    state, name = _read(source)
    with torch.device("meta"):
        unet = UNetModel(config)
    to_ours = {}
    for key in unet.state_dict():
        try:
            to_ours[unet_key_to_diffusers(key, config)] = key
        except KeyError:
            pass  # stays missing: load_weights names it
    state = {to_ours.get(key, key): value for key, value in state.items()}
    return adopt_weights(unet, state, what=f"the diffusers UNet {name}", dtype=dtype).eval()


def load_diffusers_autoencoder(
    source: str | Path | Mapping[str, Tensor],
    config: AutoencoderKLConfig | VQModelConfig,
    dtype: torch.dtype | None = torch.float32,
) -> nn.Module:
    """Our first stage of ``config`` from a diffusers ``AutoencoderKL`` / ``VQModel`` file
    (``vae/diffusion_pytorch_model.safetensors``) or state dict, frozen in eval mode.

    ``config``: an ``AutoencoderKLConfig`` (e.g. ``kl_f8()`` for Stable Diffusion's VAE) or a
    ``VQModelConfig``. Attention weights stored as ``Linear`` (or, in old exports, as
    ``query``/``key``/``value``/``proj_attn``) become the 1×1 convolutions of the CompVis code.
    ``dtype`` as in :func:`load_diffusers_unet`.
    """
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.taming.model import VQModel

    state, name = _read(source)
    with torch.device("meta"):
        if isinstance(config, AutoencoderKLConfig):
            model: nn.Module = AutoencoderKL(config)
        else:
            try:
                model = VQModel(config)
            except TypeError:
                raise TypeError(
                    "config must be an AutoencoderKLConfig (kl_f8(), …) or a VQModelConfig "
                    f"(vq_f4(), …), got {type(config).__name__}"
                ) from None
    levels = len(config.ddconfig.ch_mult)
    to_ours = {autoencoder_key_to_diffusers(key, levels): key for key in model.state_dict()}
    renamed = {}
    for key, value in state.items():
        head, _, kind = key.rpartition(".")
        owner, _, layer = head.rpartition(".")
        if ".attentions." in key and layer in _LEGACY_ATTENTION:  # diffusers < 0.14 exports
            key = f"{owner}.{_LEGACY_ATTENTION[layer]}.{kind}"
        if _is_attention_weight(key) and value.dim() == 2:
            value = value[:, :, None, None]
        renamed[to_ours.get(key, key)] = value
    what = f"the diffusers {type(model).__name__} {name}"
    return adopt_weights(model, renamed, what=what, dtype=dtype).eval().requires_grad_(False)
