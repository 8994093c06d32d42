"""The spatial transformer of Latent Diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR
2022; arXiv 2112.10752), chapter 14: the attention layer of the text- and class-conditional LDM
and Stable Diffusion UNets (:mod:`esser_lab.nn.unet`), with the official names of
``ldm/modules/attention.py`` so that released checkpoints load strictly.

``SpatialTransformer`` = ``norm`` → ``proj_in`` (1×1 conv) → ``transformer_blocks.{i}``
(``BasicTransformerBlock``: ``attn1`` self-attention, ``attn2`` cross-attention on ``context``,
``ff`` = ``FeedForward`` with a ``GEGLU`` input projection, pre-LN ``norm1..3``) → zero-init
``proj_out`` (1×1 conv) → + input. ``CrossAttention``'s ``to_q``/``to_k``/``to_v`` are Linear
without bias; with ``context`` None it attends to itself. Every attention goes through
:func:`esser_lab.nn.attention.attention` (scale 1/√hd).

Beside it, the small pieces the UNet's blocks share with it: ``GroupNorm32`` (float32 group norm,
cast back), ``normalization``, ``zero_module`` and ``maybe_checkpoint`` (the official
``diffusionmodules/util.py`` helpers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from esser_lab.nn.attention import attention

__all__ = [
    "BasicTransformerBlock",
    "CrossAttention",
    "FeedForward",
    "GEGLU",
    "GroupNorm32",
    "SpatialTransformer",
    "maybe_checkpoint",
    "normalization",
    "zero_module",
]


class GroupNorm32(nn.GroupNorm):
    """GroupNorm in float32, cast back to the input's dtype (official ``GroupNorm32``)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def normalization(channels: int, eps: float = 1e-5) -> GroupNorm32:
    """32-group ``GroupNorm32`` over ``channels`` (the UNet's eps 1e-5; the transformer's 1e-6)."""
    return GroupNorm32(32, channels, eps=eps)


def zero_module(module: nn.Module) -> nn.Module:
    """``module`` with every parameter set to zero (the last layer of each residual branch)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


def maybe_checkpoint(use_checkpoint: bool, function: Callable[..., Tensor], *args: Any) -> Tensor:
    """``function(*args)``, recomputed in the backward pass when ``use_checkpoint`` is set."""
    if use_checkpoint and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` (b, l, query_dim) on ``context`` (b, lc, context_dim).

    ``to_q``, ``to_k``, ``to_v`` (Linear, no bias) → heads × dim_head; ``to_out.0`` (Linear with
    bias) back to query_dim, ``to_out.1`` Dropout. Without ``context`` it is self-attention.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner_dim, context_dim = heads * dim_head, context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)  # (b, l|lc, nh·hd)
        return self.to_out(attention(q, k, v, heads=self.heads))


class GEGLU(nn.Module):
    """``proj`` Linear(d, 2·d_out), halves (a, gate) → a · GELU(gate) (Shazeer 2020)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: Tensor) -> Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """``net`` = GEGLU(d → 4d), Dropout, Linear(4d → d): keys ``net.0.proj``, ``net.2``."""

    def __init__(self, dim: int, dropout: float = 0.0, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            GEGLU(dim, mult * dim), nn.Dropout(dropout), nn.Linear(mult * dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-LN block on tokens (b, l, d): self-attention, cross-attention, GEGLU feed-forward."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        d_head: int,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)  # self-attention
        self.ff = FeedForward(dim, dropout)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        # official code: checkpointed always (checkpoint=True by default); here when use_checkpoint
        return maybe_checkpoint(self.use_checkpoint, self._forward, x, context)

    def _forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer on the h·w positions of a feature map, cross-attending to ``context``.

    ``norm`` (GroupNorm 32, eps 1e-6) → ``proj_in`` 1×1 conv C → nh·hd → ``transformer_blocks``
    → zero-init ``proj_out`` 1×1 conv back to C → + input.
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        inner_dim = n_heads * d_head
        # official code: a plain GroupNorm; in float32 here too (identical in float32)
        self.norm = normalization(in_channels, eps=1e-6)
        self.proj_in = nn.Conv2d(in_channels, inner_dim, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner_dim, n_heads, d_head, dropout, context_dim, use_checkpoint)
            for _ in range(depth)
        )
        self.proj_out = zero_module(nn.Conv2d(inner_dim, in_channels, 1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        height = x.shape[2]
        h = rearrange(self.proj_in(self.norm(x)), "b c h w -> b (h w) c")
        for block in self.transformer_blocks:
            h = block(h, context)
        return x + self.proj_out(rearrange(h, "b (h w) c -> b c h w", h=height))
