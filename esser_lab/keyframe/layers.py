"""The layers of the two streams (chapter 15): latents, windowed read/write, attention, warp.

Esser, Michael & Sengupta 2022, *Towards Unified Keyframe Propagation Models* (CVPR 2022
workshops, arXiv 2205.09731): the global stream (latents that read local windows of the feature
map, attend across frames, and write back) and the local stream (deformable aggregation of
flow-warped keyframe features gated by the flow error) of its method; the paper's section and
equation numbers are not cited here because its text could not be checked, only the code.
Written from the released ``gi/modules/gi/lama_guided.py`` with its submodule names
(``LatentInitLayer``, ``LocalReadLayer``, ``AttentionLayer``, ``LocalWriteLayer``,
``DeformableWriteLayer``).

Conventions a reader could get wrong:

* the read is not query–key attention: each of ``heads`` logit maps is soft-maxed over the pixels
  of one latent's window (the latents' own values do not steer it); the write gates each pixel's
  share of its window's latent by a *sigmoid*, not a softmax;
* latent ``i`` owns window ``i`` in row-major order of a ``n × n`` grid over the feature map;
* flow is backward, in pixels of the image it was computed on: target pixel p shows the keyframe
  point at p + flow; the warp rescales it to the feature map and samples with zero padding and
  ``align_corners=True`` (official ``resized_flow_sample``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from esser_lab.nn.attention import attention

__all__ = [
    "DeformableWrite",
    "LatentAttention",
    "LatentInit",
    "LocalRead",
    "LocalWrite",
    "fourier_positions",
    "warp_features",
]


def fourier_positions(h: int, w: int, bands: int, resolution: int) -> Tensor:
    """Perceiver's Fourier position features of an h×w grid: (2 + 4·bands, h, w).

    Positions in [−1, 1] (row first), frequencies ``linspace(1, resolution / 2, bands)``; the
    channels are [y, x, sin(π f y)…, sin(π f x)…, cos(π f y)…, cos(π f x)…] (258 at the paper's
    64 bands)."""
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)  # (h, w, 2)
    freqs = torch.linspace(1.0, resolution / 2, bands)
    phase = rearrange(pos[..., None] * freqs, "h w d k -> h w (d k)")
    feats = torch.cat((pos, torch.sin(math.pi * phase), torch.cos(math.pi * phase)), dim=-1)
    return rearrange(feats, "h w c -> c h w")


class LatentInit(nn.Module):
    """Learned latents (n², d) and a 1×1 projection of [features, Fourier positions]."""

    def __init__(self, channels: int, num_latents_sqrt: int, bands: int, resolution: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents_sqrt**2, channels))
        self.bands, self.resolution = bands, resolution
        self.project = nn.Conv2d(channels + 2 + 4 * bands, channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        pos = fourier_positions(h, w, self.bands, self.resolution).to(x)
        x = self.project(torch.cat((x, repeat(pos, "c h w -> b c h w", b=b)), dim=1))
        return x, repeat(self.latents, "l d -> b l d", b=b)


class MLP(nn.Module):
    """dense1 → GELU → dense2 (Linear, or 1×1 convolutions on feature maps); widening 1."""

    def __init__(self, width: int, conv: bool = False) -> None:
        super().__init__()
        layer = (lambda: nn.Conv2d(width, width, 1)) if conv else (lambda: nn.Linear(width, width))
        self.dense1, self.dense2 = layer(), layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.dense2(F.gelu(self.dense1(x)))


class LocalRead(nn.Module):
    """Latent i ← softmax-weighted sum of the pixels of window i, per head (``LocalReadLayer``).

    z ← z + W_p LN(read); z ← z + MLP(LN(z))."""

    def __init__(self, channels: int, num_latents_sqrt: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} read heads")
        self.n, self.heads = num_latents_sqrt, heads
        self.ln1, self.ln2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.mlp = MLP(channels)
        self.to_logits = nn.Conv2d(channels, heads, 1)
        self.to_values = nn.Conv2d(channels, channels, 1)
        self.projection = nn.Linear(channels, channels)

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        n = self.n
        logits = rearrange(self.to_logits(x), "b nh (i p) (j q) -> b nh (i j) (p q)", i=n, j=n)
        values = rearrange(
            self.to_values(x), "b (nh c) (i p) (j q) -> b nh (i j) (p q) c", nh=self.heads, i=n, j=n
        )
        weights = logits.softmax(dim=-1)  # over the pixels of each window
        read = torch.einsum("bhlp,bhlpc->blhc", weights, values)
        z = z + self.projection(self.ln1(rearrange(read, "b l nh c -> b l (nh c)")))
        return z + self.mlp(self.ln2(z))


class LocalWrite(nn.Module):
    """Pixel p ← sigmoid(logit_h(p)) · value_h(latent of p's window), per head
    (``LocalWriteLayer``). x ← x + W_p BN(write); x ← x + MLP(BN(x))."""

    def __init__(self, channels: int, num_latents_sqrt: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} write heads")
        self.n, self.heads = num_latents_sqrt, heads
        self.ln1, self.ln2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)
        self.mlp = MLP(channels, conv=True)
        self.to_logits = nn.Conv2d(channels, heads, 1)
        self.to_values = nn.Linear(channels, channels)
        self.projection = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        n, (h, w) = self.n, x.shape[-2:]
        gate = torch.sigmoid(self.to_logits(x))  # (b, nh, h, w)
        values = rearrange(self.to_values(z), "b (i j) (nh c) -> b nh c i j", i=n, nh=self.heads)
        values = repeat(values, "b nh c i j -> b nh c (i p) (j q)", p=h // n, q=w // n)
        write = rearrange(gate[:, :, None] * values, "b nh c h w -> b (nh c) h w")
        x = x + self.projection(self.ln1(write))
        return x + self.mlp(self.ln2(x))


class PerceiverAttention(nn.Module):
    """LN → q, k, v projections → attention over [own tokens; extra keys/values]."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.layernorm1 = nn.LayerNorm(width)
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))

    def forward(
        self, z: Tensor, extra: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        z = self.layernorm1(z)
        q, k, v = self.query(z), self.key(z), self.value(z)  # (b, l, (nh hd))
        own = (k, v)
        if extra is not None:  # the keyframes' keys and values: cross-frame attention
            k, v = torch.cat((k, extra[0]), dim=1), torch.cat((v, extra[1]), dim=1)
        return attention(q, k, v, heads=self.heads), own


class LatentAttention(nn.Module):
    """Pre-LN transformer layer over the latents (``AttentionLayer``); in the target pass its
    keys and values are extended by the keyframes' (the global propagation)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"latent width {width} does not split into {heads} heads")
        self.attn = PerceiverAttention(width, heads)
        self.projection = nn.Linear(width, width)
        self.ln_premlp = nn.LayerNorm(width)
        self.mlp = MLP(width)

    def forward(
        self, z: Tensor, extra: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Returns the new latents and this pass's own (keys, values), each (b, l, d)."""
        update, own = self.attn(z, extra)
        z = z + self.projection(update)
        return z + self.mlp(self.ln_premlp(z)), own


def warp_features(features: Tensor, flow: Tensor) -> Tensor:
    """Sample ``features`` (n, c, h, w) at p + flow, ``flow`` (n, 2, H, W) in pixels of an H×W
    image, resized to h×w and rescaled (official ``resized_flow_sample``: zero padding,
    ``align_corners=True``)."""
    n, _, h, w = features.shape
    if flow.shape[-2:] != (h, w):
        sy, sx = h / flow.shape[-2], w / flow.shape[-1]
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=True)
        flow = flow * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device)[:, None, None]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    grid = torch.stack((gx, gy), dim=-1)  # (n, h, w, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class DeformableWrite(nn.Module):
    """Local propagation (``DeformableWriteLayer``): keyframe features warped to the
    target by the flow, with the flow error e and the target's features x:

    q_f = W_q [warp_f, e_f, x],  v_f = W_v [warp_f, e_f],  x ← x + Σ_f softmax_f(q_f) ⊙ v_f

    (softmax over the keyframes f, per pixel and channel: the layer learns where each keyframe's
    warp can be trusted)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.q = nn.Conv2d(2 * channels + 1, channels, 1)
        self.v = nn.Conv2d(channels + 1, channels, 1)

    def gate(self, x: Tensor, keys: Tensor, flows: Tensor, errors: Tensor) -> tuple[Tensor, Tensor]:
        """The softmax weights and values, each (b, f, c, h, w)."""
        b, f, c, h, w = keys.shape
        warped = warp_features(
            rearrange(keys, "b f c h w -> (b f) c h w"),
            rearrange(flows, "b f c H W -> (b f) c H W"),
        )
        error = F.interpolate(
            rearrange(errors, "b f c H W -> (b f) c H W"),
            size=(h, w),
            mode="bilinear",
            align_corners=True,
        )
        stacked = torch.cat((warped, error, repeat(x, "b c h w -> (b f) c h w", f=f)), dim=1)
        q = rearrange(self.q(stacked), "(b f) c h w -> b f c h w", f=f)
        v = rearrange(self.v(stacked[:, : c + 1]), "(b f) c h w -> b f c h w", f=f)
        return q.softmax(dim=1), v

    def forward(self, x: Tensor, keys: Tensor, flows: Tensor, errors: Tensor) -> Tensor:
        weights, values = self.gate(x, keys, flows, errors)
        return x + (weights * values).sum(dim=1)
