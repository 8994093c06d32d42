"""Variational U-Net: conditional appearance and shape generation.

Esser, Sutter & Ommer, "A Variational U-Net for Conditional Appearance and Shape Generation",
CVPR 2018, arXiv:1804.04694. Chapter 1 of esser-lab.

A U-Net on a shape estimate ŷ (a stickman rendered from keypoints) generates the image; a VAE
latent z, inferred from the image's appearance, enters the U-Net's coarsest scales. Training
reconstructs single images; transfer decodes the appearance latent of x with the shape of y.

Follows the official TensorFlow code (``CompVis/vunet``, ``models.py``, ``main.py``):
* the posterior and the learned prior predict **means only**; both have unit variance, so
  KL(q‖p) = ½‖μ_q − μ_p‖² (the paper's text describes learned variances; the code fixes them);
* the prior at a spatial latent is autoregressive over four sub-pixel groups;
* the appearance encoder sees the image only through ``num_boxes`` part crops normalised in the
  image plane, at ``1/2**box_factor`` of the image size; the shape U-Net sees ŷ alone.
Images are in [-1, 1], channels first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.vunet.layers import (
    Downsample,
    ResidualBlock,
    Upsample,
    WNConv2d,
    merge_groups,
    nin,
    space_to_depth,
    split_groups,
)


@dataclass(frozen=True)
class VUNetConfig:
    """Defaults are the official DeepFashion configuration (``deepfashion.yaml``, ``main.py``)."""

    image_size: int = 256
    image_channels: int = 3
    shape_channels: int = 3  # the stickman: left limbs, right limbs, torso
    num_boxes: int = 8  # part crops fed to the appearance encoder (``batches.normalize``)
    box_factor: int = 2  # crops are image_size / 2**box_factor pixels
    bottleneck_factor: int = 2  # coarsest scale is 2**bottleneck_factor pixels
    num_filters: int = 32
    max_filters: int = 128
    num_residual_blocks: int = 2  # per scale; half before, half after the latent
    num_latent_scales: int = 2  # 0 gives the U-Net without appearance latent (the baseline)
    dropout: float = 0.1
    # objective (``main.py``: 5 · VGG19 feature L1 + kl_weight · KL)
    likelihood: Literal["vgg19", "mse"] = "vgg19"
    likelihood_weight: float = 5.0
    kl_weight_min: float = 1e-6
    kl_weight_max: float = 1.0
    # optimisation: Adam(1e-3, β = (0.5, 0.9)), lr linear to 0 from step 1k to 100k, batch 8;
    # the KL weight ramps from lr_decay_end/2 to 3·lr_decay_end/4
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    lr_decay_begin: int = 1_000
    lr_decay_end: int = 100_000
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self, ("image_channels", "shape_channels", "num_boxes", "num_filters", "max_filters")
        )
        check_positive(self, ("box_factor", "bottleneck_factor", "kl_weight_min"), 0)
        check_positive(self, ("batch_size",))
        check_betas(self)
        if not self.learning_rate > 0 or self.likelihood_weight < 0:
            raise ValueError("need learning_rate > 0 and likelihood_weight ≥ 0")
        if self.kl_weight_min > self.kl_weight_max:
            raise ValueError(
                f"need kl_weight_min ≤ kl_weight_max, got {self.kl_weight_min}, "
                f"{self.kl_weight_max}"
            )
        if self.image_size < 4 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two ≥ 4, got {self.image_size}")
        if self.num_scales < 1:
            raise ValueError(
                f"bottleneck_factor={self.bottleneck_factor} leaves no scale at "
                f"image_size={self.image_size}"
            )
        if self.num_residual_blocks < 2 or self.num_residual_blocks % 2:
            raise ValueError(
                f"num_residual_blocks must be even and ≥ 2, got {self.num_residual_blocks}"
            )
        if not 0 <= self.num_latent_scales <= self.encoder_scales:
            raise ValueError(
                f"num_latent_scales must be in [0, {self.encoder_scales}] (the appearance "
                f"encoder's scales), got {self.num_latent_scales}"
            )
        if self.likelihood not in ("vgg19", "mse"):
            raise ValueError(f"likelihood must be 'vgg19' or 'mse', got {self.likelihood!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.lr_decay_begin < self.lr_decay_end:
            raise ValueError("need 0 ≤ lr_decay_begin < lr_decay_end")

    @property
    def num_scales(self) -> int:
        """Scales of the shape U-Net: ``1 + log2(image_size) − bottleneck_factor``."""
        return 1 + int(math.log2(self.image_size)) - self.bottleneck_factor

    @property
    def encoder_scales(self) -> int:
        """Scales of the appearance encoder, which starts ``box_factor`` scales lower."""
        return self.num_scales - self.box_factor

    @property
    def crop_size(self) -> int:
        return self.image_size // 2**self.box_factor

    @property
    def total_steps(self) -> int:
        return self.lr_decay_end

    def channels(self, scale: int) -> int:
        """Channels of the shape U-Net at ``scale`` (0 = full resolution)."""
        return min(self.num_filters * 2**scale, self.max_filters)

    @classmethod
    def from_dict(cls, values: dict) -> VUNetConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> VUNetConfig:
        """DeepFashion, 256×256, 7 scales, latents at 4×4 and 8×8 with 128 channels."""
        return cls()

    @classmethod
    def small(cls) -> VUNetConfig:
        """64×64 figures on one GPU in minutes; MSE likelihood (no VGG weights offline)."""
        return replace(
            cls.paper(),
            image_size=64,
            shape_channels=4,
            box_factor=1,
            num_filters=32,
            max_filters=128,
            likelihood="mse",
            likelihood_weight=50.0,
            lr_decay_begin=500,
            lr_decay_end=6_000,
            batch_size=32,
        )

    @classmethod
    def tiny(cls) -> VUNetConfig:
        """16×16 figures trained on 2 CPU cores in about half a minute.

        Besides sizes and steps, two training settings differ, because the toy trains for only
        400 steps on unlimited data: learning rate 3e-3 (at 1e-3 the toy stays under-trained)
        and no dropout (a regulariser against over-fitting, which 400 steps on fresh procedural
        figures cannot do; measured: transfer error 0.19 with dropout 0.1 vs 0.14 without).
        """
        return replace(
            cls.small(),
            image_size=16,
            num_filters=8,
            max_filters=16,
            dropout=0.0,
            learning_rate=3e-3,
            lr_decay_begin=80,
            lr_decay_end=400,
            batch_size=32,
        )

    def without_appearance(self) -> VUNetConfig:
        """The same shape U-Net without appearance latent (pix2pix-style: sees ŷ only)."""
        return replace(self, num_latent_scales=0)

    def paired_baseline(self) -> VUNetConfig:
        """PG2's generator in this U-Net (Ma et al. 2017, stage 1: a U-Net on the condition
        image concatenated with the target pose): no appearance latent, its input
        ``[ŷ of the target, the source image]`` on the channels; trained on pairs of one figure
        in two poses (:class:`~esser_lab.vunet.training.LitVUNet` with ``paired=True``)."""
        return replace(
            self, num_latent_scales=0, shape_channels=self.shape_channels + self.image_channels
        )


@dataclass
class VUNetOutput:
    """What a forward pass returns; latent lists run from the coarsest scale to finer ones."""

    image: torch.Tensor  # (b, c, h, w), the decoder's mean, unbounded (no tanh in the code)
    posterior_means: list[torch.Tensor]
    prior_means: list[torch.Tensor]


class ResidualEncoder(nn.Module):
    """``dec_up`` / ``enc_up``: residual blocks per scale, stride-2 down-sampling between scales.

    Every residual block's output is returned as a skip feature (finest first). The shape U-Net
    runs it on ŷ; the appearance encoder runs it on the part crops.
    """

    def __init__(
        self, in_channels: int, channels: list[int], num_blocks: int, dropout: float
    ) -> None:
        super().__init__()
        self.stem = nin(in_channels, channels[0])
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResidualBlock(ch, dropout=dropout) for _ in range(num_blocks))
            for ch in channels
        )
        self.downs = nn.ModuleList(
            Downsample(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(x)
        skips = []
        for scale, blocks in enumerate(self.blocks):
            for block in blocks:
                h = block(h)
                skips.append(h)
            if scale < len(self.downs):
                h = self.downs[scale](h)
        return skips


def shape_encoder(config: VUNetConfig) -> ResidualEncoder:
    """``dec_up``: the U-Net's down path on ŷ, from full resolution to the bottleneck."""
    c = config
    channels = [c.channels(scale) for scale in range(c.num_scales)]
    return ResidualEncoder(c.shape_channels, channels, c.num_residual_blocks, c.dropout)


class AppearanceEncoder(nn.Module):
    """``enc_up`` + ``enc_down``: posterior means μ_q at the ``num_latent_scales`` coarsest scales.

    Each coarser latent sample feeds back into the next finer level (a hierarchical posterior).
    """

    def __init__(self, config: VUNetConfig) -> None:
        super().__init__()
        c = config
        half = c.num_residual_blocks // 2
        self.num_latent_scales = c.num_latent_scales
        # ``enc_up``: starts ``box_factor`` scales down, since the crops are that much smaller
        channels = [c.channels(scale + c.box_factor) for scale in range(c.encoder_scales)]
        self.up = ResidualEncoder(
            c.num_boxes * c.image_channels, channels, c.num_residual_blocks, c.dropout
        )
        # top-down pass over the latent scales (coarsest first)
        coarse = [c.channels(c.num_scales - 1 - level) for level in range(c.num_latent_scales)]
        self.down_stem = nin(coarse[0], coarse[0]) if coarse else None
        self.pre = nn.ModuleList()
        self.post = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.ups = nn.ModuleList()
        for level, ch in enumerate(coarse):
            self.pre.append(nn.ModuleList(ResidualBlock(ch, ch, c.dropout) for _ in range(half)))
            self.heads.append(WNConv2d(ch, ch))  # ``latent_parameters``: the mean only
            self.post.append(
                nn.ModuleList(ResidualBlock(ch, 2 * ch, c.dropout) for _ in range(half))
            )
            if level + 1 < len(coarse):
                self.ups.append(Upsample(ch, coarse[level + 1]))

    def forward(
        self,
        appearance: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return ``(means, latents)``; ``latents`` are samples (``sample``) or the means."""
        skips = self.up(appearance)
        means: list[torch.Tensor] = []
        latents: list[torch.Tensor] = []
        if self.down_stem is None:
            return means, latents
        h = self.down_stem(skips[-1])
        for level in range(self.num_latent_scales):
            for block in self.pre[level]:
                h = block(h, skips.pop())
            mean = self.heads[level](h)
            z = mean + _noise_like(mean, generator) if sample else mean
            means.append(mean)
            latents.append(z)
            for block in self.post[level]:
                h = block(h, torch.cat([skips.pop(), z], dim=1))
            if level < len(self.ups):
                h = self.ups[level](h)
        return means, latents


class LatentPrior(nn.Module):
    """The learned prior p(z | ŷ) at one scale: autoregressive over 4 sub-pixel groups.

    At a 1×1 scale the code uses a single Gaussian; at larger scales the latent map is split
    into the 4 groups of a space-to-depth, each predicted from ŷ's features and the groups before.
    """

    def __init__(self, channels: int, spatial: int, dropout: float) -> None:
        super().__init__()
        self.autoregressive = spatial > 1
        if not self.autoregressive:
            self.head = WNConv2d(channels, channels)
            return
        self.features = ResidualBlock(channels, dropout=dropout)
        self.heads = nn.ModuleList(WNConv2d(4 * channels, channels) for _ in range(4))
        self.feedback = nn.ModuleList(
            ResidualBlock(4 * channels, channels, dropout) for _ in range(3)
        )

    def forward(
        self, h: torch.Tensor, z: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mean, sample)``; a given ``z`` (training, transfer) teacher-forces groups."""
        if not self.autoregressive:
            mean = self.head(h)
            return mean, mean + _noise_like(mean, generator)
        given = split_groups(z) if z is not None else None
        features = space_to_depth(self.features(h))  # (b, 4c, h/2, w/2)
        means, samples = [], []
        for group in range(4):
            mean = self.heads[group](features)
            sample = mean + _noise_like(mean, generator)
            means.append(mean)
            samples.append(sample)
            if group < 3:
                feedback = given[group] if given is not None else sample
                features = self.feedback[group](features, feedback)
        return merge_groups(means), merge_groups(samples)


class Decoder(nn.Module):
    """``dec_down``: the U-Net's up path on ŷ's skips, with z entering the coarsest scales."""

    def __init__(self, config: VUNetConfig) -> None:
        super().__init__()
        c = config
        half = c.num_residual_blocks // 2
        self.num_latent_scales = c.num_latent_scales
        top = c.num_scales - 1
        self.stem = nin(c.channels(top), c.channels(top))
        self.pre = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.merge = nn.ModuleList()
        self.post = nn.ModuleList()
        self.ups = nn.ModuleList()
        for level in range(c.num_scales):
            scale = top - level
            ch = c.channels(scale)
            self.pre.append(nn.ModuleList(ResidualBlock(ch, ch, c.dropout) for _ in range(half)))
            if level < c.num_latent_scales:
                self.priors.append(LatentPrior(ch, c.image_size // 2**scale, c.dropout))
                self.merge.append(nn.ModuleList(nin(2 * ch, ch) for _ in range(half)))
            self.post.append(nn.ModuleList(ResidualBlock(ch, ch, c.dropout) for _ in range(half)))
            if scale > 0:
                self.ups.append(Upsample(ch, c.channels(scale - 1)))
        self.out = WNConv2d(c.channels(0), c.image_channels)  # ``dec_parameters``

    def forward(
        self,
        skips: list[torch.Tensor],
        latents: list[torch.Tensor] | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(image, prior_means)``; ``latents=None`` samples z from the prior."""
        skips = list(skips)
        h = self.stem(skips[-1])
        prior_means = []
        for level in range(len(self.pre)):
            for block in self.pre[level]:
                h = block(h, skips.pop())
            if level < self.num_latent_scales:
                given = latents[level] if latents is not None else None
                mean, sample = self.priors[level](h, given, generator)
                prior_means.append(mean)
                z = given if given is not None else sample
                for merge, block in zip(self.merge[level], self.post[level], strict=True):
                    h = block(merge(torch.cat([h, z], dim=1)), skips.pop())
            else:
                for block in self.post[level]:
                    h = block(h, skips.pop())
            if level < len(self.ups):
                h = self.ups[level](h)
        return self.out(h), prior_means


class VUNet(nn.Module):
    """The Variational U-Net: ``x̂ = D(ŷ, z)``; ``z ~ q(z | x)`` to train, ``p(z | ŷ)`` to sample."""

    def __init__(self, config: VUNetConfig) -> None:
        super().__init__()
        self.config = config
        self.shape_encoder = shape_encoder(config)
        self.appearance_encoder = AppearanceEncoder(config) if config.num_latent_scales else None
        self.decoder = Decoder(config)

    def forward(
        self,
        shape: torch.Tensor,
        appearance: torch.Tensor | None,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> VUNetOutput:
        """Reconstruct (or transfer): appearance from ``appearance`` crops, shape from ``shape``.

        ``sample=False`` decodes the posterior means, as the official transfer does.
        """
        self._check(shape, "shape", self.config.shape_channels, self.config.image_size)
        means: list[torch.Tensor] = []
        latents: list[torch.Tensor] = []
        if self.appearance_encoder is not None:
            if appearance is None:
                raise ValueError("this VUNet has an appearance latent: pass the part crops")
            self._check(
                appearance,
                "appearance",
                self.config.num_boxes * self.config.image_channels,
                self.config.crop_size,
            )
            if appearance.shape[0] != shape.shape[0]:
                raise ValueError(
                    f"batch sizes differ: shape {shape.shape[0]}, appearance {appearance.shape[0]}"
                )
            means, latents = self.appearance_encoder(appearance, sample, generator)
        image, prior_means = self.decoder(self.shape_encoder(shape), latents, generator)
        return VUNetOutput(image, means, prior_means)

    def sample(self, shape: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images of shape ŷ with appearances drawn from the learned prior p(z | ŷ)."""
        self._check(shape, "shape", self.config.shape_channels, self.config.image_size)
        image, _ = self.decoder(self.shape_encoder(shape), None, generator)
        return image

    def _check(self, x: torch.Tensor, name: str, channels: int, size: int) -> None:
        check_tensor(x, name, ("b", channels, size, size), like=self, training=self.training)


def _noise_like(mean: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Unit-variance Gaussian noise (the code fixes σ = 1 for posterior and prior)."""
    if generator is None:
        return torch.randn_like(mean)
    return torch.randn(mean.shape, generator=generator, device=generator.device).to(mean)
