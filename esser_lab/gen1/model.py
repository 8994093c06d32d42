"""The spatio-temporal latent video UNet of Gen-1 (chapter 16).

Esser, Chiu, Atighehchian, Granskog & Germanidis, *Structure and Content-Guided Video Synthesis
with Diffusion Models* (ICCV 2023; arXiv 2302.03011), Sec. 3.2–3.3. No official code was
released: this is our reading of the paper, built on chapter 14's image UNet
(:class:`esser_lab.nn.unet.UNetModel`, whose parameters stay under ``unet.*`` with the official
LDM/SD names, so Stable Diffusion weights load into it unchanged).

Sec. 3.2: every residual block gets a 1-D **temporal convolution** after each of its two 2-D
spatial convolutions, and every spatial transformer a 1-D **temporal self-attention** over the
frames (with a learned frame-position encoding) after it. Both are residual and their last layer
is zero-initialised, so at initialisation the video model *is* the image model applied frame by
frame. The temporal layers run only for videos: an image is a one-frame video, and
``temporal=False`` switches them off for any number of frames, which gives, with the *same*
parameters, the per-frame image model μ_π of the temporal guidance (Sec. 3.4).

Sec. 3.3: the **structure** s (depth, blurred by t_s iterations, on the latent grid) is
concatenated to z_t along the channels; the **content** c (the CLIP image embedding of one frame,
a stand-in at tiny size: :mod:`esser_lab.gen1.method`) is a token the UNet cross-attends to
(beside a zero token, :meth:`Gen1UNet.context`).

Conventions a reader could get wrong:

* videos are ``(b, f, c, h, w)`` (frames second); the network folds frames into the batch for
  its spatial layers, ``(b f) c h w``, and unfolds them for the temporal ones, ``(b h w) c f``;
* ``timesteps`` are DDPM indices 0..T−1 as chapter 14's UNet takes them, one per clip;
* the time embedding and the content token are shared by every frame of a clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, check_positive
from esser_lab.nn.spatial_transformer import CrossAttention, maybe_checkpoint, zero_module
from esser_lab.nn.unet import ResBlock, SpatialTransformer, UNetModel, timestep_embedding
from esser_lab.nn.unet_config import UNetConfig

__all__ = [
    "Gen1Config",
    "Gen1UNet",
    "TemporalAttention",
    "TemporalConv",
    "count_parameters",
]


@dataclass(frozen=True)
class Gen1Config:
    """The video model: chapter 14's image ``unet`` (its ``in_channels`` = latent channels + the
    ``structure_channels`` of depth; ``context_dim`` = the content embedding's width), the number
    of ``frames`` the learned frame-position encoding covers, the temporal conv's kernel, and the
    largest structure blur ``max_t_s``.

    Defaults (:meth:`paper`): Stable Diffusion's UNet (SD 1.x widths 320·(1, 2, 4, 4), chapter
    14's ``UNetConfig.stable_diffusion_v1``) on 4-channel latents plus one depth channel, the
    768-d CLIP ViT-L/14 image embedding as the context token (beside a zero token), 8-frame
    clips, ε-prediction. [check] The paper initialises from a latent text-to-image model of
    the SD family without naming its version in the text we had; SD 1.x is the UNet chapter
    14 loads, so its weights can start the spatial layers
    (:func:`esser_lab.gen1.checkpoint.init_gen1_from_sd`), and its context width 768 is the
    CLIP ViT-L/14 image embedding's (:mod:`esser_lab.gen1.pretrained`). ``max_t_s`` = 7
    [recall: the paper samples t_s uniformly from 0..7].
    """

    unet: UNetConfig = replace(
        UNetConfig.stable_diffusion_v1(), in_channels=5, out_channels=4, image_size=64
    )
    structure_channels: int = 1
    frames: int = 8
    temporal_kernel: int = 3
    max_t_s: int = 7
    # ε as the paper (Eq. 6); "v" is the toy's change (chapter 16 says why)
    parameterization: Literal["eps", "v"] = "eps"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("structure_channels", "frames", "temporal_kernel"))
        if self.temporal_kernel % 2 == 0:
            raise ValueError(
                f"temporal_kernel must be odd (same padding), got {self.temporal_kernel}"
            )
        if self.max_t_s < 0:
            raise ValueError(f"max_t_s must be ≥ 0, got {self.max_t_s}")
        if self.unet.context_dim is None:
            raise ValueError("Gen-1 cross-attends to the content: unet.context_dim must be set")
        if self.unet.in_channels != self.latent_channels + self.structure_channels:
            raise ValueError(
                f"unet.in_channels ({self.unet.in_channels}) must be the latent channels "
                f"(unet.out_channels = {self.unet.out_channels}) + structure_channels "
                f"({self.structure_channels})"
            )

    @property
    def latent_channels(self) -> int:
        """The channels of z (the UNet's output)."""
        return self.unet.out_channels

    @property
    def content_dim(self) -> int:
        """The width of the content embedding c (the UNet's cross-attention context)."""
        return int(self.unet.context_dim)  # type: ignore[arg-type]

    @classmethod
    def paper(cls) -> Gen1Config:
        """SD-based Gen-1 (see the class docstring); build it on the meta device."""
        return cls()

    @classmethod
    def small(cls, content_dim: int = 32) -> Gen1Config:
        """32×32 clips folded 2×2 into 12-channel 16×16 latents (+ 1 depth channel) on one GPU:
        widths 64/128/128, attention at ds 2 and 4, a ``content_dim`` content code as the
        context token (beside a zero token)."""
        unet = replace(
            UNetConfig.small(),
            in_channels=13,
            out_channels=12,
            image_size=16,
            model_channels=64,
            context_dim=content_dim,
        )
        return replace(cls(), unet=unet)

    @classmethod
    def tiny(cls, content_dim: int = 32) -> Gen1Config:
        """16×16 clips folded 2×2 into 12-channel 8×8 latents (+ 1 depth channel) on 2 CPU
        cores: chapter 14's ``UNetConfig.tiny`` (widths 32/64, one block per level) with its
        transformers (2 heads of 32, the ``content_dim`` content code as context) at the 8×8
        level and in the middle block, 8 frames, t_s up to 5. Measured: with the middle block's
        transformer alone the content was still ignored after 400 steps; with the 8×8 level
        it is read after about 300."""
        unet = replace(
            UNetConfig.tiny(),
            in_channels=13,
            out_channels=12,
            image_size=8,
            attention_resolutions=(1,),
            context_dim=content_dim,
        )
        return replace(cls(), unet=unet, max_t_s=5)


class TemporalConv(nn.Module):
    """x + Conv1d_f(x): a 1-D convolution over the frames at every pixel (Sec. 3.2), zero-init.

    ``conv`` is Conv1d(C, C, k, padding k // 2) on ``(b h w) c f``; its weight and bias start at
    zero so the block is the identity until it trains. [choice] No norm or activation before
    it: the paper's text names only the convolution.
    """

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = zero_module(nn.Conv1d(channels, channels, kernel, padding=kernel // 2))

    def forward(self, x: Tensor, frames: int) -> Tensor:
        height, width = x.shape[-2:]
        h = rearrange(x, "(b f) c h w -> (b h w) c f", f=frames)
        h = self.conv(h)
        return x + rearrange(h, "(b h w) c f -> (b f) c h w", h=height, w=width)


class TemporalAttention(nn.Module):
    """x + Attn_f(LN(x) + p): self-attention over the frames at every pixel (Sec. 3.2).

    [choice] It runs after the *whole* spatial transformer block (spatial self-attention,
    cross-attention and feed-forward), as one attention with no feed-forward of its own: the
    paper places a temporal attention after each spatial attention; where exactly inside the
    transformer, and whether it has a feed-forward, is our reading.

    ``pos`` is the learned frame-position encoding (max_frames, C); ``attn`` the book's
    :class:`~esser_lab.nn.spatial_transformer.CrossAttention` used as self-attention, its output
    projection ``attn.to_out.0`` zero-initialised. [choice] The encoding is added after the
    LayerNorm, so it enters the queries and keys but not the residual stream.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, max_frames: int) -> None:
        super().__init__()
        self.max_frames = max_frames
        self.norm = nn.LayerNorm(channels)
        self.pos = nn.Parameter(torch.randn(max_frames, channels) * 0.02)
        self.attn = CrossAttention(channels, None, heads, dim_head)
        zero_module(self.attn.to_out[0])

    def forward(self, x: Tensor, frames: int) -> Tensor:
        if frames > self.max_frames:
            raise ValueError(
                f"the frame-position encoding covers {self.max_frames} frames, got {frames}"
            )
        height, width = x.shape[-2:]
        h = rearrange(x, "(b f) c h w -> (b h w) f c", f=frames)
        h = self.attn(self.norm(h) + self.pos[:frames])
        return x + rearrange(h, "(b h w) f c -> (b f) c h w", h=height, w=width)


class Gen1UNet(nn.Module):
    """ε_θ(z_t, t, s, c) on videos: ``(b, f, latent, h, w)`` → ``(b, f, latent, h, w)``.

    ``unet`` is chapter 14's image UNet (official key names); ``temporal_input``,
    ``temporal_middle`` and ``temporal_output`` mirror its ``input_blocks``, ``middle_block`` and
    ``output_blocks`` layer by layer: a ``ModuleList`` of two :class:`TemporalConv` beside each
    ``ResBlock``, a :class:`TemporalAttention` beside each ``SpatialTransformer``, an
    ``nn.Identity`` beside anything else (convs, up/down-sampling).
    """

    def __init__(self, config: Gen1Config) -> None:
        super().__init__()
        if not isinstance(config, Gen1Config):
            raise TypeError(f"config must be a Gen1Config, got {type(config).__name__}")
        self.config = config
        self.unet = UNetModel(config.unet)
        self.temporal_input = nn.ModuleList(self._mirror(b) for b in self.unet.input_blocks)
        self.temporal_middle = self._mirror(self.unet.middle_block)
        self.temporal_output = nn.ModuleList(self._mirror(b) for b in self.unet.output_blocks)

    def _mirror(self, block: nn.Sequential) -> nn.ModuleList:
        c, layers = self.config, []
        for layer in block:
            if isinstance(layer, ResBlock):
                channels = layer.out_layers[-1].out_channels
                first = layer.in_layers[-1].out_channels
                layers.append(
                    nn.ModuleList(
                        [
                            TemporalConv(first, c.temporal_kernel),
                            TemporalConv(channels, c.temporal_kernel),
                        ]
                    )
                )
            elif isinstance(layer, SpatialTransformer):
                channels = layer.proj_out.out_channels
                heads, dim_head = c.unet.attention_heads(channels)
                layers.append(TemporalAttention(channels, heads, dim_head, c.frames))
            else:
                layers.append(nn.Identity())
        return nn.ModuleList(layers)

    # ---- one block -------------------------------------------------------------------------------

    @staticmethod
    def _resblock(
        layer: ResBlock, convs: nn.ModuleList, x: Tensor, emb: Tensor, frames: int, on: bool
    ) -> Tensor:
        """chapter 14's ``ResBlock._forward`` with a temporal conv after each spatial conv."""
        if layer.updown:
            h = layer.h_upd(layer.in_layers[:-1](x))
            x = layer.x_upd(x)
            h = layer.in_layers[-1](h)
        else:
            h = layer.in_layers(x)
        if on:
            h = convs[0](h, frames)
        emb_out = rearrange(layer.emb_layers(emb).to(h.dtype), "b c -> b c 1 1")
        if layer.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = layer.out_layers[1:](layer.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = layer.out_layers(h + emb_out)
        if on:
            h = convs[1](h, frames)
        return layer.skip_connection(x) + h

    def _block(
        self,
        block: nn.Sequential,
        temporal: nn.ModuleList,
        h: Tensor,
        emb: Tensor,
        context: Tensor,
        frames: int,
        on: bool,
    ) -> Tensor:
        for layer, extra in zip(block, temporal, strict=True):
            if isinstance(layer, ResBlock):
                h = maybe_checkpoint(
                    layer.use_checkpoint,
                    lambda x, e, l=layer, t=extra: self._resblock(l, t, x, e, frames, on),
                    h,
                    emb,
                )
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
                if on:
                    h = extra(h, frames)
            else:
                h = layer(h)
        return h

    # ---- the network -----------------------------------------------------------------------------

    def _check(self, z_t: Tensor, timesteps: Tensor, structure: Tensor, content: Tensor) -> None:
        c = self.config
        z_t = check_tensor(z_t, "z_t", ("b", "f", c.latent_channels, "h", "w"), like=self)
        b, f, _, h, w = z_t.shape
        if f > c.frames:
            raise ValueError(f"at most {c.frames} frames (the position encoding's), got {f}")
        check_tensor(structure, "structure", (b, f, c.structure_channels, h, w), like=self)
        check_tensor(content, "content", (b, c.content_dim), like=self)
        if not isinstance(timesteps, Tensor) or timesteps.shape not in ((b,), ()):
            got = tuple(timesteps.shape) if isinstance(timesteps, Tensor) else timesteps
            raise ValueError(f"timesteps must be DDPM indices of shape ({b},) or (), got {got}")

    def forward(
        self,
        z_t: Tensor,
        timesteps: Tensor,
        structure: Tensor,
        content: Tensor,
        temporal: bool = True,
    ) -> Tensor:
        """ε̂ for ``z_t`` (b, f, latent, h, w) at DDPM indices ``timesteps`` (b,), with the
        ``structure`` (b, f, 1, h, w) on the latent grid and the ``content`` (b, content_dim).

        The temporal layers run when ``temporal`` and f > 1; otherwise every frame goes through
        the image UNet on its own (μ_π; an image is a video of one frame).
        """
        self._check(z_t, timesteps, structure, content)
        b, f = z_t.shape[:2]
        on = temporal and f > 1
        x = rearrange(torch.cat([z_t, structure], dim=2), "b f c h w -> (b f) c h w")
        timesteps = timesteps.expand(b) if timesteps.dim() == 0 else timesteps
        unet, mc = self.unet, self.config.unet.model_channels
        t_emb = timestep_embedding(repeat(timesteps, "b -> (b f)", f=f), mc)
        emb = unet.time_embed(t_emb.to(unet.time_embed[0].weight.dtype))  # ((b f), 4·mc)
        context = repeat(self.context(content), "b l d -> (b f) l d", f=f)
        skips, h = [], x
        for block, temporal_block in zip(unet.input_blocks, self.temporal_input, strict=True):
            h = self._block(block, temporal_block, h, emb, context, f, on)
            skips.append(h)
        h = self._block(unet.middle_block, self.temporal_middle, h, emb, context, f, on)
        for block, temporal_block in zip(unet.output_blocks, self.temporal_output, strict=True):
            h = self._block(
                block, temporal_block, torch.cat([h, skips.pop()], 1), emb, context, f, on
            )
        return rearrange(unet.out(h), "(b f) c h w -> b f c h w", f=f)

    @staticmethod
    def context(content: Tensor) -> Tensor:
        """The cross-attention tokens (b, 2, d) of the content (b, d): the content and an
        all-zero token. [choice, toy only] With one key the softmax is 1 at every position, so the
        cross-attention adds the same vector at every position (which the transformer's
        per-position LayerNorm and feed-forward still transform, so it is not lost; but it cannot
        differ between positions); against a zero key the attention can weigh the content per
        position. The paper's CLIP content would arrive as its own token(s): ``paper()`` users
        who load SD weights should revisit this."""
        return torch.stack([content, torch.zeros_like(content)], dim=1)

    def temporal_parameters(self) -> list[nn.Parameter]:
        """The parameters the video extension adds (the rest are the image UNet's)."""
        return [
            p
            for name, p in self.named_parameters()
            if name.startswith(("temporal_input", "temporal_middle", "temporal_output"))
        ]


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (works on the meta device)."""
    return sum(p.numel() for p in model.parameters())
