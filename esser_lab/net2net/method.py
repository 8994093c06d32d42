"""Net2Net's objective and its three uses of the translator: translate, sample, shift.

Equations (numbered in the order chapter 6 derives them; arXiv:2005.13580):

    (N1)  z_Θ = τ(v | z_Φ),  v = τ⁻¹(z_Θ | z_Φ)                         the bijection
    (N2)  L = E[ ½‖τ⁻¹(z_Θ | z_Φ)‖² − log|det ∂τ⁻¹/∂z_Θ| ]             conditional NLL
    (N3)  x = Θ.decode(τ(v | Φ(x_c))),  v ~ N(0, I)                    text → image
    (N4)  z_Θ' = τ(τ⁻¹(z_Θ | z_Φ) | z_Φ')                              shift: keep v, change c

(N2) is the code's ``NLL`` (``net2net/modules/flow/loss.py``): the KL between the distribution of
v and N(0, I), up to constants, which makes v independent of the condition. The baseline
:func:`regression_loss` fits the conditional mean instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.nn import placement
from esser_lab.nn.flows import ConditionalFlow, nll_loss

__all__ = ["conditional_nll", "regression_loss", "sample", "shift", "translate"]


def conditional_nll(
    flow: ConditionalFlow, z_target: Tensor, z_cond: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """(N2): ``½‖v‖² − log|det|`` with ``v = τ⁻¹(z_Θ | z_Φ)``, averaged over the batch.

    Returns the loss and its parts (``nll``, ``nlogdet``, ``reference_nll`` = dim/2, the value
    ½‖v‖² takes once v really is standard normal).
    """
    if z_target.shape[0] != z_cond.shape[0]:
        raise ValueError(f"z_target has {z_target.shape[0]} rows but z_cond has {z_cond.shape[0]}")
    v, logdet = flow(z_target, z_cond)
    return nll_loss(v, logdet)


def translate(flow: ConditionalFlow, z_cond: Tensor, v: Tensor) -> Tensor:
    """(N1) forward: ``z_Θ = τ(v | z_Φ)``, one row of ``v`` per condition row."""
    if v.dim() != 2 or v.shape != (z_cond.shape[0], flow.dim):
        raise ValueError(f"v must have shape ({z_cond.shape[0]}, {flow.dim}), got {tuple(v.shape)}")
    return flow.inverse(v, z_cond)


@torch.no_grad()
def sample(
    flow: ConditionalFlow, z_cond: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """(N3) in code space: ``τ(v | z_Φ)`` with a fresh ``v ~ N(0, I)`` per condition row."""
    shape = (z_cond.shape[0], flow.dim)
    v = placement.randn(shape, generator=generator, device=z_cond.device, dtype=z_cond.dtype)
    return translate(flow, z_cond, v)


@torch.no_grad()
def shift(flow: ConditionalFlow, z_target: Tensor, z_cond: Tensor, z_cond_new: Tensor) -> Tensor:
    """(N4): re-invert the residual of ``z_Θ`` under another condition (the code's ``shift``)."""
    if z_cond.shape != z_cond_new.shape:
        raise ValueError(
            f"z_cond and z_cond_new must have equal shapes, got {tuple(z_cond.shape)} and "
            f"{tuple(z_cond_new.shape)}"
        )
    v, _ = flow(z_target, z_cond)
    return translate(flow, z_cond_new, v)


def regression_loss(prediction: Tensor, z_target: Tensor) -> Tensor:
    """The baseline's objective: ``E‖f(z_Φ) − z_Θ‖²`` (its optimum is E[z_Θ | z_Φ])."""
    if prediction.shape != z_target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(z_target.shape)}")
    return (prediction - z_target).pow(2).sum(1).mean()
