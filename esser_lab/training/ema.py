"""An exponential moving average of a module's parameters, in the latent-diffusion layout.

Latent diffusion (``ldm/modules/ema.py``, ``LitEma``) keeps one shadow copy of every trainable
parameter and samples with the averaged weights. After each optimiser step, with n the number of
updates so far,

    d = min(decay, (1 + n) / (10 + n))        (a warm-up: early averages forget fast)
    shadow ← shadow − (1 − d) · (shadow − θ)

The shadows are *buffers* named like the parameters with the dots removed
(``diffusion_model.input_blocks.0.0.weight`` → ``diffusion_modelinput_blocks00weight``), beside
``decay`` and ``num_updates`` buffers: the official checkpoints store exactly these under
``model_ema.``, so an :class:`EMA` attribute named ``model_ema`` loads them strictly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["EMA"]


def shadow_name(name: str) -> str:
    """The official buffer name of parameter ``name``: its dots removed."""
    return name.replace(".", "")


class EMA(nn.Module):
    """Shadow weights of ``model``'s trainable parameters; ``update(model)`` after each step."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, use_num_updates: bool = True):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        self.register_buffer("decay", torch.tensor(decay, dtype=torch.float32))
        count = torch.tensor(0 if use_num_updates else -1, dtype=torch.int)
        self.register_buffer("num_updates", count)
        self.names: dict[str, str] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                short = shadow_name(name)
                if short in self.names.values():
                    raise ValueError(f"two parameters map to the same EMA name {short!r}")
                self.names[name] = short
                self.register_buffer(short, p.detach().clone())
        self._stored: list[torch.Tensor] | None = None

    def _pairs(self, model: nn.Module) -> Iterator[tuple[nn.Parameter, torch.Tensor]]:
        params = dict(model.named_parameters())
        missing = sorted(set(self.names) - set(params))
        if missing:
            raise ValueError(f"the model lacks parameters the EMA tracks: {missing[:5]}")
        for name, short in self.names.items():
            yield params[name], self._buffers[short]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights."""
        decay = self.decay.item()
        if self.num_updates >= 0:
            self.num_updates += 1
            n = int(self.num_updates)
            decay = min(decay, (1 + n) / (10 + n))
        pairs = list(self._pairs(model))
        shadows = [s for _, s in pairs]
        torch._foreach_lerp_(shadows, [p.detach().to(s.dtype) for p, s in pairs], 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for p, s in self._pairs(model):
            p.copy_(s)

    @contextlib.contextmanager
    def average_of(self, model: nn.Module) -> Iterator[nn.Module]:
        """``with ema.average_of(model):`` the model holds the averaged weights, then its own."""
        stored = [p.detach().clone() for p, _ in self._pairs(model)]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for (p, _), saved in zip(self._pairs(model), stored, strict=True):
                    p.copy_(saved)
