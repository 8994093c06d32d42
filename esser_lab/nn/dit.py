"""Diffusion-transformer blocks: DiT's adaLN-Zero block and SD3's two-stream MMDiT joint block.

Peebles & Xie 2023, "Scalable Diffusion Models with Transformers" (arXiv 2212.09748) for the
adaLN-Zero block; Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution
Image Synthesis" (arXiv 2403.03206, §4 and Fig. 2) for the joint block; chapter 17.

Parameter names are those of the released single-file checkpoints (Stability-AI/sd3.5,
``mmditx.py``), so ``sd3_medium.safetensors`` and ``sd3.5_*.safetensors`` load by name:
``x_embedder.proj``, ``pos_embed``, ``t_embedder.mlp.{0,2}``, ``y_embedder.mlp.{0,2}``,
``joint_blocks.{i}.{context_block,x_block}.{adaLN_modulation.1,attn.qkv,attn.proj,attn.ln_q,
attn.ln_k,attn2.*,mlp.fc1,mlp.fc2}``, ``final_layer.{adaLN_modulation.1,linear}``.

Conventions a reader could get wrong:

* The adaLN chunks come in the order (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
  gate_mlp) [+ (shift_msa2, scale_msa2, gate_msa2) for MMDiT-X]; a pre-only block and the final
  layer have (shift, scale). diffusers stores the last two as (scale, shift)
  (``esser_lab.sd3.checkpoint.mmdit_to_diffusers`` swaps them).
* ``modulate(x) = x·(1 + scale) + shift``: a zero modulation is the identity.
* Joint attention runs ONE softmax over the sequence [context tokens; image tokens] (context
  first, as the official code; diffusers puts the image first, which gives the same result since
  positions are added before the blocks).
* Every LayerNorm is without affine parameters, eps 1e-6; QK-norm is RMSNorm over the head
  dimension (eps 1e-6) with a learnable scale, applied per stream.
* Initialisation: the released code is inference-only and initialises nothing; we follow DiT's
  ``initialize_weights`` (Xavier-uniform Linears, zero biases, N(0, 0.02) timestep MLP, and
  adaLN-Zero: every ``adaLN_modulation`` and the final ``linear`` zero), so an untrained network
  outputs exactly zero and every block starts as the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.nn.attention import attention
from esser_lab.nn.unet import timestep_embedding

__all__ = [
    "AttentionStats",
    "DismantledBlock",
    "FinalLayer",
    "JointBlock",
    "Mlp",
    "PatchEmbed",
    "RMSNorm",
    "SelfAttention",
    "TimestepEmbedder",
    "VectorEmbedder",
    "joint_attention",
    "logit_stats",
    "modulate",
    "sincos_pos_embed_2d",
    "unpatchify",
]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (b, l, d) · (1 + scale) + shift, with shift and scale (b, d) per sample."""
    return x * (1 + scale[:, None]) + shift[:, None]


def sincos_pos_embed_2d(dim: int, grid: int) -> Tensor:
    """The fixed 2-D sin-cos table (grid², dim) of a square grid, rows in raster order (h, w).

    As MAE/DiT/SD3 build it: the first half of the channels encodes the column (w), the second
    the row (h); each half is [sin(p·ω_i), cos(p·ω_i)] with ω_i = 10000^(−i / (dim/4)).
    """
    if dim % 4:
        raise ValueError(f"the 2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10_000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    pos = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")  # (grid, grid) each

    def one_axis(p: Tensor) -> Tensor:  # (grid²,) -> (grid², dim/2)
        angles = p.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([one_axis(cols), one_axis(rows)], dim=1).float()


class PatchEmbed(nn.Module):
    """Patchify: a stride-p p×p convolution ``proj``, (b, c, h, w) -> (b, (h/p)(w/p), d)."""

    def __init__(self, in_channels: int, hidden: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return rearrange(self.proj(x), "b d h w -> b (h w) d")


class TimestepEmbedder(nn.Module):
    """``mlp`` = Linear(256, d) → SiLU → Linear(d, d) over the 256-d sinusoid of the timestep."""

    def __init__(self, hidden: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, timesteps: Tensor) -> Tensor:
        freq = timestep_embedding(timesteps, self.frequency_dim)  # (b, 256), cos first
        return self.mlp(freq.to(self.mlp[0].weight.dtype))


class VectorEmbedder(nn.Module):
    """``mlp`` = Linear(p, d) → SiLU → Linear(d, d) over the pooled text vector (b, p)."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, y: Tensor) -> Tensor:
        return self.mlp(y)


class Mlp(nn.Module):
    """``fc1`` → GELU(tanh) → ``fc2``, the ViT MLP of every DiT block."""

    def __init__(self, hidden: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


@dataclass(frozen=True)
class AttentionStats:
    """Statistics of one attention's logits q·kᵀ/√hd (SD3 §5.3.1, Fig. 5: QK-norm).

    ``max_logit``: the largest logit over batch, heads and positions; ``entropy``: the mean over
    batch, heads and queries of the attention distribution's entropy (nats). Logit growth and
    entropy collapse in the last blocks are the instability QK-norm removes.
    """

    max_logit: float
    entropy: float


def logit_stats(q: Tensor, k: Tensor, heads: int) -> AttentionStats:
    """:class:`AttentionStats` of q, k (b, l, nh·hd) each, from an explicit q·kᵀ/√hd."""
    q, k = (rearrange(x, "b l (nh hd) -> b nh l hd", nh=heads) for x in (q, k))
    logits = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float()) / math.sqrt(q.shape[-1])
    logp = logits.log_softmax(dim=-1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    return AttentionStats(max_logit=logits.max().item(), entropy=entropy.item())


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` computed in the input's dtype with the weight cast to it, as the official
    ``mmditx.RMSNorm`` (x · rsqrt(mean(x²) + eps) · weight). Under bf16 autocast torch's own
    module meets a bf16 input and a float32 weight, warns and falls back to this arithmetic."""

    def forward(self, x: Tensor) -> Tensor:
        eps = 1e-6 if self.eps is None else self.eps
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        return y * self.weight.to(x.dtype)


class SelfAttention(nn.Module):
    """Fused ``qkv`` projection, optional RMSNorm ``ln_q``/``ln_k`` per head, output ``proj``.

    ``pre_only``: the module only produces q, k, v (no ``proj``), as the last context block.
    """

    def __init__(
        self, hidden: int, heads: int, *, pre_only: bool = False, qk_norm: bool = False
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden width {hidden} must be divisible by the {heads} heads")
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = None if pre_only else nn.Linear(hidden, hidden)
        self.ln_q = RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.ln_k = RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def pre_attention(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v (b, l, nh·hd) each, q and k normalised per head when QK-norm is on."""
        q, k, v = rearrange(
            self.qkv(x), "b l (three nh hd) -> three b l nh hd", three=3, nh=self.heads
        )
        q, k = self.ln_q(q), self.ln_k(k)  # RMSNorm over hd
        return tuple(rearrange(y, "b l nh hd -> b l (nh hd)") for y in (q, k, v))

    def post_attention(self, y: Tensor) -> Tensor:
        if self.proj is None:
            raise RuntimeError("a pre-only attention has no output projection")
        return self.proj(y)

    def forward(self, x: Tensor) -> Tensor:
        return self.post_attention(attention(*self.pre_attention(x), heads=self.heads))


class DismantledBlock(nn.Module):
    """One stream of a DiT block, split around its attention (official ``DismantledBlock``).

    ``pre_attention(x, c)`` returns q, k, v of ``attn`` over modulate(norm1(x)) and what
    ``post_attention`` needs; ``post_attention`` adds gate·proj(attention) and gate·MLP
    (DiT eq. of Fig. 3, adaLN-Zero). ``pre_only``: 2 chunks, no proj / norm2 / MLP.
    ``self_attn2`` (MMDiT-X, SD3.5-medium): a second image-only attention ``attn2`` from the
    same norm1(x), 9 chunks.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        mlp_ratio: float = 4.0,
        *,
        pre_only: bool = False,
        qk_norm: bool = False,
        self_attn2: bool = False,
    ) -> None:
        super().__init__()
        if pre_only and self_attn2:
            raise ValueError("a pre-only block cannot carry the MMDiT-X attn2")
        self.pre_only, self.self_attn2 = pre_only, self_attn2
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, heads, pre_only=pre_only, qk_norm=qk_norm)
        if self_attn2:
            self.attn2 = SelfAttention(hidden, heads, qk_norm=qk_norm)
        if not pre_only:
            self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        chunks = 2 if pre_only else 9 if self_attn2 else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, chunks * hidden))

    def pre_attention(self, x: Tensor, c: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """((q, k, v), state): state = (x, gates and modulations for ``post_attention``)."""
        mods = self.adaLN_modulation(c).chunk(
            2 if self.pre_only else 9 if self.self_attn2 else 6, dim=1
        )
        x_norm = self.norm1(x)
        qkv = self.attn.pre_attention(modulate(x_norm, mods[0], mods[1]))
        if self.pre_only:
            return qkv, ()
        if self.self_attn2:
            # official MMDiT-X: attn2 reads the same norm1(x), with its own (shift, scale)
            qkv2 = self.attn2.pre_attention(modulate(x_norm, mods[6], mods[7]))
            return qkv + qkv2, (x, *mods[2:6], mods[8])
        return qkv, (x, *mods[2:6])

    def post_attention(
        self, y: Tensor, state: tuple[Tensor, ...], y2: Tensor | None = None
    ) -> Tensor:
        """x + gate_msa·proj(y) [+ gate_msa2·proj2(y2)], then + gate_mlp·MLP(modulate(norm2(x)))."""
        if self.pre_only:
            raise RuntimeError("a pre-only block has no output (its stream ends here)")
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp = state[:5]
        x = x + gate_msa[:, None] * self.attn.post_attention(y)
        if self.self_attn2:
            x = x + state[5][:, None] * self.attn2.post_attention(y2)
        return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """The plain DiT block (one stream attending to itself)."""
        qkv, state = self.pre_attention(x, c)
        heads = self.attn.heads
        y2 = attention(*qkv[3:], heads=heads) if self.self_attn2 else None
        return self.post_attention(attention(*qkv[:3], heads=heads), state, y2)


def joint_attention(
    context_qkv: tuple[Tensor, Tensor, Tensor], x_qkv: tuple[Tensor, Tensor, Tensor], heads: int
) -> tuple[Tensor, Tensor]:
    """SD3 eq. of Fig. 2b: one attention over [context; image] tokens, split back per stream."""
    q, k, v = (torch.cat([a, b], dim=1) for a, b in zip(context_qkv, x_qkv, strict=True))
    y = attention(q, k, v, heads=heads)  # (b, lc + lx, d)
    lc = context_qkv[0].shape[1]
    return y[:, :lc], y[:, lc:]


class JointBlock(nn.Module):
    """The MMDiT block: a ``context_block`` and an ``x_block`` with separate weights, one joint
    attention. ``pre_only`` (the last block) ends the context stream: it returns None for it.

    ``record_stats = True`` makes the next forward store the joint attention's logit statistics
    in ``last_stats`` (an explicit q·kᵀ, for the QK-norm measurement only).
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        mlp_ratio: float = 4.0,
        *,
        pre_only: bool = False,
        qk_norm: bool = False,
        self_attn2: bool = False,
    ) -> None:
        super().__init__()
        self.context_block = DismantledBlock(
            hidden, heads, mlp_ratio, pre_only=pre_only, qk_norm=qk_norm
        )
        self.x_block = DismantledBlock(
            hidden, heads, mlp_ratio, qk_norm=qk_norm, self_attn2=self_attn2
        )
        self.record_stats = False
        self.last_stats: AttentionStats | None = None

    def forward(self, context: Tensor, x: Tensor, c: Tensor) -> tuple[Tensor | None, Tensor]:
        heads = self.x_block.attn.heads
        context_qkv, context_state = self.context_block.pre_attention(context, c)
        x_qkv, x_state = self.x_block.pre_attention(x, c)
        if self.record_stats:
            q, k = (torch.cat([context_qkv[i], x_qkv[i]], dim=1) for i in (0, 1))
            self.last_stats = logit_stats(q, k, heads)
        context_y, x_y = joint_attention(context_qkv, x_qkv[:3], heads)
        x_y2 = attention(*x_qkv[3:], heads=heads) if self.x_block.self_attn2 else None
        x = self.x_block.post_attention(x_y, x_state, x_y2)
        if self.context_block.pre_only:
            return None, x
        return self.context_block.post_attention(context_y, context_state), x


class FinalLayer(nn.Module):
    """LayerNorm (no affine) → modulate with ``adaLN_modulation`` (shift, scale) → ``linear``."""

    def __init__(self, hidden: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def unpatchify(x: Tensor, h: int, w: int, patch_size: int) -> Tensor:
    """(b, h·w, p·p·c) tokens on an h×w grid -> (b, c, h·p, w·p), channels last in each patch."""
    return rearrange(x, "b (h w) (p q c) -> b c (h p) (w q)", h=h, w=w, p=patch_size, q=patch_size)
