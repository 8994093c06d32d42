"""Loading the released Self-Flow checkpoint into :class:`~esser_lab.selfflow.model.SelfFlowDiT`.

The release (``black-forest-labs/Self-Flow``, weights ``selfflow_imagenet256.pt`` on the Hugging
Face hub, ``Hila/Self-Flow``) is a plain PyTorch state dict of ``SelfFlowPerTokenDiT`` at SiT-XL/2
(:meth:`SelfFlowConfig.paper`), possibly wrapped under ``"model"`` or ``"state_dict"`` and with a
``module.`` prefix (the official ``load_model`` accepts all of these; so does :func:`read_state`).
It is read with ``torch.load(weights_only=True)`` or from a safetensors file.

**Time convention** (checked in ``src/model.py`` and ``src/sampling.py`` of the release). The
weights are those of the release's inner network ``_forward``, which takes **SiT time** (s = 0
noise, s = 1 data, x_s = s·x₀ + (1 − s)·ε) and predicts the SiT velocity **x₀ − ε**: the
release's sampler (``denoise_loop`` with ``reverse=True``) calls ``forward`` at 1 − s and negates
the result, and ``forward`` itself feeds 1 − t to ``_forward`` and negates, so the sampler
integrates exactly ``_forward(x, s)`` from s ≈ 0 (noise) to 1 (data) along SiT's linear path.
The release's public ``forward`` is the one in the book's convention (t = 1 noise, ε − x₀):

    forward(x, t) = −_forward(x, 1 − t),    −forward(x, 1 − s) = _forward(x, s).

:func:`load_selfflow` therefore returns a model with ``SelfFlowConfig.release_time`` set, whose
``model(x, t, y)`` is the release's ``forward``: book time in, ε − x₀ out, ready for the book's
samplers (``esser_lab.diffusion.flow.euler_solve`` from t = 1 to 0). :func:`sit_velocity` gives
the inner network's answer at SiT time. The ``learn_sigma`` half of the output channels is
discarded as the release does.

**Loading.** Keys, shapes and layout are checked strictly and named in the error, with one
exception that follows the official ``load_model`` (``strict=False``): the fixed sin-cos table
``pos_embed`` is not learned, so a file that lacks it gets it recomputed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.nn.dit import sincos_pos_embed_2d
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT

__all__ = ["EXPECTED_LAYOUT", "load_selfflow", "read_state", "sit_velocity"]

EXPECTED_LAYOUT = (
    "the Self-Flow release layout (black-forest-labs/Self-Flow SelfFlowPerTokenDiT: "
    "x_embedder.proj.weight as a Linear (D, C·p·p), t_embedder.mlp.{0,2}, "
    "y_embedder.embedding_table, pos_embed, blocks.{i}.*, final_layer.*, "
    "projector.{linear1,linear2})"
)


def read_state(source: str | Path | dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict of a ``.pt``/``.pth`` (weights_only) or ``.safetensors`` file, or a dict,
    unwrapped from ``"model"``/``"state_dict"`` and stripped of a ``module.`` prefix."""
    if isinstance(source, dict):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"no Self-Flow checkpoint at {path} (the release's selfflow_imagenet256.pt from "
                "the Hugging Face repository Hila/Self-Flow)"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"expected a state dict of tensors in {EXPECTED_LAYOUT}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _check_layout(state: dict[str, Tensor]) -> None:
    if any(
        k.startswith(("transformer_blocks.", "joint_blocks.", "model.diffusion_model."))
        for k in state
    ):
        raise ValueError(
            f"this file is in another layout (diffusers or SD3 keys); expected {EXPECTED_LAYOUT}"
        )
    proj = state.get("x_embedder.proj.weight")
    if proj is None:
        raise ValueError(f"no x_embedder.proj.weight: expected {EXPECTED_LAYOUT}")
    if proj.dim() == 4:
        raise ValueError(
            "x_embedder.proj.weight is a convolution (the DiT/SiT/REPA layout, patch embedding "
            f"by Conv2d); expected {EXPECTED_LAYOUT}"
        )


def load_selfflow(
    source: str | Path | dict[str, Tensor], config: SelfFlowConfig | None = None
) -> SelfFlowDiT:
    """A :class:`SelfFlowDiT` (``config``; default :meth:`SelfFlowConfig.paper`) holding the
    released weights, with ``release_time`` set so that it answers in the book's convention (the
    module docstring). Loaded strictly: missing and unexpected keys and wrong shapes are named;
    only a missing ``pos_embed`` (fixed, not learned) is recomputed, as the official loader's
    ``strict=False`` allows."""
    state = read_state(source)
    _check_layout(state)
    config = SelfFlowConfig.paper() if config is None else config
    config = replace(config, release_time=True)
    with torch.device("meta"):
        model = SelfFlowDiT(config)
    own = model.state_dict()
    if "pos_embed" not in state:
        table = sincos_pos_embed_2d(config.hidden, config.grid)[None]
        state = {**state, "pos_embed": table.to(own["pos_embed"].dtype)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"the checkpoint does not match {EXPECTED_LAYOUT} at {config}: missing "
            f"{missing[:6]}{' …' if len(missing) > 6 else ''}, unexpected "
            f"{unexpected[:6]}{' …' if len(unexpected) > 6 else ''}"
        )
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{key}: the checkpoint has shape {tuple(state[key].shape)}, the model at "
                f"{config} expects {tuple(value.shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def sit_velocity(
    model: SelfFlowDiT, x: Tensor, s: Tensor | float, y: Tensor | None = None
) -> Tensor:
    """The release's inner network at **SiT time** s (1 = data): the velocity x₀ − ε that the
    release's sampler integrates from s ≈ 0 to 1, i.e. −model(x, 1 − s, y) for a model in the
    book's convention (:func:`load_selfflow` returns one)."""
    return -model(x, 1 - s, y)
