"""The two-stream keyframe propagation generator (chapter 15).

Esser, Michael & Sengupta 2022, *Towards Unified Keyframe Propagation Models* (CVPR 2022
workshops, arXiv 2205.09731), its two-stream method; written from the released ``GIResNetGenerator``
(runwayml/guided-inpainting, ``gi/modules/gi/lama_guided.py``, ``configs/ours.yaml``). A LaMa
encoder/decoder (Suvorov et al. 2022) around a bottleneck with two streams:

* the **local stream**: the feature map x (b, c, h, w), FFC residual blocks, and, in the first
  ``n_cross`` blocks, a :class:`~esser_lab.keyframe.layers.DeformableWrite` that adds the
  keyframes' flow-warped features, gated by the flow error (high-frequency detail);
* the **global stream**: n×n latents z (b, n², c) that read their windows of x, attend to each
  other and, in the first ``n_cross`` blocks, to the keyframes' latents, and write back
  (low-frequency content, robust to large motion and wrong flow).

Conventions a reader could get wrong:

* images are in [0, 1] (the official flow module's ``input_range: "01"``); the input is the
  masked image and its hole mask (4 channels: RGB·(1 − m), m with m = 1 in the hole), the
  keyframes the same (their masks zero where nothing is missing); the output is a sigmoid, and
  :func:`esser_lab.keyframe.method.composite` keeps the known pixels;
* flows are backward (target → keyframe), in pixels of the input image, (b, f, 2, H, W); the flow
  error (b, f, 1, H, W) is ≥ 0, large where the flow is unreliable;
* the keyframes go through the encoder in one batch with the target (shared BatchNorm statistics
  in training, as the official code), then through the first ``n_cross`` blocks on their own.

``streams`` switches the two propagation paths for the ablations: ``()`` uses no keyframe at all,
``("global",)`` only the cross-frame attention, ``("local",)`` only the deformable write.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.config import check_fields, check_positive
from esser_lab.keyframe.ffc import FFCResnetBlock, ResidualConvBlock
from esser_lab.keyframe.layers import (
    DeformableWrite,
    LatentAttention,
    LatentInit,
    LocalRead,
    LocalWrite,
)

__all__ = ["GIBlock", "KeyframeConfig", "KeyframeGenerator", "count_parameters"]

STREAMS = ("global", "local")


@dataclass(frozen=True)
class KeyframeConfig:
    """The generator's architecture; defaults = ``configs/ours.yaml`` (:meth:`paper`)."""

    image_size: int = 256  # training crops (out_size); the network is convolutional
    input_nc: int = 4  # RGB + hole mask (concat_mask: true)
    output_nc: int = 3
    ngf: int = 64
    n_downsampling: int = 3
    max_features: int = 1024
    n_blocks: int = 4  # GIBlocks
    block_type: Literal["ffc", "conv"] = "ffc"  # ours.yaml / ours_no_ffc.yaml
    ffc_ratio: float = 0.75  # ratio_gin = ratio_gout; enable_lfu false
    num_groups: int = 4  # groups of the plain 3×3 convs (block_type "conv")
    num_latents_sqrt: int = 16  # 16×16 latents, each reading a 2×2 window of the 32×32 map
    read_write_heads: int = 8
    num_heads: int = 8  # heads of the latent attention
    pos_bands: int = 64  # Fourier position features: 2 + 4·64 = 258 channels
    pos_resolution: int = 32  # their max_resolution (official: fixed (32, 32))
    n_cross: int = 2  # blocks with cross-frame attention and deformable writes
    streams: tuple[str, ...] = STREAMS

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("image_size", "ngf", "n_blocks", "n_cross"))
        check_positive(self, ("n_downsampling",), minimum=0)
        check_positive(self, ("num_latents_sqrt", "read_write_heads", "num_heads", "pos_bands"))
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be distinct names from {STREAMS}, got {self.streams}")
        if self.n_cross > self.n_blocks:
            raise ValueError(f"n_cross ({self.n_cross}) exceeds n_blocks ({self.n_blocks})")
        side = self.feature_size
        if self.image_size % 2**self.n_downsampling or side % self.num_latents_sqrt:
            raise ValueError(
                f"image_size {self.image_size} must divide by 2^{self.n_downsampling} into a "
                f"feature map whose side divides by num_latents_sqrt {self.num_latents_sqrt}"
            )

    @property
    def width(self) -> int:
        """The bottleneck's channels = the latents' width (official: d_latents 512 = 512)."""
        return min(self.max_features, self.ngf * 2**self.n_downsampling)

    @property
    def feature_size(self) -> int:
        return self.image_size // 2**self.n_downsampling

    @classmethod
    def paper(cls) -> KeyframeConfig:
        """``configs/ours.yaml``: 256² crops, ngf 64, 3 downsamplings, 512-ch, 4 GIBlocks."""
        return cls()

    @classmethod
    def small(cls) -> KeyframeConfig:
        """32×32 frames, 1 downsampling to a 16×16×64 map, 8×8 latents over 2×2 windows (the
        paper's window), 2 blocks with the keyframes in the first (the paper's 2 of 4)."""
        return replace(
            cls(),
            image_size=32,
            ngf=32,
            n_downsampling=1,
            n_blocks=2,
            n_cross=1,
            num_latents_sqrt=8,
            read_write_heads=4,
            num_heads=4,
            pos_bands=8,
            pos_resolution=16,
        )

    @classmethod
    def tiny(cls) -> KeyframeConfig:
        """16×16 frames: the streams run on the frame's own grid (no downsampling: the whole
        frame is smaller than the paper's 32×32 map, and a coarser map cannot carry the
        texture), 16 channels, 4×4 latents over 4×4 windows (each latent summarises 4×4×16
        values in 16: 16:1, the paper's 2×2×512 in 512 is 4:1), plain 3×3 blocks
        (``ours_no_ffc.yaml``). The 4×4 latent grid is our choice for the budget (fewer
        latents, a cheaper cross-attention); the paper's 4:1 ratio is the ``small`` preset's
        (8×8 latents over 2×2 windows)."""
        return replace(
            cls.small(),
            image_size=16,
            ngf=16,
            n_downsampling=0,
            num_latents_sqrt=4,
            block_type="conv",
        )


class ConvNormAct(nn.Module):
    """conv → BatchNorm → ReLU, reflect padding, no bias (official ``CONV_NORM_ACT``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride, padding, bias=False, padding_mode="reflect"
        )
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class GIBlock(nn.Module):
    """One bottleneck block: read → attn1 (cross-frame) → attn2 on the latents; two local
    blocks on the map; write (official ``GIBlock``)."""

    def __init__(self, config: KeyframeConfig) -> None:
        super().__init__()
        c, n = config.width, config.num_latents_sqrt
        self.read = LocalRead(c, n, config.read_write_heads)
        self.write = LocalWrite(c, n, config.read_write_heads)
        self.attn1 = LatentAttention(c, config.num_heads)
        self.attn2 = LatentAttention(c, config.num_heads)
        if config.block_type == "ffc":
            self.block1, self.block2 = (FFCResnetBlock(c, config.ffc_ratio) for _ in range(2))
        else:
            self.block1, self.block2 = (ResidualConvBlock(c, config.num_groups) for _ in range(2))

    def forward(
        self, x: Tensor, z: Tensor, extra: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """(map, latents, attn1's own keys/values); ``extra``: the keyframes' keys/values."""
        z = self.read(z, x)
        z, own = self.attn1(z, extra)
        z, _ = self.attn2(z)
        x = self.block2(self.block1(x))
        return self.write(x, z), z, own


class DropLatent(nn.Module):
    """Keeps the map, drops the latents (a placeholder that keeps the official indices)."""

    def forward(self, pair: tuple[Tensor, Tensor]) -> Tensor:
        return pair[0]


class KeyframeGenerator(nn.Module):
    """The official ``GIResNetGenerator`` with ``streams`` switches; keys match ``generator.*``.

    ``model`` is an ``nn.Sequential`` only to keep the official parameter indices
    (``model.1.conv.weight`` … ``model.21.weight``); :meth:`forward` calls its parts in turn.
    """

    def __init__(self, config: KeyframeConfig) -> None:
        super().__init__()
        self.config = c = config
        ngf, top = c.ngf, c.max_features
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), ConvNormAct(c.input_nc, ngf, 7, 1, 0)]
        for i in range(c.n_downsampling):
            layers.append(ConvNormAct(min(top, ngf * 2**i), min(top, ngf * 2 ** (i + 1)), 3, 2, 1))
        layers.append(LatentInit(c.width, c.num_latents_sqrt, c.pos_bands, c.pos_resolution))
        self.first_block = len(layers)
        layers += [GIBlock(c) for _ in range(c.n_blocks)]
        layers.append(DropLatent())
        for i in range(c.n_downsampling):
            mult = 2 ** (c.n_downsampling - i)
            c_in, c_out = min(top, ngf * mult), min(top, ngf * mult // 2)
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, c.output_nc, 7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)
        if "local" in c.streams:
            self.deformable_writes = nn.ModuleList(
                DeformableWrite(c.width) for _ in range(c.n_cross)
            )
        self.apply(_init_weights)

    @property
    def blocks(self) -> list[GIBlock]:
        return list(self.model[self.first_block : self.first_block + self.config.n_blocks])

    def _check(
        self, image: Tensor, keys: Tensor, flows: Tensor | None, errors: Tensor | None
    ) -> None:
        c = self.config
        if image.dim() != 4 or image.shape[1] != c.input_nc:
            raise ValueError(
                f"image must be (b, {c.input_nc}, H, W) (masked RGB + mask), "
                f"got {tuple(image.shape)}"
            )
        b, _, h, w = image.shape
        if keys.dim() != 5 or keys.shape[0] != b or keys.shape[2:] != image.shape[1:]:
            raise ValueError(
                f"keyframes must be (b, f, {c.input_nc}, H, W) = ({b}, f, {c.input_nc}, {h}, {w}), "
                f"got {tuple(keys.shape)}"
            )
        if keys.shape[1] < 1:
            raise ValueError("need at least one keyframe (f ≥ 1)")
        f = keys.shape[1]
        if "local" in c.streams:
            for name, t, ch in (("flows", flows, 2), ("flow_errors", errors, 1)):
                if t is None or t.dim() != 5 or tuple(t.shape[:3]) != (b, f, ch):
                    got = None if t is None else tuple(t.shape)
                    raise ValueError(
                        f"{name} must be (b, f, {ch}, H, W) = ({b}, {f}, {ch}, …), got {got}"
                    )

    def forward(
        self,
        image: Tensor,
        keys: Tensor,
        flows: Tensor | None = None,
        flow_errors: Tensor | None = None,
    ) -> Tensor:
        """Fill the hole of ``image`` (b, 4, H, W) from ``keys`` (b, f, 4, H, W) with ``flows``
        (b, f, 2, H, W) target → keyframe and ``flow_errors`` (b, f, 1, H, W); (b, 3, H, W)."""
        self._check(image, keys, flows, flow_errors)
        c, streams = self.config, self.config.streams
        b, f = keys.shape[:2]
        use_keys = bool(streams)
        frames = torch.cat((image[:, None], keys), dim=1) if use_keys else image[:, None]
        x, z = self.model[: self.first_block](rearrange(frames, "b f c h w -> (b f) c h w"))
        x, z = (
            rearrange(x, "(b f) c h w -> b f c h w", b=b),
            rearrange(z, "(b f) l d -> b f l d", b=b),
        )
        # the keyframes' pass through the first n_cross blocks: their keys/values and maps
        key_kv, key_maps = [], []
        if use_keys:
            kx, kz = (
                rearrange(x[:, 1:], "b f c h w -> (b f) c h w"),
                rearrange(z[:, 1:], "b f l d -> (b f) l d"),
            )
            for block in self.blocks[: c.n_cross]:
                kx, kz, (k, v) = block(kx, kz)
                key_kv.append(tuple(rearrange(t, "(b f) l d -> b (f l) d", b=b) for t in (k, v)))
                key_maps.append(rearrange(kx, "(b f) c h w -> b f c h w", b=b))
        x, z = x[:, 0], z[:, 0]
        for i, block in enumerate(self.blocks):
            cross = "global" in streams and i < c.n_cross
            x, z, _ = block(x, z, key_kv[i] if cross else None)
            if "local" in streams and i < c.n_cross:
                x = self.deformable_writes[i](x, key_maps[i], flows, flow_errors)
        return self.model[self.first_block + c.n_blocks :]((x, z))


def _init_weights(module: nn.Module) -> None:
    """The official ``_init_weights``: N(0, 0.02) for Linear/Conv2d weights and the latents,
    zero biases (transposed convolutions and norms keep torch's defaults)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, LatentInit):
        nn.init.normal_(module.latents, std=0.02)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
