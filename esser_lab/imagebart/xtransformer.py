"""The encoder–decoder transformer of ImageBART's transitions (Esser, Rombach, Blattmann & Ommer,
NeurIPS 2021; arXiv 2108.08827), chapter 13.

The official code uses lucidrains' ``x-transformers`` (``XTransformer`` /
``ResidualScaledXTransformer`` in ``imagebart/modules/xtransformers/x_transformer.py``): a
bidirectional **encoder** over the coarser image x_t (prefixed by its scale token) and a causal
**decoder** that writes x_{t−1} left to right, attending to the encoder's output in every layer
(BART, Lewis et al. 2019). So every generated token sees the whole of x_t, also what lies below
and right of it, plus its causal prefix. Our own implementation, with the x-transformers
attribute names at the top level:

``encoder`` / ``decoder`` = :class:`TokenTransformer`: ``token_emb`` (num_tokens, d) ·
``pos_emb.emb`` (max_seq_len, d), learned absolute positions · ``attn_layers.layers.{i}`` = a
``ModuleList([LayerNorm, block])`` per sub-layer (x-transformers' third entry, ``Residual``,
has no weights), blocks in the order self-attention (``a``), cross-attention (``c``, decoder
only), feed-forward (``f``), pre-norm and residual · ``norm`` · ``to_logits`` (also in the
encoder, unused). Attention: ``to_q``, ``to_k``, ``to_v`` (d → heads · dim_head, no bias; the
official dim_head is x-transformers' default 64, so FFHQ's 16 heads are 1024 wide at d = 752),
``to_out``; feed-forward: ``net.0.0`` (d → 4d) → GELU → ``net.2`` (4d → d). These are the
module names of the x-transformers copy in the official repository
(``imagebart/modules/xtransformers/x_transformer.py``), so a released scale loads strictly.

With ``n_scales`` given, the module also holds ``log_scalors`` (n_scales,), the official
``ResidualScaledXTransformer``'s per-scale logit scale: ImageBART multiplies the decoder's logits
by exp(log_scalors[t − 1]) and adds the residual log(α_t onehot(x_t) + (1 − α_t)/K)
(:meth:`esser_lab.imagebart.model.ImageBART.transition_logits`), so copying a code of x_t is the
default and the network learns what to change.

The attention arithmetic is the package's one :func:`esser_lab.nn.attention.attention`; the mask
is causal only in the decoder's self-attention (tested: a later x_t token changes early decoder
logits, a later decoder token never does).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.nn.attention import attention

__all__ = ["Attention", "AttentionLayers", "FeedForward", "TokenTransformer", "XTransformer"]


class Attention(nn.Module):
    """Multi-head attention of ``x`` (b, l, d) over itself or over ``context`` (b, m, d); heads of
    width ``dim_head`` (scale dim_head^−½)."""

    def __init__(self, dim: int, heads: int, dim_head: int = 64, causal: bool = False) -> None:
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(f"heads and dim_head must be ≥ 1, got {heads} and {dim_head}")
        inner = heads * dim_head  # x-transformers: dim_head 64 whatever dim is
        self.heads, self.causal = heads, causal
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        source = x if context is None else context
        y = attention(
            self.to_q(x), self.to_k(source), self.to_v(source), heads=self.heads,
            causal=self.causal,
        )  # fmt: skip
        return self.to_out(y)  # (b, l, d)


class FeedForward(nn.Module):
    """d → 4d → GELU → d (``net.0.0`` and ``net.2``, the x-transformers indices)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU()),
            nn.Dropout(dropout),
            nn.Linear(mult * dim, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class AttentionLayers(nn.Module):
    """``depth`` pre-norm residual layers: self-attention, (cross-attention), feed-forward."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        causal: bool = False,
        cross_attend: bool = False,
        dim_head: int = 64,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {depth}")
        kinds = ("a", "c", "f") if cross_attend else ("a", "f")
        self.kinds = kinds * depth
        self.layers = nn.ModuleList()
        for kind in self.kinds:
            if kind == "a":
                block: nn.Module = Attention(dim, heads, dim_head, causal=causal)
            elif kind == "c":
                block = Attention(dim, heads, dim_head, causal=False)
            else:
                block = FeedForward(dim)
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), block]))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        for kind, (norm, block) in zip(self.kinds, self.layers, strict=True):
            if kind == "c":
                if context is None:
                    raise ValueError("a cross-attending layer needs the encoder's context")
                x = x + block(norm(x), context)
            else:
                x = x + block(norm(x))
        return x


class AbsolutePositionalEmbedding(nn.Module):
    """Learned positions, ``emb`` (max_seq_len, d)."""

    def __init__(self, dim: int, max_seq_len: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.emb.weight, std=0.02)  # official init_

    def forward(self, length: int) -> Tensor:
        return self.emb.weight[:length]  # (l, d)


class TokenTransformer(nn.Module):
    """Token and position embeddings → :class:`AttentionLayers` → ``norm`` (→ ``to_logits``)."""

    def __init__(
        self,
        num_tokens: int,
        max_seq_len: int,
        dim: int,
        depth: int,
        heads: int,
        causal: bool = False,
        cross_attend: bool = False,
        dim_head: int = 64,
    ) -> None:
        super().__init__()
        self.num_tokens, self.max_seq_len = num_tokens, max_seq_len
        self.token_emb = nn.Embedding(num_tokens, dim)
        nn.init.normal_(self.token_emb.weight, std=0.02)  # official init_; Linears keep torch's
        self.pos_emb = AbsolutePositionalEmbedding(dim, max_seq_len)
        self.attn_layers = AttentionLayers(dim, depth, heads, causal, cross_attend, dim_head)
        self.norm = nn.LayerNorm(dim)
        # the encoder has one as well (x-transformers' TransformerWrapper always builds it, so it
        # is in the checkpoints), although ImageBART only reads the encoder's embeddings
        self.to_logits = nn.Linear(dim, num_tokens)

    def forward(
        self, tokens: Tensor, context: Tensor | None = None, return_embeddings: bool = False
    ) -> Tensor:
        """Logits (b, l, num_tokens), or the embeddings (b, l, d) with ``return_embeddings``."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise TypeError(
                f"tokens must be an integer tensor (b, l), got "
                f"{getattr(tokens, 'dtype', type(tokens).__name__)} "
                f"{tuple(getattr(tokens, 'shape', ()))}"
            )
        if tokens.shape[1] > self.max_seq_len:
            raise ValueError(f"{tokens.shape[1]} tokens exceed max_seq_len={self.max_seq_len}")
        if not in_range(tokens, 0, self.num_tokens, training=self.training):
            raise ValueError(
                f"tokens must lie in [0, {self.num_tokens}), got "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        x = self.token_emb(tokens) + self.pos_emb(tokens.shape[1])  # (b, l, d)
        x = self.norm(self.attn_layers(x, context))
        return x if return_embeddings else self.to_logits(x)


class XTransformer(nn.Module):
    """Bidirectional encoder over ``enc_tokens`` + causal decoder with cross-attention."""

    def __init__(
        self,
        dim: int,
        enc_num_tokens: int,
        enc_depth: int,
        enc_heads: int,
        enc_max_seq_len: int,
        dec_num_tokens: int,
        dec_depth: int,
        dec_heads: int,
        dec_max_seq_len: int,
        n_scales: int | None = None,
        dim_head: int = 64,
    ) -> None:
        super().__init__()
        self.encoder = TokenTransformer(
            enc_num_tokens, enc_max_seq_len, dim, enc_depth, enc_heads, dim_head=dim_head
        )
        if n_scales is not None:  # official ResidualScaledXTransformer: one log-scale per scale
            self.log_scalors = nn.Parameter(torch.zeros(n_scales))
        self.decoder = TokenTransformer(
            dec_num_tokens, dec_max_seq_len, dim, dec_depth, dec_heads, causal=True,
            cross_attend=True, dim_head=dim_head,
        )  # fmt: skip

    def encode(self, enc_tokens: Tensor) -> Tensor:
        """The context (b, m, d) the decoder attends to."""
        return self.encoder(enc_tokens, return_embeddings=True)

    def decode(self, dec_tokens: Tensor, context: Tensor) -> Tensor:
        """Logits (b, l, dec_num_tokens); position i sees ``dec_tokens[:, :i + 1]`` and all of
        the context."""
        return self.decoder(dec_tokens, context)

    def forward(self, enc_tokens: Tensor, dec_tokens: Tensor) -> Tensor:
        return self.decode(dec_tokens, self.encode(enc_tokens))
