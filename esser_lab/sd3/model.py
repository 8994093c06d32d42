"""The MMDiT of Stable Diffusion 3 and the backbones it was compared with (chapter 17).

Esser, Kulal, Blattmann et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution
Image Synthesis" (ICML 2024; arXiv 2403.03206), §4 (Fig. 2) and §5.2.2 (Fig. 4). Blocks in
:mod:`esser_lab.nn.dit`, with the parameter names of the released ``mmditx.py``
(Stability-AI/sd3.5), so the official single files load by name (:mod:`esser_lab.sd3.checkpoint`).

Conventions a reader could get wrong:

* time: t ∈ [0, 1], t = 1 pure noise, t = 0 data (``esser_lab.diffusion.protocol``); the network
  embeds 1000·t, as the official ``ModelSamplingDiscreteFlow.timestep(sigma) = 1000·sigma``;
* output: the velocity v = ε − x₀ of the RF path x_t = (1 − t)·x₀ + t·ε (paper eq. 3 with
  a_t = 1 − t, b_t = t); the official ``calculate_denoised`` returns x_t − t·v;
* ``cond`` is the dict ``{"context": (b, L, context_dim), "pooled": (b, adm_in)}`` for every
  backbone (SD3: 154×4096 CLIP+T5 tokens, 2048-d pooled CLIP vector);
* width = 64·depth and heads = depth (head dim 64) unless ``hidden`` / ``num_heads`` are given.

Backbones (``MMDiTConfig.backbone``): ``"mmdit"`` (two streams, separate weights, one joint
attention), ``"crossdit"`` (one image stream with self-attention, then cross-attention to the
embedded context as PixArt-α: no adaLN on it, its output projection zero-initialised; then the MLP),
``"dit"`` (concat: one weight set over [context; image] tokens). The paper publishes no code for
the last two; they are our reading of §5.2.2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, config_from_dict
from esser_lab.nn.attention import attention
from esser_lab.nn.dit import (
    AttentionStats,
    DismantledBlock,
    FinalLayer,
    JointBlock,
    PatchEmbed,
    TimestepEmbedder,
    VectorEmbedder,
    logit_stats,
    modulate,
    sincos_pos_embed_2d,
    unpatchify,
)

__all__ = ["CrossDiTBlock", "MMDiT", "MMDiTConfig", "count_parameters", "matched_config"]

Backbone = Literal["mmdit", "crossdit", "dit"]


@dataclass(frozen=True)
class MMDiTConfig:
    """Defaults: SD3-medium (``sd3_medium.safetensors``: depth 24, width 1536, 24 heads, no
    QK-norm, 192² positional table). ``hidden`` None → 64·depth, ``num_heads`` None → depth."""

    in_channels: int = 16
    patch_size: int = 2
    depth: int = 24
    hidden: int | None = None
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    context_dim: int = 4096
    adm_in: int = 2048
    pos_embed_max_size: int = 192
    qk_norm: bool = False
    x_block_self_attn_layers: tuple[int, ...] = ()
    backbone: Backbone = "mmdit"

    def __post_init__(self) -> None:
        if isinstance(self.x_block_self_attn_layers, list):  # a JSON-stored config's list
            object.__setattr__(
                self, "x_block_self_attn_layers", tuple(self.x_block_self_attn_layers)
            )
        check_fields(self)
        positive = (
            "in_channels",
            "patch_size",
            "depth",
            "context_dim",
            "adm_in",
            "pos_embed_max_size",
        )
        bad = {k: getattr(self, k) for k in positive if not getattr(self, k) >= 1}
        if bad:
            raise ValueError(f"MMDiTConfig fields must be ≥ 1, got {bad}")
        if self.backbone not in ("mmdit", "crossdit", "dit"):
            raise ValueError(
                f"backbone must be 'mmdit', 'crossdit' or 'dit', got {self.backbone!r}"
            )
        if self.width % self.heads or self.width % 4:
            raise ValueError(
                f"width {self.width} must be divisible by the {self.heads} heads and by 4 "
                "(the 2-D sin-cos table)"
            )
        layers = tuple(self.x_block_self_attn_layers)
        if any(not 0 <= i < self.depth for i in layers):
            raise ValueError(
                f"x_block_self_attn_layers {layers} must lie in 0..{self.depth - 1} "
                f"(depth {self.depth}); the last block may carry one too (only its context "
                "stream is pre-only, as the official JointBlock builds it)"
            )
        if layers and self.backbone != "mmdit":
            raise ValueError(
                "x_block_self_attn_layers (MMDiT-X attn2) exist only for backbone 'mmdit'"
            )
        object.__setattr__(self, "x_block_self_attn_layers", layers)

    @property
    def width(self) -> int:
        """The hidden width: ``hidden`` or 64·depth."""
        return 64 * self.depth if self.hidden is None else self.hidden

    @property
    def heads(self) -> int:
        """The number of heads: ``num_heads`` or depth."""
        return self.depth if self.num_heads is None else self.num_heads

    @classmethod
    def sd3_medium(cls) -> MMDiTConfig:
        """SD3-medium, 2 B: depth 24, no QK-norm, pos table 192² (``sd3_medium.safetensors``)."""
        return cls()

    @classmethod
    def sd35_medium(cls) -> MMDiTConfig:
        """SD3.5-medium "MMDiT-X", 2.5 B: QK-norm, image self-attention ``attn2`` in blocks 0–12,
        pos table 384²."""
        return replace(
            cls(), qk_norm=True, x_block_self_attn_layers=tuple(range(13)), pos_embed_max_size=384
        )

    @classmethod
    def sd35_large(cls) -> MMDiTConfig:
        """SD3.5-large, 8 B: depth 38 (width 2432, 38 heads), QK-norm, pos table 192²."""
        return replace(cls(), depth=38, qk_norm=True)

    @classmethod
    def paper(cls) -> MMDiTConfig:
        """The released SD3-medium (the paper's d = 24 model)."""
        return cls.sd3_medium()

    @classmethod
    def small(cls) -> MMDiTConfig:
        """A laptop / Colab size: depth 6, width 384, 6 heads, 4 latent channels, 256-d text."""
        return replace(
            cls(), in_channels=4, depth=6, context_dim=256, adm_in=256, pos_embed_max_size=32
        )

    @classmethod
    def tiny(cls) -> MMDiTConfig:
        """CI size (a few ms a training step on a CPU): depth 2, width 32, 2 heads."""
        return replace(
            cls(),
            in_channels=4,
            depth=2,
            hidden=32,
            num_heads=2,
            context_dim=32,
            adm_in=32,
            pos_embed_max_size=16,
        )

    @classmethod
    def from_dict(cls, values: dict) -> MMDiTConfig:
        return config_from_dict(cls, values)


class CrossDiTBlock(nn.Module):
    """CrossDiT (SD3 §5.2.2): DiT block + cross-attention of the image tokens to the context.

    x += gate·proj(self-attention(modulate(norm1 x))); x += cross_attn(x, context) (PixArt-α:
    unmodulated, ungated, ``cross_attn.proj`` zero at init); x += gate·MLP(modulate(norm2 x)).
    """

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, qk_norm: bool) -> None:
        super().__init__()
        self.block = DismantledBlock(hidden, heads, mlp_ratio, qk_norm=qk_norm)
        self.cross_q = nn.Linear(hidden, hidden)
        self.cross_kv = nn.Linear(hidden, 2 * hidden)
        self.cross_proj = nn.Linear(hidden, hidden)
        self.heads = heads
        self.record_stats = False
        self.last_stats: AttentionStats | None = None

    def forward(self, context: Tensor, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        qkv, state = self.block.pre_attention(x, c)
        if self.record_stats:
            self.last_stats = logit_stats(qkv[0], qkv[1], self.heads)
        y = attention(*qkv, heads=self.heads)
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp = state
        x = x + gate_msa[:, None] * self.block.attn.post_attention(y)
        k, v = self.cross_kv(context).chunk(2, dim=-1)
        x = x + self.cross_proj(attention(self.cross_q(x), k, v, heads=self.heads))
        x = x + gate_mlp[:, None] * self.block.mlp(
            modulate(self.block.norm2(x), shift_mlp, scale_mlp)
        )
        return context, x


class _ConcatBlock(DismantledBlock):
    """DiT (concat, SD3 §5.2.2): one DiT block over [context; image] tokens, one weight set."""

    record_stats = False
    last_stats: AttentionStats | None = None

    def forward(self, context: Tensor, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        tokens = torch.cat([context, x], dim=1)
        qkv, state = self.pre_attention(tokens, c)
        if self.record_stats:
            self.last_stats = logit_stats(qkv[0], qkv[1], self.attn.heads)
        out = self.post_attention(attention(*qkv, heads=self.attn.heads), state)
        lc = context.shape[1]
        return out[:, :lc], out[:, lc:]


class MMDiT(nn.Module):
    """SD3's denoiser v_Θ(x_t, t, c) (paper Fig. 2a), for the three backbones of Fig. 4.

    c = t_embedder(1000·t) + y_embedder(pooled); context = context_embedder(context tokens);
    x = x_embedder(x_t) + the centre crop of ``pos_embed`` for the current grid; the blocks; the
    final layer; unpatchify.
    """

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        if not isinstance(config, MMDiTConfig):
            raise TypeError(f"MMDiT needs an MMDiTConfig, got {type(config).__name__}")
        self.config = config
        d, nh, depth = config.width, config.heads, config.depth
        self.x_embedder = PatchEmbed(config.in_channels, d, config.patch_size)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = VectorEmbedder(config.adm_in, d)
        self.context_embedder = nn.Linear(config.context_dim, d)
        self.register_buffer("pos_embed", torch.zeros(1, config.pos_embed_max_size**2, d))
        if config.backbone == "mmdit":
            blocks = [
                JointBlock(
                    d,
                    nh,
                    config.mlp_ratio,
                    pre_only=i == depth - 1,
                    qk_norm=config.qk_norm,
                    self_attn2=i in config.x_block_self_attn_layers,
                )
                for i in range(depth)
            ]
            self.joint_blocks = nn.ModuleList(blocks)
        elif config.backbone == "crossdit":
            self.blocks = nn.ModuleList(
                [CrossDiTBlock(d, nh, config.mlp_ratio, config.qk_norm) for _ in range(depth)]
            )
        else:
            self.blocks = nn.ModuleList(
                [
                    _ConcatBlock(d, nh, config.mlp_ratio, qk_norm=config.qk_norm)
                    for _ in range(depth)
                ]
            )
        self.final_layer = FinalLayer(d, config.patch_size, config.in_channels)
        self.initialize_weights()

    @property
    def layers(self) -> nn.ModuleList:
        """The blocks, whatever the backbone (``joint_blocks`` for MMDiT, ``blocks`` otherwise)."""
        return self.joint_blocks if self.config.backbone == "mmdit" else self.blocks

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """DiT's ``initialize_weights`` (the released SD3 code is inference-only): Xavier-uniform
        Linears with zero bias, the patch conv as a Linear, N(0, 0.02) timestep/vector MLPs,
        the sin-cos table, and adaLN-Zero: every ``adaLN_modulation`` Linear and the final
        ``linear`` zero (CrossDiT: ``cross_proj`` zero too, as PixArt-α)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
        nn.init.xavier_uniform_(self.x_embedder.proj.weight.view(self.config.width, -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        for embedder in (self.t_embedder, self.y_embedder):
            nn.init.normal_(embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        table = sincos_pos_embed_2d(self.config.width, self.config.pos_embed_max_size)
        self.pos_embed.copy_(table[None].to(self.pos_embed))
        for module in self.modules():
            if isinstance(module, DismantledBlock | FinalLayer):
                nn.init.zeros_(module.adaLN_modulation[1].weight)
                nn.init.zeros_(module.adaLN_modulation[1].bias)
            if isinstance(module, CrossDiTBlock):
                nn.init.zeros_(module.cross_proj.weight)
        nn.init.zeros_(self.final_layer.linear.weight)

    def cropped_pos_embed(self, h: int, w: int) -> Tensor:
        """The centre h×w crop (1, h·w, d) of the max²-table, on the patch grid."""
        m = self.config.pos_embed_max_size
        if h > m or w > m:
            raise ValueError(
                f"a {h}×{w} patch grid exceeds the positional table of {m}×{m} "
                f"(pos_embed_max_size; inputs up to {m * self.config.patch_size} pixels a side)"
            )
        top, left = (m - h) // 2, (m - w) // 2
        table = self.pos_embed.view(1, m, m, -1)[:, top : top + h, left : left + w]
        return table.reshape(1, h * w, -1)

    def _check(self, x: Tensor, t: Tensor, cond: Mapping[str, Tensor]) -> None:
        cfg = self.config
        # float32 inputs are cast to the weights' dtype (the official apply_model); any other
        # dtype must be the weights' own (autocast casts for itself)
        weights = self.x_embedder.proj.weight.dtype
        like = None if isinstance(x, Tensor) and x.dtype == torch.float32 else weights
        check_tensor(x, "x", None, like=like, training=self.training)
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (b, {cfg.in_channels}, h, w), got {tuple(x.shape)}")
        if x.shape[2] % cfg.patch_size or x.shape[3] % cfg.patch_size:
            raise ValueError(
                f"h and w must be multiples of patch_size {cfg.patch_size}, got {tuple(x.shape)}"
            )
        b = x.shape[0]
        if not isinstance(t, Tensor) or t.shape != (b,):
            raise ValueError(
                f"t must be a ({b},) tensor of times in [0, 1], got {getattr(t, 'shape', t)}"
            )
        if not isinstance(cond, Mapping) or not {"context", "pooled"} <= set(cond):
            got = sorted(cond) if isinstance(cond, Mapping) else type(cond).__name__
            raise ValueError(f"cond must be a dict with keys 'context' and 'pooled', got {got}")
        context, pooled = cond["context"], cond["pooled"]
        if context.dim() != 3 or context.shape[0] != b or context.shape[2] != cfg.context_dim:
            raise ValueError(
                f"cond['context'] must be ({b}, L, {cfg.context_dim}), got {tuple(context.shape)}"
            )
        if pooled.shape != (b, cfg.adm_in):
            raise ValueError(
                f"cond['pooled'] must be ({b}, {cfg.adm_in}), got {tuple(pooled.shape)}"
            )
        check_tensor(t, "t", (b,), training=self.training)
        check_tensor(context, "cond['context']", (b, None, cfg.context_dim), like=like,
                     training=self.training)  # fmt: skip
        check_tensor(pooled, "cond['pooled']", (b, cfg.adm_in), like=like, training=self.training)

    def forward(self, x: Tensor, t: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """Velocity (b, c, h, w) at x_t (b, c, h, w), t (b,) in [0, 1], cond {context, pooled}.

        The inputs are cast to the weights' dtype (a float16 / bfloat16 model takes float32
        inputs, as the official ``apply_model``) and the velocity returned in x's dtype."""
        self._check(x, t, cond)
        p = self.config.patch_size
        h, w = x.shape[2] // p, x.shape[3] // p
        dtype = self.x_embedder.proj.weight.dtype
        tokens = self.x_embedder(x.to(dtype)) + self.cropped_pos_embed(h, w)  # (b, h·w, d)
        c = self.t_embedder(1000 * t) + self.y_embedder(cond["pooled"].to(dtype))  # (b, d)
        context = self.context_embedder(cond["context"].to(dtype))  # (b, L, d)
        for block in self.layers:
            context, tokens = block(context, tokens, c)
        return unpatchify(self.final_layer(tokens, c), h, w, p).to(x.dtype)

    @torch.no_grad()
    def attention_logits_stats(
        self, x: Tensor, t: Tensor, cond: Mapping[str, Tensor], blocks: int = 2
    ) -> list[AttentionStats]:
        """One forward that records the attention-logit statistics (max logit, mean entropy) of
        the last ``blocks`` blocks, in block order: what SD3 §5.3.1 / Fig. 5 watches grow and
        collapse without QK-norm. For MMDiT it is the joint attention over both streams."""
        watched = list(self.layers)[-blocks:]
        for block in watched:
            block.record_stats = True
        try:
            self(x, t, cond)
        finally:
            for block in watched:
                block.record_stats = False
        return [block.last_stats for block in watched]


def count_parameters(config: MMDiTConfig) -> int:
    """Parameters of the network of ``config``, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = MMDiT(config)
    return sum(p.numel() for p in model.parameters())


def matched_config(config: MMDiTConfig, backbone: Backbone) -> MMDiTConfig:
    """``config`` with ``backbone`` and the hidden width (a multiple of lcm(heads, 4)) whose
    parameter count is closest to the MMDiT of ``config`` (SD3 Fig. 4 compares at equal size)."""
    target = count_parameters(replace(config, backbone="mmdit"))
    if backbone == "mmdit":
        return replace(config, backbone="mmdit")
    nh = config.heads
    step = nh * 4 // math.gcd(nh, 4)
    base = replace(config, backbone=backbone, num_heads=nh, x_block_self_attn_layers=())

    def size(k: int) -> int:
        return count_parameters(replace(base, hidden=k * step))

    lo, hi = 1, 2  # the count grows with the width: bracket the target, then bisect
    while size(hi) < target:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) < target else (lo, mid)
    k = min((lo, hi), key=lambda k: abs(size(k) - target))
    return replace(base, hidden=k * step)
