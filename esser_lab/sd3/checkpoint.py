"""The released SD3 / SD3.5 single files, read strictly into :class:`esser_lab.sd3.model.MMDiT`.

Esser et al. 2024 (arXiv 2403.03206), chapter 17. The official single files
(``sd3_medium.safetensors``, ``sd3.5_medium.safetensors``, ``sd3.5_large.safetensors``; read by
``sd3_impls.BaseModel`` of Stability-AI/sd3.5) hold the MMDiT under ``model.diffusion_model.``
with the names of ``mmditx.py`` (the names of :mod:`esser_lab.nn.dit`), and the "incl_clips"
variants add the 16-channel VAE under ``first_stage_model.`` and the three text encoders under
``text_encoders.{clip_l,clip_g,t5xxl}.``. A bare MMDiT state dict (no prefix) is read as well.

Conventions a reader could get wrong:

* the configuration is read off the shapes as ``BaseModel`` does (:func:`infer_config`): the
  released models have width 64·depth and depth heads, which is what it assumes;
* the files are float16 (SD3-medium) or bfloat16 (SD3.5); :func:`load_mmdit` returns float32
  unless ``dtype`` says otherwise;
* diffusers' ``SD3Transformer2DModel`` layout (``transformer_blocks.*``) is another naming of the
  same tensors: q, k, v are split (the fused ``qkv`` is [q; k; v] along the output axis) and the
  two (shift, scale) modulations, ``final_layer`` and the last block's pre-only context stream,
  are stored (scale, shift) (``AdaLayerNormContinuous``). :func:`mmdit_to_diffusers` and
  :func:`mmdit_from_diffusers` convert; :func:`load_mmdit` refuses that layout with a message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.sd3.model import MMDiT, MMDiTConfig
from esser_lab.weights import WeightsError, adopt_weights, read_state_dict

__all__ = [
    "SD3Parts",
    "infer_config",
    "load_mmdit",
    "mmdit_from_diffusers",
    "mmdit_to_diffusers",
    "split_sd3_checkpoint",
]

MMDIT_PREFIX = "model.diffusion_model."
OTHER_PREFIXES = {
    "first_stage_model.": "the 16-channel VAE",
    "text_encoders.": "CLIP-L, CLIP-G, T5",
}
DIFFUSERS_MARKERS = ("transformer_blocks.", "time_text_embed.", "pos_embed.proj.", "proj_out.")
SD3_HINT = (
    "Download the released file yourself (esser_lab never downloads; stabilityai/"
    "stable-diffusion-3-medium, stable-diffusion-3.5-medium / -large on the Hugging Face hub, "
    "gated) and put it under data/checkpoints/sd3/ (see data/README.md)"
)


@dataclass(frozen=True)
class SD3Parts:
    """An official SD3 single file split by prefix (each dict without its prefix).

    ``mmdit``: ``model.diffusion_model.*`` (or every key of a bare file); ``first_stage``:
    ``first_stage_model.*``; ``text_encoders``: ``text_encoders.*`` (``clip_l.``, ``clip_g.``,
    ``t5xxl.`` with Hugging Face names). Only ``mmdit`` is loaded by :func:`load_mmdit`.
    """

    source: str
    mmdit: dict[str, Tensor]
    first_stage: dict[str, Tensor] = field(default_factory=dict)
    text_encoders: dict[str, Tensor] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """What :func:`load_mmdit` leaves out of this file, in words ("" when nothing)."""
        left = [
            f"{len(part)} {prefix}* tensors ({what})"
            for (prefix, what), part in zip(
                OTHER_PREFIXES.items(), (self.first_stage, self.text_encoders), strict=True
            )
            if part
        ]
        return "not loaded into the MMDiT: " + ", ".join(left) if left else ""


def _diffusers_error(name: str) -> WeightsError:
    return WeightsError(
        f"{name} holds diffusers' SD3Transformer2DModel layout (transformer_blocks.*, "
        "time_text_embed.*, pos_embed.proj.*); load_mmdit expects the official single-file "
        "layout of Stability-AI/sd3.5 mmditx.py (x_embedder.*, joint_blocks.{i}.x_block/"
        "context_block.*, final_layer.*, bare or under model.diffusion_model.). Convert it first "
        "with esser_lab.sd3.checkpoint.mmdit_from_diffusers(state_dict)"
    )


def split_sd3_checkpoint(source: str | Path | Mapping[str, Tensor]) -> SD3Parts:
    """Split an official single file (a path or its state dict) into :class:`SD3Parts`.

    Keys outside ``model.diffusion_model.``, ``first_stage_model.`` and ``text_encoders.`` (when
    the first prefix is present) raise :class:`WeightsError` with their names; so does a file in
    diffusers' layout.
    """
    if isinstance(source, Mapping):
        state, name = dict(source), "the state dict"
    else:
        state, name = read_state_dict(source, hint=SD3_HINT), str(source)
    if any(k.startswith(DIFFUSERS_MARKERS) for k in state):
        raise _diffusers_error(name)
    if not any(k.startswith(MMDIT_PREFIX) for k in state):
        return SD3Parts(source=name, mmdit=state)
    groups: dict[str, dict[str, Tensor]] = {p: {} for p in (MMDIT_PREFIX, *OTHER_PREFIXES)}
    other = []
    for key, value in state.items():
        prefix = next((p for p in groups if key.startswith(p)), None)
        if prefix is None:
            other.append(key)
        else:
            groups[prefix][key.removeprefix(prefix)] = value
    if other:
        raise WeightsError(
            f"{name} has {len(other)} keys outside model.diffusion_model., first_stage_model. "
            f"and text_encoders.: {sorted(other)[:10]}"
        )
    first_stage, text_encoders = (groups[p] for p in OTHER_PREFIXES)
    return SD3Parts(name, groups[MMDIT_PREFIX], first_stage, text_encoders)


def _get(state: Mapping[str, Tensor], key: str, name: str) -> Tensor:
    if key not in state:
        raise WeightsError(
            f"{name} has no {key!r}: not an MMDiT in the official layout (expected x_embedder.*, "
            f"pos_embed, y_embedder.*, context_embedder.*, joint_blocks.*; found e.g. "
            f"{sorted(state)[:5]})"
        )
    return state[key]


def infer_config(state_dict: Mapping[str, Tensor], *, name: str = "the state dict") -> MMDiTConfig:
    """The :class:`MMDiTConfig` of an MMDiT state dict (bare keys), from shapes as the official
    ``sd3_impls.BaseModel``: patch size and channels from ``x_embedder.proj.weight``, the
    positional table's side from ``pos_embed`` (√ of its length), ``adm_in`` from
    ``y_embedder.mlp.0.weight``, QK-norm from ``ln_k`` keys, the MMDiT-X layers from
    ``x_block.attn2`` keys. Depth is the number of ``joint_blocks``; the heads follow the
    official rule (width = 64·depth, heads = depth), else the head dim of ``ln_k`` (QK-norm);
    a width ≠ 64·depth without QK-norm leaves the heads unknown: pass a config."""
    patch = _get(state_dict, "x_embedder.proj.weight", name)
    width, in_channels, patch_size = patch.shape[0], patch.shape[1], patch.shape[2]
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"joint_blocks\.(\d+)\.", k))}
    if not blocks or blocks != set(range(len(blocks))):
        raise WeightsError(
            f"{name}: joint_blocks must be numbered 0..depth-1, got {sorted(blocks)}"
        )
    depth = len(blocks)
    context = _get(state_dict, "context_embedder.weight", name)
    table = _get(state_dict, "pos_embed", name)
    side = round(math.sqrt(table.shape[1]))
    if side * side != table.shape[1]:
        raise WeightsError(f"{name}: pos_embed {tuple(table.shape)} is not a square table")
    ln_k = state_dict.get("joint_blocks.0.context_block.attn.ln_k.weight")
    attn2 = sorted(
        int(m.group(1))
        for k in state_dict
        if (m := re.match(r"joint_blocks\.(\d+)\.x_block\.attn2\.qkv\.weight$", k))
    )
    fc1 = _get(state_dict, "joint_blocks.0.x_block.mlp.fc1.weight", name)
    if width == 64 * depth:
        hidden, heads = None, None
    elif ln_k is not None:
        hidden, heads = width, width // ln_k.shape[0]
    else:
        raise WeightsError(
            f"{name}: width {width} ≠ 64·depth ({64 * depth}) and no QK-norm: the number of heads "
            "cannot be read off the shapes; pass config= (an MMDiTConfig)"
        )
    return MMDiTConfig(
        in_channels=in_channels,
        patch_size=patch_size,
        depth=depth,
        hidden=hidden,
        num_heads=heads,
        mlp_ratio=fc1.shape[0] / width,
        context_dim=context.shape[1],
        adm_in=_get(state_dict, "y_embedder.mlp.0.weight", name).shape[1],
        pos_embed_max_size=side,
        qk_norm=ln_k is not None,
        x_block_self_attn_layers=tuple(attn2),
    )


def load_mmdit(
    source: str | Path | Mapping[str, Tensor] | SD3Parts,
    config: MMDiTConfig | None = None,
    dtype: torch.dtype | None = torch.float32,
) -> MMDiT:
    """An :class:`MMDiT` holding the official file's weights, in eval mode.

    ``source``: a released single file, its state dict (bare or ``model.diffusion_model.``), or
    its :class:`SD3Parts` (whose ``note`` says what else the file holds; the VAE and text
    encoders are not loaded here). ``config``: None → :func:`infer_config`. Strict: a missing or
    unexpected key raises :class:`WeightsError` naming it. Built on the meta device, the model
    adopts the file's tensors; returned in ``dtype`` (None: the file's, float16/bfloat16).
    """
    parts = source if isinstance(source, SD3Parts) else split_sd3_checkpoint(source)
    what = f"the MMDiT ({MMDIT_PREFIX}* or bare) of {parts.source}"
    if config is None:
        config = infer_config(parts.mmdit, name=parts.source)
    with torch.device("meta"):
        model = MMDiT(config)
    return adopt_weights(model, parts.mmdit, what=what, dtype=dtype).eval()


# ---- diffusers' naming -------------------------------------------------------------------------

# (our name inside a joint block, diffusers' name inside transformer_blocks.{i}); qkv apart.
_BLOCK_NAMES = (
    ("x_block.attn.ln_q", "attn.norm_q"),
    ("x_block.attn.ln_k", "attn.norm_k"),
    ("context_block.attn.ln_q", "attn.norm_added_q"),
    ("context_block.attn.ln_k", "attn.norm_added_k"),
    ("x_block.attn.proj", "attn.to_out.0"),
    ("context_block.attn.proj", "attn.to_add_out"),
    ("x_block.attn2.ln_q", "attn2.norm_q"),
    ("x_block.attn2.ln_k", "attn2.norm_k"),
    ("x_block.attn2.proj", "attn2.to_out.0"),
    ("x_block.adaLN_modulation.1", "norm1.linear"),
    ("context_block.adaLN_modulation.1", "norm1_context.linear"),
    ("x_block.mlp.fc1", "ff.net.0.proj"),
    ("x_block.mlp.fc2", "ff.net.2"),
    ("context_block.mlp.fc1", "ff_context.net.0.proj"),
    ("context_block.mlp.fc2", "ff_context.net.2"),
)
_QKV = (
    ("x_block.attn.qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
    ("context_block.attn.qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
    ("x_block.attn2.qkv", ("attn2.to_q", "attn2.to_k", "attn2.to_v")),
)
_TOP_NAMES = (
    ("pos_embed", "pos_embed.pos_embed"),
    ("x_embedder.proj", "pos_embed.proj"),
    ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
    ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
    ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
    ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
    ("context_embedder", "context_embedder"),
    ("final_layer.linear", "proj_out"),
    ("final_layer.adaLN_modulation.1", "norm_out.linear"),
)


def _swap_halves(t: Tensor) -> Tensor:
    """(shift, scale) ↔ (scale, shift) along the output axis (its own inverse)."""
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _rename(name: str, table: tuple[tuple[str, str], ...], reverse: bool) -> str | None:
    for ours, theirs in table:
        src, dst = (theirs, ours) if reverse else (ours, theirs)
        if name == src or name.startswith(src + "."):
            return dst + name[len(src) :]
    return None


def _convert(state: Mapping[str, Tensor], reverse: bool) -> dict[str, Tensor]:
    block_re = r"transformer_blocks\.(\d+)\.(.+)" if reverse else r"joint_blocks\.(\d+)\.(.+)"
    out_block = "joint_blocks" if reverse else "transformer_blocks"
    # the pre-only context stream (last block) has no MLP: its modulation is (shift, scale)
    mlp_key = "ff_context.net.0.proj.weight" if reverse else "context_block.mlp.fc1.weight"
    fused: dict[tuple[str, str, str], dict[int, Tensor]] = {}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if m := re.fullmatch(block_re, key):
            i, rest = m.group(1), m.group(2)
            swap = rest.startswith(
                "norm1_context." if reverse else "context_block.adaLN_modulation."
            )
            swap = swap and f"{m.string[: m.start(2)]}{mlp_key}" not in state
            for ours, theirs in _QKV:
                if reverse:
                    hit = next((j for j, n in enumerate(theirs) if rest.startswith(n + ".")), None)
                    if hit is not None:
                        fused.setdefault((i, ours, rest.split(".")[-1]), {})[hit] = value
                        break
                elif rest.startswith(ours + "."):
                    suffix = rest[len(ours) :]
                    for name, part in zip(theirs, value.chunk(3, dim=0), strict=True):
                        out[f"{out_block}.{i}.{name}{suffix}"] = part
                    break
            else:
                new = _rename(rest, _BLOCK_NAMES, reverse)
                if new is None:
                    raise WeightsError(
                        f"no {'official' if reverse else 'diffusers'} name for {key!r}"
                    )
                out[f"{out_block}.{i}.{new}"] = _swap_halves(value) if swap else value
        else:
            new = _rename(key, _TOP_NAMES, reverse)
            if new is None:
                raise WeightsError(f"no {'official' if reverse else 'diffusers'} name for {key!r}")
            out[new] = (
                _swap_halves(value) if new.startswith(("norm_out.", "final_layer.adaLN")) else value
            )
    for (i, ours, kind), parts in fused.items():
        if sorted(parts) != [0, 1, 2]:
            raise WeightsError(f"transformer_blocks.{i}: q, k and v of {ours} are not all there")
        out[f"joint_blocks.{i}.{ours}.{kind}"] = torch.cat([parts[j] for j in range(3)], dim=0)
    return out


def mmdit_to_diffusers(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An MMDiT state dict (official names, bare) in diffusers' ``SD3Transformer2DModel`` names,
    as ``scripts/convert_sd3_to_diffusers.py``: fused qkv split into q, k, v (chunk(3) of the
    output axis), (shift, scale) → (scale, shift) for ``final_layer`` and the pre-only context
    modulation of the last block; the rest renamed."""
    return _convert(state_dict, reverse=False)


def mmdit_from_diffusers(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`mmdit_to_diffusers`: q, k, v concatenated into ``qkv``, the two
    modulations swapped back, diffusers' names to the official ones."""
    return _convert(state_dict, reverse=True)
