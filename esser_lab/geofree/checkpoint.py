"""Loading the released geometry-free transformers (``re_impl_nodepth``, ``ac_impl_nodepth``).

The official files are PyTorch-Lightning ``.ckpt`` pickles with the weights under
``"state_dict"``, read here weights-only through :mod:`esser_lab.weights` (an allow-list of the
few non-tensor globals Lightning stores; nothing else is unpickled). Their prefixes:

* ``transformer.*``: the minGPT (``tok_emb``, ``pos_emb`` (1, 627, 1024), 32 ``blocks`` with
  their persistent ``attn.mask`` (1, 1, 627, 627), ``ln_f``, ``head``) → our
  :class:`~esser_lab.nn.transformer.GPT`;
* ``emb_stage_model.fc.weight`` (1024, 1): the camera-token embedder → :class:`MultiEmbedder`;
* ``merge_conv.weight``: only in the ``impl_depth`` / ``hybrid`` variants (depth and source codes
  merged by a 1×1 conv), which this package does not implement: refused with a message;
* the released files are stripped by the official ``scripts/strip_ckpt.py``, which drops
  ``first_stage_model``, ``cond_stage_model``, ``depth_stage_model`` and ``_midas``; the VQGANs
  come as separate files (``download_vqmodels.py``). An unstripped file is read too: its
  ``first_stage_model.*`` loads into the VQGAN, ``cond_stage_model.*`` must equal it (the
  official ``cond_stage_config: "__is_first_stage__"``), ``depth_stage_model.*`` (a 1-channel
  VQGAN with 1024 codes) is returned apart, and ``_midas.*`` (MiDaS, fetched by ``torch.hub`` in
  the official code) is dropped: MiDaS is a user-provided stand-in here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer, first_stage_config
from esser_lab.taming.model import VQGANConfig, VQModel, VQModelConfig
from esser_lab.weights import WeightsError, load_weights, read_state_dict

__all__ = ["GeoFreeCheckpoint", "depth_stage_config", "load_geofree", "split_geofree_checkpoint"]

HINT = (
    "Download the released file yourself (esser_lab never downloads; the official "
    "scripts/braindance.py names the URLs) and put it under data/checkpoints/geofree/"
)
KNOWN = ("transformer", "emb_stage_model", "first_stage_model", "cond_stage_model",
         "depth_stage_model", "_midas", "merge_conv")  # fmt: skip


def depth_stage_config(config: VQModelConfig | VQGANConfig | None = None) -> VQModelConfig:
    """The depth VQGAN of the official configs: the first stage's architecture with one input
    and output channel and 1024 codes."""
    base = first_stage_config("paper") if config is None else config
    base = base.architecture if isinstance(base, VQGANConfig) else base
    dd = replace(base.ddconfig, in_channels=1, out_ch=1)
    return replace(base, ddconfig=dd, n_embed=1024)


@dataclass(frozen=True)
class GeoFreeCheckpoint:
    """A loaded file: the transformer with its first stage, and the depth stage if the file had
    one (unstripped checkpoints only)."""

    model: GeoTransformer
    depth_stage: VQModel | None


def split_geofree_checkpoint(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """The file's parts by prefix (prefixes removed); unknown prefixes, ``merge_conv`` refused."""
    state = read_state_dict(path, hint=HINT)
    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix not in KNOWN:
            raise WeightsError(
                f"{path}: key {key!r} is outside the GeoFree layout (expected prefixes {KNOWN})"
            )
        parts.setdefault(prefix, {})[rest] = value
    if "transformer" not in parts or "emb_stage_model" not in parts:
        raise WeightsError(
            f"{path} is not a GeoFree transformer checkpoint: expected 'transformer.*' and "
            f"'emb_stage_model.*' keys, found prefixes {sorted(parts)}"
        )
    if "merge_conv" in parts:
        raise WeightsError(
            f"{path} has 'merge_conv.*': an impl_depth or hybrid checkpoint (depth and source "
            "codes merged by a 1×1 conv); esser_lab implements the impl_nodepth variant only"
        )
    return parts


def load_geofree(
    path: str | Path,
    config: GeoFreeConfig | None = None,
    first_stage: VQModel | None = None,
) -> GeoFreeCheckpoint:
    """A :class:`GeoTransformer` with the weights of ``path``, every part loaded strictly.

    ``config`` defaults to :meth:`GeoFreeConfig.paper`. ``first_stage``: the VQGAN, already loaded
    (from its own file, as the releases come), unless the file holds ``first_stage_model.*``.
    """
    config = GeoFreeConfig.paper() if config is None else config
    parts = split_geofree_checkpoint(path)
    name = Path(path).name
    if "first_stage_model" in parts:
        if first_stage is None:
            first_stage = VQModel(first_stage_config("paper"))
        load_weights(first_stage, parts["first_stage_model"], what=f"{name}: first_stage_model")
        if "cond_stage_model" in parts:
            first = parts["first_stage_model"]
            cond = parts["cond_stage_model"]
            if cond.keys() != first.keys() or any(
                not torch.equal(cond[k], first[k]) for k in first
            ):
                raise WeightsError(
                    f"{name}: cond_stage_model differs from first_stage_model; the impl_nodepth "
                    "configs encode the source with the first stage ('__is_first_stage__')"
                )
    elif first_stage is None:
        raise WeightsError(
            f"{name} holds no first_stage_model.* (a stripped release): pass the VQGAN loaded "
            "from its own file as first_stage (esser_lab.taming.checkpoint.load_vqgan)"
        )
    model = GeoTransformer(config, first_stage)
    load_weights(model.transformer, parts["transformer"], what=f"{name}: transformer")
    load_weights(model.emb_stage_model, parts["emb_stage_model"], what=f"{name}: emb_stage_model")
    depth_stage = None
    if "depth_stage_model" in parts:
        depth_stage = VQModel(depth_stage_config(first_stage.config))
        load_weights(depth_stage, parts["depth_stage_model"], what=f"{name}: depth_stage_model")
    return GeoFreeCheckpoint(model.eval(), depth_stage)
