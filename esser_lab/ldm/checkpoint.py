"""The released latent-diffusion and Stable Diffusion 1.x checkpoints, read strictly and safely.

Rombach, Blattmann, Lorenz, Esser & Ommer, *High-Resolution Image Synthesis with Latent Diffusion
Models*, CVPR 2022 (arXiv 2112.10752), chapter 14. The files are Lightning ``.ckpt`` pickles of
the official ``LatentDiffusion`` system (``ldm/models/diffusion/ddpm.py``), read weights-only by
:mod:`esser_lab.weights`. Under ``ckpt["state_dict"]``:

* ``model.diffusion_model.*``: the UNet (:class:`esser_lab.nn.unet.UNetModel`);
* ``first_stage_model.*``: the frozen autoencoder, KL or VQ, without its ``loss.*``;
* ``cond_stage_model.*``: the condition's encoder. Class-conditional ImageNet models hold one
  table, ``cond_stage_model.embedding.weight`` (the ``ClassEmbedder``, ``(n_classes, d)``).
  Text models hold a text encoder under ``cond_stage_model.transformer.*``: Stable Diffusion's
  CLIP ViT-L/14 (Hugging Face ``CLIPTextModel`` names, ``transformer.text_model.*``) or the LDM
  BERT (x-transformers names). esser_lab builds no text encoder of its own (they come from the
  ``transformers`` package at small and full scale, see CHAPTER.md): those tensors are handed
  back apart, for whoever loads the encoder;
* ``model_ema.*``: the averaged UNet weights when the run kept them (``LitEma``), named after the
  wrapped parameter with the dots removed (``model_ema.diffusion_modelinput_blocks00weight``
  averages ``model.diffusion_model.input_blocks.0.0.weight``), plus ``model_ema.decay`` and
  ``model_ema.num_updates``. Dropping dots is not invertible by itself: :func:`ema_state_dict`
  inverts it with the model's own parameter names;
* the noise schedule's twelve buffers (``betas``, ``alphas_cumprod``, …; :data:`SCHEDULE_KEYS`)
  and, for ``scale_by_std`` runs, ``scale_factor``.

The standalone first stages (``kl-f4``/``kl-f8``/``vq-f4``/``vq-f8``… ``model.ckpt``) keep the
autoencoder at the top level (``encoder.*``, ``decoder.*``, ``quant_conv.*``,
``post_quant_conv.*``, and ``quantize.embedding.weight`` for VQ) beside its ``loss.*``, which is
dropped. # official code: every loader there uses ``load_state_dict(strict=False)``, which
silently skips mismatches; here every load is strict and names what does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from esser_lab.weights import WeightsError, adopt_weights, describe_layout, read_state_dict

if TYPE_CHECKING:
    from esser_lab.nn.first_stage import AutoencoderKLConfig
    from esser_lab.nn.unet import UNetConfig, UNetModel
    from esser_lab.taming.model import VQModelConfig

__all__ = [
    "LDMParts",
    "SCHEDULE_KEYS",
    "check_schedule",
    "ema_state_dict",
    "load_first_stage",
    "load_ldm_unet",
    "split_ldm_checkpoint",
]

UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."
COND_STAGE_PREFIX = "cond_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."
EMA_PREFIX = "model_ema."
EMA_WRAPPED = "diffusion_model."  # the EMA averages DiffusionWrapper, whose UNet is this
EMA_COUNTERS = ("decay", "num_updates")
SCHEDULE_KEYS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)
LDM_HINT = (
    "Download the released file yourself (esser_lab never downloads: the model zoo links are "
    "in CompVis/latent-diffusion's README, Stable Diffusion 1.x on the Hugging Face hub) and put "
    "it under data/checkpoints/ldm/ (see data/README.md)"
)
TEXT_ENCODER_NOTE = (
    "cond_stage_model.transformer.* is a text encoder (Stable Diffusion: CLIP ViT-L/14 with "
    "Hugging Face CLIPTextModel names under text_model.*; the LDM 1.45 B model: a BERT with "
    "x-transformers names). esser_lab does not load it into its own classes: build the encoder "
    "with the transformers package (e.g. CLIPTextModel for openai/clip-vit-large-patch14) and, "
    "to use the released copy, load LDMParts.text_encoder into it"
)


@dataclass(frozen=True)
class LDMParts:
    """A released LDM / SD checkpoint split by prefix (each dict without its prefix).

    ``unet``: ``model.diffusion_model.*``; ``first_stage``: ``first_stage_model.*``;
    ``cond_stage``: ``cond_stage_model.*`` except a text encoder (e.g. ``embedding.weight``);
    ``text_encoder``: ``cond_stage_model.transformer.*`` (not loaded by esser_lab, see
    ``note``); ``ema``: ``model_ema.*`` shadows (dots removed) without the two counters, which
    are ``ema_decay`` and ``ema_num_updates``; ``schedule``: the schedule buffers found;
    ``scale_factor``: the stored one, or None (then it lives in the config: 0.18215 for SD).
    """

    source: str
    unet: dict[str, Tensor]
    first_stage: dict[str, Tensor]
    cond_stage: dict[str, Tensor] = field(default_factory=dict)
    text_encoder: dict[str, Tensor] = field(default_factory=dict)
    ema: dict[str, Tensor] = field(default_factory=dict)
    ema_decay: float | None = None
    ema_num_updates: int | None = None
    schedule: dict[str, Tensor] = field(default_factory=dict)
    scale_factor: float | None = None

    @property
    def note(self) -> str:
        """What esser_lab does not load from this file, in words ("" when it loads it all)."""
        return TEXT_ENCODER_NOTE if self.text_encoder else ""


def split_ldm_checkpoint(source: str | Path | Mapping[str, Tensor]) -> LDMParts:
    """Split a released LDM / Stable Diffusion 1.x checkpoint (a path or its state dict).

    Every key must belong to one of the parts of the module docstring; any other key, or a
    file without ``model.diffusion_model.*`` keys, raises :class:`WeightsError` naming them (and
    the layout the file seems to follow instead, e.g. a diffusers export).
    """
    if isinstance(source, Mapping):
        state, name = dict(source), "the state dict"
    else:
        state, name = read_state_dict(source, hint=LDM_HINT), str(source)
    if not any(k.startswith(UNET_PREFIX) for k in state):
        found = describe_layout(state)
        raise WeightsError(
            f"{name} is not a latent-diffusion checkpoint: expected the full CompVis layout "
            f"(model.diffusion_model.*, first_stage_model.*, …), found "
            f"{'the ' + found + ' layout' if found else 'none of its keys'} "
            f"(e.g. {sorted(state)[:3]}). A standalone first stage loads with load_first_stage"
        )
    groups: dict[str, dict[str, Tensor]] = {
        "unet": {},
        "first_stage": {},
        "cond_stage": {},
        "text_encoder": {},
        "ema": {},
        "schedule": {},
    }
    counters: dict[str, Tensor] = {}
    scale_factor, other = None, []
    for key, value in state.items():
        if key.startswith(UNET_PREFIX):
            groups["unet"][key.removeprefix(UNET_PREFIX)] = value
        elif key.startswith(FIRST_STAGE_PREFIX):
            rest = key.removeprefix(FIRST_STAGE_PREFIX)
            if not rest.startswith("loss."):  # a training-time companion, never used here
                groups["first_stage"][rest] = value
        elif key.startswith(TEXT_ENCODER_PREFIX):
            groups["text_encoder"][key.removeprefix(TEXT_ENCODER_PREFIX)] = value
        elif key.startswith(COND_STAGE_PREFIX):
            groups["cond_stage"][key.removeprefix(COND_STAGE_PREFIX)] = value
        elif key.startswith(EMA_PREFIX):
            rest = key.removeprefix(EMA_PREFIX)
            (counters if rest in EMA_COUNTERS else groups["ema"])[rest] = value
        elif key in SCHEDULE_KEYS:
            groups["schedule"][key] = value
        elif key == "scale_factor":
            scale_factor = float(value)
        else:
            other.append(key)
    if other:
        raise WeightsError(
            f"{name} has {len(other)} keys outside the known parts of a latent-diffusion "
            f"checkpoint: {sorted(other)[:10]}"
        )
    decay, count = counters.get("decay"), counters.get("num_updates")
    return LDMParts(
        source=name,
        **groups,
        ema_decay=None if decay is None else float(decay),
        ema_num_updates=None if count is None else int(count),
        scale_factor=scale_factor,
    )


def ema_state_dict(state: Mapping[str, Tensor], unet_keys: Iterable[str]) -> dict[str, Tensor]:
    """The EMA weights of a checkpoint under the UNet's own parameter names.

    ``state``: the ``model_ema.*`` entries (with or without that prefix; ``decay`` and
    ``num_updates`` are ignored), e.g. :attr:`LDMParts.ema` or a whole checkpoint's state dict
    (other keys ignored only when the ``model_ema.`` prefix is present). ``unet_keys``: the
    UNet's parameter names (``input_blocks.0.0.weight``; the EMA tracks parameters, not
    buffers). Each maps to ``diffusion_model`` + its name with the dots removed; a parameter
    without a shadow, or a shadow without a parameter, raises :class:`WeightsError`.
    """
    if any(k.startswith(EMA_PREFIX) for k in state):
        state = {
            k.removeprefix(EMA_PREFIX): v for k, v in state.items() if k.startswith(EMA_PREFIX)
        }
    shadows = {k: v for k, v in state.items() if k not in EMA_COUNTERS}
    owner: dict[str, str] = {}
    for key in unet_keys:
        short = (EMA_WRAPPED + key).replace(".", "")
        if short in owner:
            raise WeightsError(
                f"the UNet parameters {owner[short]!r} and {key!r} share the EMA name {short!r}: "
                "the dot-free EMA layout cannot tell them apart"
            )
        owner[short] = key
    missing = sorted(short for short in owner if short not in shadows)
    unexpected = sorted(short for short in shadows if short not in owner)
    if missing or unexpected:
        raise WeightsError(
            f"the EMA weights do not match the UNet: {len(missing)} parameters without a shadow "
            f"(model_ema.{{name without dots}}) {[owner[s] for s in missing[:10]]}, "
            f"{len(unexpected)} shadows without a parameter {unexpected[:10]}"
        )
    return {owner[short]: value for short, value in shadows.items()}


def _parts(source: str | Path | LDMParts) -> LDMParts:
    return source if isinstance(source, LDMParts) else split_ldm_checkpoint(source)


def load_ldm_unet(
    source: str | Path | LDMParts,
    unet_config: UNetConfig,
    use_ema: bool = False,
    dtype: torch.dtype | None = torch.float32,
) -> UNetModel:
    """A :class:`~esser_lab.nn.unet.UNetModel` of ``unet_config`` with the checkpoint's weights.

    ``source``: a released checkpoint's path, or its :class:`LDMParts`. ``use_ema``: take the
    averaged weights (``model_ema.*``, what the official code samples with) for every
    parameter; the file's buffers, if any, stay as stored. Built on the meta device, the model
    adopts the file's tensors (no random initialisation, no second copy); returned in eval mode,
    in ``dtype`` (``None``: the file's, e.g. float16 for the ``-fp16`` files).
    """
    from esser_lab.nn.unet import UNetModel

    parts = _parts(source)
    with torch.device("meta"):
        unet = UNetModel(unet_config)
    state = dict(parts.unet)
    what = f"the UNet (model.diffusion_model.*) of {parts.source}"
    if use_ema:
        if not parts.ema:
            raise WeightsError(
                f"{parts.source} holds no EMA weights (model_ema.*): it was released without "
                "them (e.g. sd-v1-4.ckpt; the *-full-ema files have them). Load with use_ema=False"
            )
        state |= ema_state_dict(parts.ema, [name for name, _ in unet.named_parameters()])
        what += " with its EMA weights (model_ema.*)"
    return adopt_weights(unet, state, what=what, dtype=dtype).eval()


def load_first_stage(
    source: str | Path | LDMParts | Mapping[str, Tensor],
    config: AutoencoderKLConfig | VQModelConfig,
    dtype: torch.dtype | None = torch.float32,
) -> nn.Module:
    """The first stage of ``config`` with released weights, frozen in eval mode (built on the
    meta device, adopting the file's tensors, in ``dtype`` as :func:`load_ldm_unet`).

    ``config``: an ``AutoencoderKLConfig`` (→ ``AutoencoderKL``; ``kl_f4()``, ``kl_f8()``, …) or
    a VQ config of :class:`esser_lab.taming.model.VQModel` (``VQModelConfig.vq_f4()``…).
    ``source``: a standalone first-stage ``.ckpt`` (top-level ``encoder.*``… beside ``loss.*``,
    which is dropped), a full LDM checkpoint (its ``first_stage_model.*``), :class:`LDMParts`, or
    a state dict.
    """
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.taming.model import VQModel

    if isinstance(config, AutoencoderKLConfig):
        with torch.device("meta"):
            model: nn.Module = AutoencoderKL(config)
    else:
        try:
            with torch.device("meta"):
                model = VQModel(config)
        except TypeError:
            raise TypeError(
                "config must be an AutoencoderKLConfig (kl_f4(), kl_f8(), …) or a VQModelConfig "
                f"(vq_f4(), vq_f8(), …), got {type(config).__name__}"
            ) from None
    if isinstance(source, LDMParts):
        state, name = source.first_stage, source.source
    elif isinstance(source, Mapping):
        state, name = dict(source), "the state dict"
    else:
        state, name = read_state_dict(source, hint=LDM_HINT), str(source)
    if any(k.startswith(FIRST_STAGE_PREFIX) for k in state):  # a whole LDM checkpoint
        state = {
            k.removeprefix(FIRST_STAGE_PREFIX): v
            for k, v in state.items()
            if k.startswith(FIRST_STAGE_PREFIX)
        }
    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    what = f"the {type(model).__name__} first stage of {name}"
    return adopt_weights(model, state, what=what, dtype=dtype).eval().requires_grad_(False)


def check_schedule(
    parts: LDMParts,
    *,
    linear_start: float,
    linear_end: float,
    timesteps: int = 1000,
    beta_schedule: str = "linear",
) -> None:
    """Raise :class:`WeightsError` unless the stored schedule buffers are ours for these settings.

    Each buffer present is compared, in float32 as stored, with the tables of
    :class:`esser_lab.diffusion.DiscreteSchedule` (float64 maths, as the official
    ``register_schedule`` does in NumPy); a file without buffers passes.
    """
    from esser_lab.diffusion import DiscreteSchedule

    if not parts.schedule:
        return
    s = DiscreteSchedule.make(beta_schedule, timesteps, linear_start, linear_end)
    ac = s.alphas_cumprod
    ours = {
        "betas": s.betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": s.alphas_cumprod_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - ac).log(),
        "sqrt_recip_alphas_cumprod": ac.rsqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(),
        "posterior_variance": s.posterior_variance,
        "posterior_log_variance_clipped": s.posterior_log_variance_clipped,
        "posterior_mean_coef1": s.posterior_mean_coef1,
        "posterior_mean_coef2": s.posterior_mean_coef2,
    }
    for key, stored in parts.schedule.items():
        expected = ours[key].float()
        if stored.shape != expected.shape or not torch.allclose(
            stored.float(), expected, rtol=1e-5, atol=1e-7
        ):
            betas = parts.schedule.get("betas")
            found = (
                f"; its betas run from {float(betas[0]):.6g} to {float(betas[-1]):.6g} over "
                f"{len(betas)} steps"
                if betas is not None
                else ""
            )
            raise WeightsError(
                f"{parts.source}: the stored {key} {tuple(stored.shape)} is not the "
                f"{beta_schedule!r} schedule with linear_start={linear_start}, "
                f"linear_end={linear_end}, T={timesteps}{found}"
            )
