"""Content and style disentanglement for artistic style transfer: the networks.

Kotovenko, Sanakoyeu, Lang & Ommer, "Content and Style Disentanglement for Artistic Style
Transfer", ICCV 2019 (no arXiv version; code: ``CompVis/content-style-disentangled-ST``, branch
``dev_subm_1``). Chapter 3 of esser-lab.

A content encoder E_c maps a photo to a spatial content code; a style encoder E_s maps a painting
to a 16-d, L2-normalised style vector s; the decoder D(E_c(x), s) paints, with the scale and offset
of every normalisation predicted from s. The discriminator has three heads: real/fake painting
(patch-wise), the artist (per pixel) and the photo's content class.

Follows the official TensorFlow code (``module.py``, ``ops.py``, ``main.py``,
``launch_multistep_training.sh``). Deviations, all for arbitrary small image sizes:
* official: one 15-px reflection pad and VALID convolutions, sized so that the curriculum's
  resolutions come back out; here each 3×3 convolution is reflection-padded by 1, so every
  power-of-two size round-trips;
* official: the style encoder first takes a random crop of at most 256 px; not done here (our
  images are smaller than that);
* local group-norm windows larger than a feature map are clipped to the map.
Images are in [-1, 1], channels first; ``group_size`` is channels per group (the code's ``G``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, check_positive, config_from_dict
from esser_lab.style_transfer.layers import (
    ContentEncoder,
    Discriminator,
    DiscriminatorOutput,
    LocalGroupNorm,
    StyleEncoder,
    conv3x3,
)

# ``launch_multistep_training.sh``'s curriculum: (image, batch, window, steps, margin)
CURRICULUM = (
    (128, 16, 128, 50_000, 0.2),
    (256, 8, 128, 75_000, 0.3),
    (384, 4, 192, 100_000, 0.4),
    (512, 2, 256, 125_000, 0.5),
    (640, 1, 320, 150_000, 0.5),
    (768, 1, 384, 1_000_000, 0.5),
)


@dataclass(frozen=True)
class StyleTransferConfig:
    """Defaults: the first stage of the official curriculum (``launch_multistep_training.sh``)."""

    image_size: int = 128
    window_size: int = 128  # local group norm window (``--window_size``), scaled per layer
    style_dim: int = 16  # ``--style_dim``
    ngf: int = 32  # generator kernels (``--ngf``)
    ndf: int = 64  # discriminator kernels (``--ndf``)
    num_downsamplings: int = 4  # content encoder stride-2 convs = decoder upsamplings
    num_residual_blocks: int = 9  # decoder residual blocks (``module.decoder``)
    discriminator_layers: int = 7  # multi-scale discriminator depth (``h0`` … ``h6``)
    group_size: int = 32  # local group norm: channels per group (``ops.local_group_norm``, G)
    style_dropout: float = 0.5  # dropout in the style encoder's dense layers
    num_styles: int = 2  # artists (the script trains Cézanne + van Gogh)
    num_content_classes: int = 365  # Places365 categories
    # loss weights (``launch_multistep_training.sh``); the code weights FPT and FPD both by sfplw
    adversarial_weight: float = 20.0  # dlw
    image_weight: float = 400.0  # ilw: MSE of the blurred images
    content_fixpoint_weight: float = 2.0  # cfplw
    fpt_weight: float = 50.0  # sfplw: the fix-point triplet style loss
    fpd_weight: float = 50.0  # sfplw: the fix-point disentanglement loss
    content_class_weight: float = 10.0  # cclw
    style_class_weight: float = 20.0  # cslw
    blur_kernel_size: int = 10  # ``--bks``: average pooling, stride 1, VALID
    margin: float = 0.2  # FPT margin, 0.2 → 0.5 over the curriculum; FPD uses margin 0
    # optimisation: Adam(lr, β₁ = 0.8) for both players; the running discriminator success rate
    # decides which one steps (``model.py``: dsr from the script, moving average α = 0.01)
    learning_rate: float = 2e-4
    beta1: float = 0.8
    discriminator_success_rate: float = 0.5  # --dsr; < 0: both players step every batch
    success_rate_momentum: float = 0.01
    batch_size: int = 16
    total_steps: int = 50_000  # batches

    @property
    def optimizer_steps(self) -> int:
        """Lightning's ``max_steps`` (it counts optimiser steps: two per batch when both step)."""
        return self.total_steps * (2 if self.discriminator_success_rate < 0 else 1)

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("window_size", "batch_size", "total_steps", "blur_kernel_size"))
        check_positive(self, ("num_residual_blocks",), 0)
        if not 0.0 <= self.beta1 < 1.0 or not self.learning_rate > 0:
            raise ValueError(
                f"need beta1 in [0, 1) and learning_rate > 0, got {self.beta1}, "
                f"{self.learning_rate}"
            )
        if not 1 <= self.num_downsamplings < math.log2(max(self.image_size, 2)):
            raise ValueError(
                f"num_downsamplings must be in [1, log2(image_size)), got {self.num_downsamplings}"
            )
        if self.image_size < 8 or self.image_size % 2**self.num_downsamplings:
            raise ValueError(
                f"image_size must be ≥ 8 and a multiple of 2^num_downsamplings = "
                f"{2**self.num_downsamplings}, got {self.image_size}"
            )
        if not 1 <= self.discriminator_layers <= math.log2(self.image_size):
            raise ValueError(
                f"discriminator_layers must be in [1, {int(math.log2(self.image_size))}], "
                f"got {self.discriminator_layers}"
            )
        for name in ("style_dim", "ngf", "ndf", "group_size", "num_styles", "num_content_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.num_styles < 2:
            raise ValueError("num_styles must be ≥ 2 (FPT needs a negative style)")
        if not 0.0 <= self.style_dropout < 1.0:
            raise ValueError(f"style_dropout must be in [0, 1), got {self.style_dropout}")
        if self.margin < 0:
            raise ValueError(f"margin must be ≥ 0, got {self.margin}")

    @classmethod
    def from_dict(cls, values: dict) -> StyleTransferConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> StyleTransferConfig:
        """The official configuration, stage 1 of 6 (128 px); see :meth:`paper_stage`."""
        return cls()

    @classmethod
    def paper_stage(cls, stage: int) -> StyleTransferConfig:
        """Stage ``0..5`` of the curriculum: 128 → 768 px, margin 0.2 → 0.5."""
        if not 0 <= stage < len(CURRICULUM):
            raise ValueError(f"stage must be in 0..{len(CURRICULUM) - 1}, got {stage}")
        size, batch, window, steps, margin = CURRICULUM[stage]
        return replace(
            cls.paper(),
            image_size=size,
            batch_size=batch,
            window_size=window,
            total_steps=steps,
            margin=margin,
        )

    @classmethod
    def small(cls) -> StyleTransferConfig:
        """32×32 procedural paintings on one GPU in minutes; 4 artists, 10 digit classes."""
        return replace(
            cls.paper(),
            image_size=32,
            window_size=32,
            ngf=16,
            ndf=16,
            num_downsamplings=3,
            num_residual_blocks=4,
            discriminator_layers=4,
            blur_kernel_size=3,
            num_styles=4,
            num_content_classes=10,
            batch_size=32,
            total_steps=4_000,
        )

    @classmethod
    def tiny(cls) -> StyleTransferConfig:
        """16×16 paintings on 2 CPU cores in seconds.

        Besides sizes and steps, four training settings differ, because the toy trains for
        150 batches: learning rate 2e-3; no style dropout (a regulariser for 1M steps on real
        paintings, which here only adds noise to the triplet distances); both players step
        on every batch (the code's ``dsr < 0`` branch), because the running success rate with
        α = 0.01 reacts over hundreds of steps: gated, the discriminator stepped once in 300;
        and the generator's artist-classification weight (cslw) is 100 instead of 20. The
        style code starts almost collapsed (mean pairwise distance 0.25 on the unit sphere) and
        every term that asks for an output independent of s (adversarial, content class, blurred
        image) pulls it further together; trained alone, each collapses it within 50 steps, while
        the artist term and FPT alone separate it. FPT has no gradient once collapsed (squared
        distances, d_pos = d_neg = 0), so at 20 the artist term loses the race and nothing is
        stylised (deception at chance); at 100 the codes separate and the outputs take the
        artists' styles.
        """
        return replace(
            cls.small(),
            image_size=16,
            window_size=16,
            ngf=8,
            ndf=8,
            num_downsamplings=2,
            num_residual_blocks=2,
            discriminator_layers=3,
            blur_kernel_size=3,
            style_dropout=0.0,
            learning_rate=2e-3,
            discriminator_success_rate=-1.0,
            batch_size=16,
            total_steps=150,
            style_class_weight=100.0,
        )

    def without_fixpoint(self) -> StyleTransferConfig:
        """The ablation: the same network without the FPT and FPD style losses."""
        return replace(self, fpt_weight=0.0, fpd_weight=0.0)


class StyleResidualBlock(nn.Module):
    """``residule_block`` of ``module.decoder``: two convolutions, style-normalised, lrelu."""

    def __init__(self, channels: int, style_dim: int, group_size: int, window: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.norm1 = LocalGroupNorm(channels, group_size, window, style_dim)
        self.conv2 = conv3x3(channels, channels)
        self.norm2 = LocalGroupNorm(channels, group_size, window, style_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x), style), 0.2)
        h = F.leaky_relu(self.norm2(self.conv2(h), style), 0.2)
        return x + h


class Decoder(nn.Module):
    """Residual blocks on the content code, then nearest ×2 upsampling + conv, style-normalised."""

    def __init__(self, config: StyleTransferConfig) -> None:
        super().__init__()
        c = config
        n = c.num_downsamplings
        top = c.ngf * 2 ** (n - 1)  # the content code's channels
        self.blocks = nn.ModuleList(
            StyleResidualBlock(top, c.style_dim, c.group_size, c.window_size // 32)
            for _ in range(c.num_residual_blocks)
        )
        # official d1..d4: kernels 8, 4, 2, 1 × ngf; windows /16, /8, /4, /2
        widths = [c.ngf * 2 ** (n - 1 - k) for k in range(n)]
        self.ups = nn.ModuleList()
        self.norms = nn.ModuleList()
        for k, (in_width, width) in enumerate(zip([top, *widths[:-1]], widths, strict=True)):
            self.ups.append(conv3x3(in_width, width))
            self.norms.append(
                LocalGroupNorm(width, c.group_size, c.window_size // 2 ** (n - k), c.style_dim)
            )
        self.out = nn.Conv2d(widths[-1], 3, 7)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = content
        for block in self.blocks:
            h = block(h, style)
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = F.interpolate(h, scale_factor=2, mode="nearest")  # resize, then convolve
            h = F.relu(norm(up(h), style))
        h = F.pad(h, (3, 3, 3, 3), mode="reflect")
        return torch.sigmoid(self.out(h)) * 2 - 1  # official: sigmoid · 2 − 1


class StyleTransferModel(nn.Module):
    """The generator G(x, s) = D(E_c(x), s) with s = E_s(painting), and the discriminator."""

    def __init__(self, config: StyleTransferConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.content_encoder = ContentEncoder(
            c.ngf, c.num_downsamplings, c.group_size, c.window_size
        )
        self.style_encoder = StyleEncoder(
            c.ngf, c.num_downsamplings, c.group_size, c.style_dim, c.style_dropout
        )
        self.decoder = Decoder(c)
        self.discriminator = Discriminator(
            c.ndf, c.discriminator_layers, c.group_size, c.window_size, c.num_styles,
            c.num_content_classes,
        )  # fmt: skip

    def generator_parameters(self) -> list[nn.Parameter]:
        """Encoders and decoder: what the generator's optimiser updates."""
        return [
            *self.content_encoder.parameters(),
            *self.style_encoder.parameters(),
            *self.decoder.parameters(),
        ]

    def encode_content(self, photo: torch.Tensor) -> torch.Tensor:
        """E_c: ``(b, 3, h, w) → (b, ngf·2^(n−1), h/2^n, w/2^n)``."""
        self.check_image(photo, "photo")
        return self.content_encoder(photo)

    def encode_style(self, painting: torch.Tensor) -> torch.Tensor:
        """E_s: ``(b, 3, h, w) → (b, style_dim)`` on the unit sphere."""
        self.check_image(painting, "painting")
        return self.style_encoder(painting)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """D(content code, s) → ``(b, 3, h, w)`` in (−1, 1)."""
        if style.ndim != 2 or style.shape[1] != self.config.style_dim:
            raise ValueError(
                f"style must have shape (b, {self.config.style_dim}), got {tuple(style.shape)}"
            )
        if style.shape[0] != content.shape[0]:
            raise ValueError(
                f"batch sizes differ: content {content.shape[0]}, style {style.shape[0]}"
            )
        return self.decoder(content, style)

    def forward(self, photo: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Stylise: ``G(photo, s)`` for a style vector ``s`` (e.g. from :meth:`encode_style`)."""
        return self.decode(self.encode_content(photo), style)

    def discriminate(self, image: torch.Tensor) -> DiscriminatorOutput:
        self.check_image(image, "image")
        return self.discriminator(image)

    def check_image(self, x: torch.Tensor, name: str) -> None:
        s = self.config.image_size
        check_tensor(x, name, ("b", 3, s, s), like=self, training=self.training)
