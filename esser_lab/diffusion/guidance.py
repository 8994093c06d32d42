"""Classifier-free guidance (Ho & Salimans 2021, arXiv 2207.12598) as a denoiser wrapper.

One network learns both p(x | c) and p(x) by replacing the condition with a null condition for a
fraction of the training batch (:func:`drop_labels`); at sampling time the two predictions are
extrapolated: pred = pred(x_t, ∅) + s (pred(x_t, c) − pred(x_t, ∅)). s = 1 is the plain
conditional model, s = 0 the unconditional one, s > 1 trades diversity for fidelity (LDM-4-G:
s = 1.5; SD's scripts: 7.5). The rule is linear, so it applies to ε, x₀, v or velocity
predictions alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from esser_lab.diffusion.protocol import Denoiser, check_cond_batch
from esser_lab.nn import placement

__all__ = ["classifier_free_guidance", "drop_labels"]


def _null_batch(null_cond: Tensor | int, cond: Tensor) -> Tensor:
    """``null_cond`` with ``cond``'s batch: a tensor of ``cond``'s shape, a single row (1, ...)
    (or ``cond``'s shape without the batch) repeated, or an int class index."""
    if isinstance(null_cond, int) and not isinstance(null_cond, bool):
        if cond.is_floating_point():
            raise TypeError(
                f"an int null_cond needs integer class labels as cond, got {cond.dtype}"
            )
        return torch.full_like(cond, null_cond)
    if not isinstance(null_cond, Tensor):
        raise TypeError(f"null_cond must be a tensor or an int, got {type(null_cond).__name__}")
    null = null_cond.to(cond.device)
    if null.shape == cond.shape[1:]:
        null = null.unsqueeze(0)
    if null.shape[1:] != cond.shape[1:] or null.shape[0] not in (1, cond.shape[0]):
        raise ValueError(
            f"null_cond must have cond's shape {tuple(cond.shape)}, or one row of it, "
            f"got {tuple(null_cond.shape)}"
        )
    return null.expand_as(cond)


def _null_and_cond(null_cond: Any, cond: Any) -> Any:
    """[null, cond] concatenated along the batch: tensors, or dicts of tensors key by key."""
    if isinstance(cond, Tensor):
        return torch.cat((_null_batch(null_cond, cond), cond))
    if not isinstance(null_cond, Mapping) or set(null_cond) != set(cond):
        got = sorted(null_cond) if isinstance(null_cond, Mapping) else type(null_cond).__name__
        raise ValueError(
            f"a dict cond needs null_cond as a dict of the same keys {sorted(cond)}, got {got}"
        )
    joint = {}
    for key, value in cond.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"cond[{key!r}] must be a tensor, got {type(value).__name__}")
        try:
            null = _null_batch(null_cond[key], value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"null_cond[{key!r}]: {error}") from None
        joint[key] = torch.cat((null, value))
    return joint


def classifier_free_guidance(
    model: Denoiser, scale: float, null_cond: Tensor | int | Mapping[str, Tensor]
) -> Denoiser:
    """A denoiser returning pred_u + ``scale`` (pred_c − pred_u) from ONE batched call of
    ``model`` on (x_t twice, t twice, [null, cond]) (the official ``p_sample_ddim``'s order).

    ``cond`` is a tensor: class indices (b,) (then ``null_cond`` may be the null class as an
    int) or embeddings (b, l, d) (then ``null_cond`` is e.g. the empty prompt's embedding,
    (1, l, d) or (b, l, d)); or a dict of batch-first tensors, e.g. SD3's
    ``{"context": (b, L, d), "pooled": (b, p)}``, with ``null_cond`` a dict of the same keys
    (each one row or a full batch; the empty caption's encoding), concatenated key by key.
    s = 1 still evaluates both halves (call the model directly for the plain conditional
    model) and returns pred_c up to rounding.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}")

    def guided(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        if not isinstance(cond, (Tensor, Mapping)) or isinstance(cond, Mapping) and not cond:
            raise TypeError(
                f"classifier-free guidance needs cond as a tensor (class indices or embeddings) "
                f"or a non-empty dict of tensors, got {type(cond).__name__}"
            )
        b = x_t.shape[0]
        check_cond_batch(cond, b)
        if not isinstance(t, Tensor) or t.shape != (b,):
            raise ValueError(f"t must be a (b,) = ({b},) tensor, got {getattr(t, 'shape', t)}")
        joint = _null_and_cond(null_cond, cond)
        out = model(torch.cat((x_t, x_t)), torch.cat((t, t)), joint)
        pred_u, pred_c = out.chunk(2)  # each (b, ...)
        return pred_u + scale * (pred_c - pred_u)

    return guided


def drop_labels(
    labels: Tensor, p: float, null_index: int, generator: torch.Generator | None = None
) -> Tensor:
    """``labels`` (b,) with each entry replaced by ``null_index`` with probability ``p`` (a new
    tensor): the label dropout that trains one network for classifier-free guidance
    (the paper's p_uncond, 0.1–0.2). The uniform draws come from ``generator``."""
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.dim() != 1:
        got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, Tensor) else labels
        raise TypeError(f"labels must be an integer tensor (b,), got {got}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if isinstance(null_index, bool) or not isinstance(null_index, int):
        raise TypeError(f"null_index must be an int, got {type(null_index).__name__}")
    drop = placement.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_index), labels)
