"""Loading the released Self-Flow checkpoint into :class:`~esser_lab.selfflow.model.SelfFlowDiT`.

The release (``black-forest-labs/Self-Flow``, weights ``selfflow_imagenet256.pt`` on the Hugging
Face hub, ``Hila/Self-Flow``) is a plain PyTorch state dict of ``SelfFlowPerTokenDiT`` at SiT-XL/2
(:meth:`SelfFlowConfig.paper`), possibly wrapped under ``"model"`` or ``"state_dict"`` and with a
``module.`` prefix (the official ``load_model`` accepts all of these; so does :func:`read_state`).
It is read with ``torch.load(weights_only=True)`` or from a safetensors file.

**Time convention.** The release's ``forward(x, timesteps, vector)`` is SiT's: its time runs
from 0 (noise) to 1 (data), x_t = t·x₀ + (1 − t)·ε, and the flow it integrates is dx/dt = x₀ − ε.
Internally it feeds ``1 − timesteps`` to the network and returns the *negated* output. The
network inside therefore already speaks the book's convention (t = 1 noise, velocity ε − x₀), and
our :class:`SelfFlowDiT` is exactly that inner network:

    release.forward(x, t_SiT, y) = − SelfFlowDiT(x, 1 − t_SiT, y)        (on patchified x)

so the weights load unchanged; :func:`release_forward` is the release's call written with ours.
The ``learn_sigma`` half of the output channels is discarded as the release does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT

__all__ = ["EXPECTED_LAYOUT", "load_selfflow", "read_state", "release_forward"]

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
    released weights, loaded strictly: missing and unexpected keys and wrong shapes are named."""
    state = read_state(source)
    _check_layout(state)
    config = SelfFlowConfig.paper() if config is None else config
    with torch.device("meta"):
        model = SelfFlowDiT(config)
    own = model.state_dict()
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


def release_forward(
    model: SelfFlowDiT, x: Tensor, t_sit: Tensor, y: Tensor | None = None
) -> Tensor:
    """What the release's ``forward`` returns, in image layout: −model(x, 1 − t_SiT, y)."""
    return -model(x, 1 - t_sit, y)
