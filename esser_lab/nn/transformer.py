"""minGPT as used by Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841).

The decoder-only transformer of ``taming/modules/transformer/mingpt.py`` (itself Karpathy's minGPT),
with the official attribute names so that the ``transformer.*`` part of a released
``Net2NetTransformer`` checkpoint loads with ``strict=True``:

``tok_emb`` (vocab, d) · ``pos_emb`` (1, block_size, d), learned, initialised to zero · ``drop`` ·
``blocks.{i}`` = ``ln1`` → ``attn`` (``key``, ``query``, ``value``, ``proj``; persistent buffer
``mask``) → residual, ``ln2`` → ``mlp`` (``0`` Linear d→4d, ``1`` GELU, ``2`` Linear 4d→d,
``3`` Dropout) → residual · ``ln_f`` · ``head`` (Linear without bias).

Conventions a reader could get wrong:

* ``mask`` is the lower-triangular (causal) matrix, *plus* a full block over the first
  ``n_unmasked`` positions: those (the condition tokens) see each other in both directions.
  It is a float buffer of shape (1, 1, block_size, block_size) saved in the state dict, so a
  checkpoint only loads into a GPT with the same ``block_size``.
* Key/value cache (our design, documented here): ``forward(idx)`` returns the logits;
  ``forward_with_past(idx, past)`` also returns ``present``, a tuple with one ``(k, v)`` pair per
  block, each (b, nh, l_past + l, hd), i.e. the cache *including* the new tokens, to be passed as
  ``past`` on the next call. The new tokens attend through the same mask rows as in the full
  forward, so the incremental logits equal the full forward's (tested). The official
  ``forward_with_past`` returns only the new keys/values and drops the mask when a cache is given
  (correct for one new token at a time); ours takes chunks of any length.
* A cache is only exact once it covers the ``n_unmasked`` prefix (a cached early position could
  not see a later condition token), so ``past`` shorter than ``n_unmasked`` is refused.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.nn.attention import attention, extend_cache

__all__ = ["GPT", "CausalSelfAttention", "Block", "KVCache", "configure_gpt_optimizer"]

KVCache = tuple[tuple[Tensor, Tensor], ...]  # one (k, v) per block, each (b, nh, l, hd)


def attention_mask(block_size: int, n_unmasked: int = 0) -> Tensor:
    """The official mask: tril(block_size) with the first ``n_unmasked`` positions fully visible."""
    mask = torch.tril(torch.ones(block_size, block_size))
    mask[:n_unmasked, :n_unmasked] = 1.0
    return rearrange(mask, "l m -> 1 1 l m")


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention (official names ``key``, ``query``, ``value``, ``proj``)."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        block_size: int,
        n_unmasked: int = 0,
        attn_pdrop: float = 0.0,
        resid_pdrop: float = 0.0,
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)  # its p is used inside scaled_dot_product_attention
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("mask", attention_mask(block_size, n_unmasked))  # persistent
        self.n_head, self.n_unmasked = n_head, n_unmasked

    def forward(
        self, x: Tensor, layer_past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` (b, l, d) at positions start..start+l−1, start = the cached length."""
        q = rearrange(self.query(x), "b l (nh hd) -> b nh l hd", nh=self.n_head)
        k = rearrange(self.key(x), "b l (nh hd) -> b nh l hd", nh=self.n_head)
        v = rearrange(self.value(x), "b l (nh hd) -> b nh l hd", nh=self.n_head)
        start = 0 if layer_past is None else layer_past[0].shape[2]
        k, v = extend_cache(layer_past, k, v)  # (b, nh, start + l, hd)
        end = k.shape[2]
        dropout = self.attn_drop.p if self.training else 0.0
        if start == 0 and self.n_unmasked == 0:  # plain causal: lets torch pick a fused kernel
            y = attention(q, k, v, causal=True, dropout=dropout, layout="b nh l hd")
        else:  # the mask rows of the new positions, against all keys so far
            visible = self.mask[:, :, start:end, :end] > 0.5  # (1, 1, l, start + l)
            y = attention(q, k, v, mask=visible, dropout=dropout, layout="b nh l hd")
        y = rearrange(y, "b nh l hd -> b l (nh hd)")
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        block_size: int,
        n_unmasked: int = 0,
        attn_pdrop: float = 0.0,
        resid_pdrop: float = 0.0,
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(
            n_embd, n_head, block_size, n_unmasked, attn_pdrop, resid_pdrop
        )
        self.mlp = nn.Sequential(  # keys mlp.0 and mlp.2, as in the official Sequential
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(resid_pdrop),
        )

    def forward(
        self, x: Tensor, layer_past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        attended, present = self.attn(self.ln1(x), layer_past)
        x = x + attended
        x = x + self.mlp(self.ln2(x))
        return x, present


class GPT(nn.Module):
    """The GPT of ``mingpt.GPT``: same arguments and defaults (dropouts 0, ``n_unmasked`` 0)."""

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int = 12,
        n_head: int = 8,
        n_embd: int = 256,
        embd_pdrop: float = 0.0,
        resid_pdrop: float = 0.0,
        attn_pdrop: float = 0.0,
        n_unmasked: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size)):
            if value < 1:
                raise ValueError(f"{name} must be ≥ 1, got {value}")
        if not 0 <= n_unmasked <= block_size:
            raise ValueError(
                f"n_unmasked must lie in [0, block_size={block_size}], got {n_unmasked}"
            )
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.n_unmasked = n_unmasked
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.Sequential(
            *[
                Block(n_embd, n_head, block_size, n_unmasked, attn_pdrop, resid_pdrop)
                for _ in range(n_layer)
            ]
        )
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)  # pos_emb stays zero, as in the official code

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Official init: Linear/Embedding weights N(0, 0.02), zero biases, LayerNorm 1 / 0."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _check(self, idx: Tensor, start: int, extra: int = 0) -> None:
        if (
            not isinstance(idx, Tensor)
            or idx.dim() != 2
            or idx.dtype not in (torch.long, torch.int)
        ):
            raise TypeError(
                "idx must be an integer tensor of token indices (b, l), got "
                f"{getattr(idx, 'dtype', type(idx))} {tuple(getattr(idx, 'shape', ()))}"
            )
        if start + extra + idx.shape[1] > self.block_size:
            raise ValueError(
                f"sequence of {start} cached + {extra + idx.shape[1]} new tokens exceeds "
                f"block_size={self.block_size}"
            )
        # read where it costs no host sync (esser_lab.checks: not inside a training step on a
        # GPU, where a device-side assert stops a bad index)
        if not in_range(idx, 0, self.vocab_size, training=self.training):
            raise ValueError(
                f"token indices must lie in [0, vocab_size={self.vocab_size}), got "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        if 0 < start < self.n_unmasked:
            raise ValueError(
                f"a key/value cache of {start} tokens does not cover the n_unmasked="
                f"{self.n_unmasked} mutually visible prefix; run the prefix in one call"
            )

    def embed(self, idx: Tensor, start: int = 0, embeddings: Tensor | None = None) -> Tensor:
        """The blocks' input (b, l_e + l, d): ``embeddings`` (b, l_e, d) prepended to the token
        embeddings of ``idx`` (b, l), plus the positions from ``start`` on, through ``drop``.

        ``embeddings`` are the official ``forward(idx, embeddings=...)`` of the GeoFree minGPT:
        continuous inputs (e.g. camera tokens) that take the first positions, as tokens do.
        """
        self._check(idx, start, 0 if embeddings is None else embeddings.shape[1])
        x = self.tok_emb(idx)  # (b, l, d)
        if embeddings is not None:
            if (
                embeddings.dim() != 3
                or embeddings.shape[0] != idx.shape[0]
                or (embeddings.shape[2] != self.n_embd)
            ):
                raise ValueError(
                    f"embeddings must be (b={idx.shape[0]}, l_e, n_embd={self.n_embd}), got "
                    f"{tuple(embeddings.shape)}"
                )
            x = torch.cat((embeddings.to(x.dtype), x), dim=1)  # (b, l_e + l, d)
        positions = self.pos_emb[:, start : start + x.shape[1]]  # (1, l_e + l, d)
        return self.drop(x + positions)

    def forward_with_past(
        self, idx: Tensor, past: KVCache | None = None, embeddings: Tensor | None = None
    ) -> tuple[Tensor, KVCache]:
        """Logits (b, l_e + l, vocab) of ``embeddings`` and ``idx`` (b, l) after ``past``, and
        the extended cache (``embeddings``, optional, as in :meth:`embed`)."""
        start = 0 if past is None else past[0][0].shape[2]
        if past is not None and len(past) != self.n_layer:
            raise ValueError(f"past must hold {self.n_layer} (k, v) pairs, got {len(past)}")
        x = self.embed(idx, start, embeddings)  # (b, l_e + l, d)
        present = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i])
            present.append(kv)
        return self.head(self.ln_f(x)), tuple(present)

    def forward(self, idx: Tensor, embeddings: Tensor | None = None) -> Tensor:
        """Logits (b, l_e + l, vocab): position i predicts token i + 1 (``embeddings`` as in
        :meth:`embed`)."""
        return self.forward_with_past(idx, embeddings=embeddings)[0]


def configure_gpt_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.AdamW:
    """AdamW with weight decay on ``nn.Linear`` weights only (minGPT; ``Net2NetTransformer``).

    Biases, LayerNorm and Embedding weights and ``pos_emb`` are not decayed. Only trainable
    parameters are included, so a module holding a frozen first stage can be passed whole.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            is_linear_weight = isinstance(module, nn.Linear) and name == "weight"
            (decay if is_linear_weight else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)
