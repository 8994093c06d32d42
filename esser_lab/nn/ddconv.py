"""The convolutional autoencoder of VQGAN, ImageBART, GeoFree and latent diffusion (2021–2022).

One encoder/decoder family, introduced with Taming Transformers (Esser, Rombach & Ommer, CVPR 2021;
``CompVis/taming-transformers``, ``taming/modules/diffusionmodules/model.py``) and reused nearly
unchanged by latent diffusion (``ldm/modules/diffusionmodules/model.py``). Module and parameter
names here are the official ones (``conv_in``, ``down.{i}.block.{j}``, ``down.{i}.attn.{j}``,
``down.{i}.downsample.conv``, ``mid.block_1``, ``mid.attn_1``, ``mid.block_2``, ``norm_out``,
``conv_out``; in the decoder ``up.{i}`` with ``up.0`` the *highest* resolution), so the released
checkpoints load with ``strict=True``.

* ``Normalize``: GroupNorm(32 groups, eps 1e-6, affine); the nonlinearity is swish, x·σ(x).
* ``ResnetBlock``: norm1 → swish → conv1 (3×3) → norm2 → swish → dropout → conv2, plus a 1×1
  ``nin_shortcut`` when the channels change (the 3×3 ``conv_shortcut`` option is unused by every
  released config and left out). The timestep projection ``temb_proj`` of the diffusion version
  is not part of the autoencoder (``temb_ch = 0``).
* ``AttnBlock``: single-head self-attention over all pixels with 1×1 conv ``q``, ``k``, ``v``,
  ``proj_out`` and a residual; computed with ``scaled_dot_product_attention`` (scale C^-½, as the
  code).
* ``Downsample``: pad (0, 1, 0, 1), then 3×3 stride-2 conv without padding; ``Upsample``: nearest
  ×2, then 3×3 conv.

Down-sampling factor f = 2^(len(ch_mult) − 1); images are ``(b, c, h, w)`` in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from esser_lab.nn.attention import attention

__all__ = ["AttnBlock", "Decoder", "Downsample", "Encoder", "Normalize", "ResnetBlock", "Upsample"]


def Normalize(channels: int) -> nn.GroupNorm:  # noqa: N802  (the official name)
    """GroupNorm with 32 groups, eps 1e-6 (needs ``channels`` divisible by 32)."""
    if channels % 32:
        raise ValueError(
            f"Normalize uses 32 groups: channels must be a multiple of 32, got {channels}"
        )
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    """Asymmetric zero pad (right and bottom by one), then a 3×3 stride-2 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class ResnetBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm → swish → 3×3 conv) twice, dropout before conv2."""

    def __init__(
        self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention across the h·w positions, 1×1 conv projections, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = Normalize(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        height = x.shape[2]
        q, k, v = (rearrange(f(h), "b c h w -> b (h w) c") for f in (self.q, self.k, self.v))
        h = attention(q, k, v)  # softmax(q kᵀ / √C) v, one head
        h = rearrange(h, "b (h w) c -> b c h w", h=height)
        return x + self.proj_out(h)


def _check_levels(ch_mult: tuple[int, ...], num_res_blocks: int, resolution: int) -> None:
    if not ch_mult:
        raise ValueError("ch_mult must name at least one level")
    if num_res_blocks < 0 or (num_res_blocks == 0 and len(set(ch_mult)) > 1):
        raise ValueError(
            "the encoder changes width inside its residual blocks: num_res_blocks must be ≥ 1 "
            f"when ch_mult changes ({ch_mult}), and never negative; got {num_res_blocks}"
        )
    f = 2 ** (len(ch_mult) - 1)
    if resolution % f:
        raise ValueError(
            f"resolution {resolution} is not divisible by the down-sampling factor {f}"
        )


class _Level(nn.Module):
    """One resolution level: ``block``, ``attn`` and an optional ``downsample``/``upsample``."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image ``(b, in_channels, R, R)`` → latent ``(b, z, R/f, R/f)``, z = 2·z_channels if double_z.

    Args follow the official ``ddconfig``: ``ch`` (base width), ``ch_mult`` (width multiplier per
    level), ``num_res_blocks`` (per level), ``attn_resolutions`` (feature-map sides that get an
    AttnBlock after each ResnetBlock), ``resolution`` (input side), ``z_channels``, ``double_z``
    (mean and log-variance for the KL autoencoder of latent diffusion).
    """

    def __init__(
        self,
        *,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        attn_resolutions: tuple[int, ...],
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_levels(ch_mult, num_res_blocks, resolution)
        self.in_channels, self.resolution = in_channels, resolution
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        widths = (1, *ch_mult)
        size = resolution
        self.down = nn.ModuleList()
        for i, mult in enumerate(ch_mult):
            level = _Level()
            c_in = ch * widths[i]
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(c_in, ch * mult, dropout))
                c_in = ch * mult
                if size in attn_resolutions:
                    level.attn.append(AttnBlock(c_in))
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(c_in)
                size //= 2
            self.down.append(level)
        self.mid = _Mid(c_in, dropout)
        self.norm_out = Normalize(c_in)
        self.conv_out = nn.Conv2d(c_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % 2 ** (len(self.down) - 1):
            raise ValueError(
                f"Encoder expects images (batch, {self.in_channels}, h, w) with h and w divisible "
                f"by {2 ** (len(self.down) - 1)}, got {tuple(x.shape)}"
            )
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent ``(b, z_channels, R/f, R/f)`` → image ``(b, out_ch, R, R)`` (no output tanh).

    Each level has ``num_res_blocks + 1`` ResnetBlocks; ``up.0`` is the highest resolution
    (the code builds the levels from the bottom up and inserts each at the front).
    """

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        attn_resolutions: tuple[int, ...],
        resolution: int,
        z_channels: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_levels(ch_mult, num_res_blocks, resolution)
        self.z_channels = z_channels
        c_in = ch * ch_mult[-1]
        size = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, c_in, 3, 1, 1)
        self.mid = _Mid(c_in, dropout)
        levels: list[_Level] = []
        for i in reversed(range(len(ch_mult))):
            level = _Level()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock(c_in, ch * ch_mult[i], dropout))
                c_in = ch * ch_mult[i]
                if size in attn_resolutions:
                    level.attn.append(AttnBlock(c_in))
            if i != 0:
                level.upsample = Upsample(c_in)
                size *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(c_in)
        self.conv_out = nn.Conv2d(c_in, out_ch, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 4 or z.shape[1] != self.z_channels:
            raise ValueError(
                f"Decoder expects latents (batch, {self.z_channels}, h, w), got {tuple(z.shape)}"
            )
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))
