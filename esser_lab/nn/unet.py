"""The denoising UNet of Latent Diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR 2022;
arXiv 2112.10752), chapter 14, and of Stable Diffusion 1.x.

The ADM UNet (Dhariwal & Nichol 2021) as ``ldm/modules/diffusionmodules/openaimodel.py``
(``UNetModel``) builds it, with the official parameter names, so that the
``model.diffusion_model.*`` tensors of a released LDM / SD checkpoint load with ``strict=True``:

``time_embed.{0,2}`` · ``label_emb`` (``num_classes`` only) · ``input_blocks.{i}.{j}`` (i = 0 the
input conv; then per level ``num_res_blocks`` × [``ResBlock`` (+ attention)] and a
``Downsample`` ``op``) · ``middle_block.{0,1,2}`` (ResBlock, attention, ResBlock) ·
``output_blocks.{i}.{j}`` (``num_res_blocks + 1`` per level, each on the concatenation with a
skip, ``Upsample`` ``conv`` last) · ``out.{0,2}`` (GroupNorm32, SiLU, zero-initialised conv).

Conventions a reader could get wrong:

* ``timesteps`` are the integer DDPM indices 0..T−1 (floats are allowed and embedded as they
  are), not a continuous t ∈ [0, 1]: the sinusoidal embedding's frequencies assume that range.
  The embedding is [cos, sin] (cosines first, ``timestep_embedding`` of the official code).
* ``attention_resolutions`` are down-sampling factors ds (1 = the input's own resolution), not
  pixel sides: SD's (4, 2, 1) attends on 64, 32 and 16 at a 64×64 latent, not at ds 8.
* The middle block always has an attention layer, whatever ``attention_resolutions`` says.
* Two attention layouts. ``use_spatial_transformer`` gives a ``SpatialTransformer``
  (:mod:`esser_lab.nn.spatial_transformer`: self- then cross-attention on ``context``, GEGLU
  feed-forward; Linear ``to_q``/``to_k``/``to_v`` without bias); otherwise the ADM
  ``AttentionBlock`` with one fused ``qkv`` Conv1d(C, 3C, 1) whose output channels are ordered
  **head-major**: (head, [q|k|v], dim) — ``QKVAttentionLegacy`` splits heads *before* q, k, v.
  Splitting its weight as ``w.chunk(3)`` into q, k, v (as for ``QKVAttention``, diffusers'
  ``to_q/to_k/to_v``) is wrong for more than one head: rows [h·3·hd + p·hd, h·3·hd + (p+1)·hd)
  belong to part p (q, k, v) of head h.
* Every attention goes through :func:`esser_lab.nn.attention.attention` (scale 1/√hd; the
  official legacy block scales q and k by hd^-1/4 each: the same number).
* GroupNorm32 (32 groups, eps 1e-5) computes in float32 and casts back, as the official one,
  so a bfloat16 UNet normalises in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from esser_lab.checks import check_tensor, in_range
from esser_lab.nn.attention import attention

# the transformer's blocks, re-exported so that ``esser_lab.nn.unet.<Name>`` keeps working
from esser_lab.nn.spatial_transformer import (
    GEGLU,
    BasicTransformerBlock,
    CrossAttention,
    FeedForward,
    GroupNorm32,
    SpatialTransformer,
    maybe_checkpoint,
    normalization,
    zero_module,
)
from esser_lab.nn.unet_config import UNetConfig

__all__ = [
    "GEGLU",
    "AttentionBlock",
    "BasicTransformerBlock",
    "CrossAttention",
    "FeedForward",
    "GroupNorm32",
    "ResBlock",
    "SpatialTransformer",
    "UNetConfig",
    "UNetModel",
    "timestep_embedding",
]


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding (b, dim) of ``timesteps`` (b,): [cos(t·ω_i), sin(t·ω_i)].

    ω_i = max_period^(−i / half), i = 0..half−1, half = dim // 2 (Vaswani et al. 2017, §3.5, as
    ADM uses it); cosines first; an odd ``dim`` gets a trailing zero column. Float32 always.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)  # (half,)
    args = timesteps[:, None].float() * freqs[None]  # (b, half)
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class Downsample(nn.Module):
    """Halve the side: 3×3 stride-2 conv ``op`` (padding 1), or 2×2 average pooling."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.op = (
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the side: nearest neighbour, then a 3×3 ``conv`` if ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """ADM residual block conditioned on the time embedding ``emb`` (b, emb_channels).

    ``in_layers`` (GN, SiLU, 3×3 conv) → + ``emb_layers`` (SiLU, Linear) → ``out_layers`` (GN,
    SiLU, Dropout, zero-init 3×3 conv) + ``skip_connection`` (Identity or 1×1 conv). With
    ``use_scale_shift_norm`` the embedding gives (scale, shift): GN(h)·(1 + scale) + shift.
    ``up``/``down`` resample both branches between the first norm-SiLU and conv (``h_upd``,
    ``x_upd``, parameter-free): the ``resblock_updown`` sampler.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm, self.use_checkpoint = use_scale_shift_norm, use_checkpoint
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return maybe_checkpoint(self.use_checkpoint, self._forward, x, emb)

    def _forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.updown:  # resample after the first norm and SiLU, before the conv
            h = self.h_upd(self.in_layers[:-1](x))
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = rearrange(self.emb_layers(emb).to(h.dtype), "b c -> b c 1 1")
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """ADM self-attention over the h·w positions: ``norm``, fused ``qkv``, zero-init ``proj_out``.

    ``qkv`` is Conv1d(C, 3C, 1) with head-major output channels (module docstring: the legacy
    ordering of all released LDM checkpoints).
    """

    def __init__(self, channels: int, num_heads: int, use_checkpoint: bool = False) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{num_heads} heads must divide the {channels} channels")
        self.num_heads, self.use_checkpoint = num_heads, use_checkpoint
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        # official code: always checkpointed (flag hard-coded True); here when use_checkpoint
        return maybe_checkpoint(self.use_checkpoint, self._forward, x)

    def _forward(self, x: Tensor) -> Tensor:
        height = x.shape[2]
        x = rearrange(x, "b c h w -> b c (h w)")
        qkv = self.qkv(self.norm(x))  # (b, nh·3·hd, l): heads first, then q|k|v
        q, k, v = rearrange(
            qkv, "b (nh three hd) l -> three b l (nh hd)", three=3, nh=self.num_heads
        )
        h = rearrange(attention(q, k, v, heads=self.num_heads), "b l c -> b c l")
        return rearrange(x + self.proj_out(h), "b c (h w) -> b c h w", h=height)


class TimestepEmbedSequential(nn.Sequential):
    """A Sequential that hands ``emb`` to its ResBlocks and ``context`` to its transformers."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """ε_θ(x_t, t, context, y): (b, in_channels, h, w) → (b, out_channels, h, w).

    ``forward(x, timesteps, context=None, y=None)``: ``timesteps`` (b,) or () DDPM indices (int
    or float); ``context`` (b, l, context_dim) when the config has cross-attention, else None;
    ``y`` (b,) class indices when ``num_classes`` is set, else None. Concatenated conditions
    (masks, low-resolution images) are more ``in_channels``: the caller concatenates.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
        self.config = c = config
        mc, emb_dim = c.model_channels, 4 * c.model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        if c.num_classes is not None:
            self.label_emb = nn.Embedding(c.num_classes, emb_dim)

        def res(
            channels: int, out: int | None = None, up: bool = False, down: bool = False
        ) -> ResBlock:
            return ResBlock(
                channels,
                emb_dim,
                c.dropout,
                out,
                c.use_scale_shift_norm,
                up,
                down,
                c.use_checkpoint,
            )

        def attn(channels: int) -> nn.Module:
            heads, dim_head = c.attention_heads(channels)
            if c.use_spatial_transformer:
                return SpatialTransformer(
                    channels,
                    heads,
                    dim_head,
                    c.transformer_depth,
                    c.dropout,
                    c.context_dim,
                    c.use_checkpoint,
                )
            return AttentionBlock(channels, heads, c.use_checkpoint)

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(c.in_channels, mc, 3, padding=1))]
        )
        skip_channels, ch, ds = [mc], mc, 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in c.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(c.channel_mult) - 1:
                down = res(ch, down=True) if c.resblock_updown else Downsample(ch, c.conv_resample)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch), attn(ch), res(ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mc * mult)]
                ch = mc * mult
                if ds in c.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == c.num_res_blocks:
                    layers.append(
                        res(ch, up=True) if c.resblock_updown else Upsample(ch, c.conv_resample)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(mc, c.out_channels, 3, padding=1))
        )

    def _check(
        self, x: Tensor, timesteps: Tensor, context: Tensor | None, y: Tensor | None
    ) -> Tensor:
        c = self.config
        check_tensor(x, "x", ("b", c.in_channels, "h", "w"), like=self, training=self.training)
        b, f = x.shape[0], 2 ** (len(c.channel_mult) - 1)
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"x's height and width must be divisible by 2^(levels − 1) = {f} "
                f"(channel_mult={c.channel_mult}), got {tuple(x.shape[2:])}"
            )
        if (
            not isinstance(timesteps, Tensor)
            or timesteps.dtype == torch.bool
            or timesteps.is_complex()
        ):
            raise TypeError(
                f"timesteps must be a real tensor of DDPM indices (b,) or (), got "
                f"{getattr(timesteps, 'dtype', type(timesteps).__name__)}"
            )
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(b)
        if timesteps.shape != (b,):
            raise ValueError(
                f"timesteps must have shape ({b},) or (), got {tuple(timesteps.shape)}"
            )
        if c.context_dim is None and context is not None:
            raise ValueError(
                "this UNet has no cross-attention (context_dim None): pass context=None"
            )
        if c.context_dim is not None:
            if context is None:
                raise ValueError(
                    f"this UNet cross-attends: context (b, l, {c.context_dim}) is required"
                )
            check_tensor(
                context, "context", (b, "l", c.context_dim), like=self, training=self.training
            )
        if c.num_classes is None and y is not None:
            raise ValueError("this UNet is not class-conditional (num_classes None): pass y=None")
        if c.num_classes is not None:
            if not isinstance(y, Tensor) or y.dtype not in (torch.long, torch.int):
                raise TypeError(
                    f"y must be an integer tensor of class indices ({b},), got "
                    f"{getattr(y, 'dtype', type(y).__name__)}"
                )
            if y.shape != (b,):
                raise ValueError(f"y must have shape ({b},), got {tuple(y.shape)}")
            # read where it costs no host sync (esser_lab.checks; the embedding asserts there)
            if not in_range(y, 0, c.num_classes, training=self.training):
                raise ValueError(f"class labels must lie in 0..{c.num_classes - 1}")
        return timesteps

    def forward(
        self, x: Tensor, timesteps: Tensor, context: Tensor | None = None, y: Tensor | None = None
    ) -> Tensor:
        timesteps = self._check(x, timesteps, context, y)
        t_emb = timestep_embedding(timesteps, self.config.model_channels)
        emb = self.time_embed(t_emb.to(self.time_embed[0].weight.dtype))  # (b, 4·mc)
        if y is not None:
            emb = emb + self.label_emb(y)
        skips, h = [], x
        for module in self.input_blocks:
            h = module(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for module in self.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), emb, context)
        return self.out(h)
