"""Part discovery by disentangling a spatial part layout (π) from per-part appearance (α).

Braun, Esser & Ommer, "Unsupervised Part Discovery by Unsupervised Disentanglement", GCPR 2020.
Chapter 8 of esser-lab; it extends RoDi (chapter 4) with a *spatial* bottleneck.

A π-encoder reads view 0 into a full-covariance Gaussian q(π | x₀); a mask decoder turns π into
K part logits per pixel (plus unit Gaussian noise while training, a "mean-field" layer); a softmax
over parts and a hard straight-through one-hot give the part mask. The α-encoder reads view 1 *part
by part* (the image times one channel of view 1's own hard mask) into a vector per part; these are
painted ("unpooled") into view 0's hard mask, and an hourglass renders view 0. Everything view 0
contributes passes through its one-hot mask, so the mask has to carry the shape.

Follows the official TensorFlow code (``CompVis/unsupervised-part-segmentation``,
``deepfashion/code/SB_model48c/model.py`` with ``train_deepfashion.yaml``; blocks from
``deepfashion/code/nn.py``). Conventions: images ``(b, 3, h, w)`` in [-1, 1]; masks and logits
``(b, K, h, w)``; per-part features ``(b, K, d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.checks import check_tensor
from esser_lab.nn import placement
from esser_lab.part_discovery.config import PartDiscoveryConfig, Staircase

__all__ = [
    "Critic",
    "FullGaussian",
    "PartDiscovery",
    "PartDiscoveryConfig",
    "PartDiscoveryOutput",
    "Staircase",
]


class Conv(nn.Conv2d):
    """A conv whose input can get two coordinate channels first (official ``coords=True``)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, coords: bool = False):
        super().__init__(c_in + 2 * coords, c_out, k, stride, padding=k // 2)
        self.coords = coords

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coords:
            b, _, h, w = x.shape
            ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
            xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
            grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(b, 2, h, w)
            x = torch.cat([x, grid], dim=1)
        return super().forward(x)


class ResBlock(nn.Module):
    """``x + conv(act([x, 1×1(act(skip))]))`` (official ``residual_block``).

    Differs from ``esser_lab.rodi.model.ResBlock``: leaky ReLU, an optional skip input.
    # official code: weight-normalised convs with data-dependent init; we use plain convs.
    """

    def __init__(self, channels: int, skip: bool = False, coords: bool = False) -> None:
        super().__init__()
        self.skip = Conv(channels, channels, 1, coords=coords) if skip else None
        self.conv = Conv((1 + skip) * channels, channels, coords=coords)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        residual = x
        if self.skip is not None:
            residual = torch.cat([x, self.skip(F.leaky_relu(skip, 0.2))], dim=1)
        return x + self.conv(F.leaky_relu(residual, 0.2))


class Encoder(nn.Module):
    """conv → res → [stride-2 conv, res]… → res × extra → act → mean → 1×1 (``encoder_model``)."""

    def __init__(self, channels, extra_blocks: int, out_size: int, coords: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv(3, channels[0], coords=coords), ResBlock(channels[0])]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [Conv(c_in, c_out, stride=2, coords=coords), ResBlock(c_out, coords=coords)]
        layers += [ResBlock(channels[-1], coords=coords) for _ in range(extra_blocks)]
        self.layers = nn.Sequential(*layers)
        self.out = nn.Linear(channels[-1], out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.layers(x), 0.2).mean(dim=(2, 3))  # (b, c)
        return self.out(h)


class MaskDecoder(nn.Module):
    """π → 4×4 map → [res, ×2 bilinear]… → res → K logits (official ``single_decoder_model``).

    # official code: "linear" up-sampling resizes only, so every layer keeps the last width.
    """

    def __init__(self, pi_size: int, channels, num_parts: int) -> None:
        super().__init__()
        width = channels[-1]
        self.width = width
        self.inp = nn.Linear(pi_size, 16 * width)
        self.conv_in = Conv(width, width, coords=True)
        self.blocks = nn.ModuleList(ResBlock(width, coords=True) for _ in range(len(channels)))
        self.final = ResBlock(width, coords=True)
        self.out = Conv(width, num_parts, coords=True)

    def forward(self, pi: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(self.inp(pi).view(-1, self.width, 4, 4))
        h = self.blocks[0](h)
        for block in self.blocks[1:]:
            h = F.interpolate(block(h), scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.final(h))  # (b, K, s, s)


class Hourglass(nn.Module):
    """The decoder Δ (official ``hourglass_model``, ``final_hour``): a small U-Net.

    # official code: the skip at each level joins the *same* level's features, and "linear"
    # up-sampling keeps the width, so the output layers run at the deepest width.
    """

    def __init__(self, in_channels: int, channels, extra_blocks: int) -> None:
        super().__init__()
        self.conv_in, self.res_in = Conv(in_channels, channels[0]), ResBlock(channels[0])
        self.down = nn.ModuleList(
            Conv(a, b, stride=2) for a, b in zip(channels[:-1], channels[1:], strict=True)
        )
        self.down_res = nn.ModuleList(ResBlock(c) for c in channels[1:])
        self.extra = nn.Sequential(*(ResBlock(channels[-1]) for _ in range(extra_blocks)))
        self.up_res = nn.ModuleList(ResBlock(channels[-1], skip=True) for _ in channels[1:])
        self.res_out, self.out = ResBlock(channels[-1]), Conv(channels[-1], 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, skips = self.res_in(self.conv_in(x)), []
        for down, res in zip(self.down, self.down_res, strict=True):
            h = res(down(h))
            skips.append(h)
        h = self.extra(h)
        for res, skip in zip(self.up_res, reversed(skips), strict=True):
            h = F.interpolate(res(h, skip), scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.res_out(h))


class Critic(nn.Module):
    """T(π, α) = ⟨f₁(π), f₂(α)⟩ with two residual MLPs (official ``discriminator_model``)."""

    def __init__(self, pi_size: int, alpha_size: int, width: int, num_blocks: int) -> None:
        super().__init__()

        def branch(n_in: int) -> nn.Sequential:
            blocks = [_ResLinear(width) for _ in range(num_blocks)]
            layers = [nn.Linear(n_in, width), *blocks, nn.LeakyReLU(0.2), nn.Linear(width, width)]
            return nn.Sequential(*layers)

        self.f_pi, self.f_alpha = branch(pi_size), branch(alpha_size)
        self.pi_size, self.alpha_size = pi_size, alpha_size

    def forward(self, pi: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        # inputs made inside the training step: NaN there is divergence, checked in eval only
        finite = not self.training
        check_tensor(pi, "pi", ("b", self.pi_size), like=self, finite=finite)
        check_tensor(alpha, "alpha", ("b", self.alpha_size), like=self, finite=finite)
        if pi.shape[0] != alpha.shape[0]:
            raise ValueError(f"batch sizes differ: pi {pi.shape[0]}, alpha {alpha.shape[0]}")
        return (self.f_pi(pi) * self.f_alpha(alpha)).sum(dim=1)  # (b,)


class _ResLinear(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(F.leaky_relu(x, 0.2))


@dataclass
class FullGaussian:
    """q(π | x) = N(μ, LLᵀ) with a Cholesky factor (official ``FullLatentDistribution``).

    The encoder outputs μ (d values) and the lower triangle of L (d(d+1)/2 values); L's diagonal
    is exponentiated, its off-diagonal row i is divided by √(i+1).
    """

    mean: torch.Tensor  # (b, d)
    scale_tril: torch.Tensor  # (b, d, d)
    log_diag: torch.Tensor  # (b, d)

    @classmethod
    def from_parameters(cls, parameters: torch.Tensor, dim: int) -> FullGaussian:
        mean, tril = parameters[:, :dim], parameters[:, dim:]
        rows, cols = torch.tril_indices(dim, dim, device=parameters.device)
        lower = parameters.new_zeros(parameters.shape[0], dim, dim)
        lower[:, rows, cols] = tril
        log_diag = lower.diagonal(dim1=1, dim2=2)
        row_weights = torch.arange(1, dim + 1, device=parameters.device).to(lower).sqrt()
        lower = lower / row_weights[None, :, None]
        lower = (
            lower
            - torch.diag_embed(lower.diagonal(dim1=1, dim2=2))
            + torch.diag_embed(log_diag.exp())
        )
        return cls(mean, lower, log_diag)

    @staticmethod
    def num_parameters(dim: int) -> int:
        return dim + dim * (dim + 1) // 2

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = placement.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + (self.scale_tril @ noise.to(self.mean)[..., None])[..., 0]

    def kl(self) -> torch.Tensor:
        """KL(q ‖ N(0, I)) per sample: ½ Σ (diag(LLᵀ) − 1 + μ² − 2 log diag L), ``(b,)``."""
        variance = self.scale_tril.pow(2).sum(dim=2)
        return 0.5 * (variance - 1 + self.mean.pow(2) - 2 * self.log_diag).sum(dim=1)


def hard_one_hot(probabilities: torch.Tensor) -> torch.Tensor:
    """One-hot argmax over parts with a straight-through gradient (``straight_through_estimator``).

    Forward: exactly one-hot; backward: the gradient of ``probabilities`` (identity).
    """
    index = probabilities.argmax(dim=1, keepdim=True)
    hard = torch.zeros_like(probabilities).scatter_(1, index, 1.0)
    return hard + probabilities - probabilities.detach()


def mask_parts(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(b, 3, h, w)`` × ``(b, K, h, w)`` → ``(b, K, 3, h, w)``: the image under each part."""
    return image[:, None] * mask[:, :, None]


def unpool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Paint per-part features ``(b, K, d)`` into the mask ``(b, K, h, w)``: ``(b, d, h, w)``.

    Official ``unpool_features`` followed by the sum over parts.
    """
    return torch.einsum("bkd,bkhw->bdhw", features, mask)


@dataclass
class Layout:
    """π and the part masks of one view."""

    posterior: FullGaussian
    pi: torch.Tensor  # (b, d) the sample (training) or the mean (eval) the masks came from
    logits_mean: torch.Tensor  # (b, K, h, w) the mask decoder's output (the mean-field mean)
    logits: torch.Tensor  # (b, K, h, w) plus unit noise while training
    soft: torch.Tensor  # softmax over parts
    hard: torch.Tensor  # one-hot argmax, straight-through

    @property
    def labels(self) -> torch.Tensor:
        """``(b, h, w)`` part index per pixel."""
        return self.soft.argmax(dim=1)


@dataclass
class PartDiscoveryOutput:
    layout0: Layout  # view 0: decoding mask
    layout1: Layout  # view 1: encoding mask
    part_features: torch.Tensor  # (b, K, d) α per part, from view 1
    image: torch.Tensor  # the rendering of view 0


class PartDiscovery(nn.Module):
    """π-encoder, mask decoder, part-wise α-encoder and the hourglass decoder (``TrainModel``).

    # official code: three auxiliary decoders (``d_single``, ``d_alpha``, ``d_pi``) see only
    # stop-gradient inputs of the first batch item and are for monitoring; they are left out.
    """

    def __init__(self, config: PartDiscoveryConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.pi_encoder = Encoder(
            c.encoder_channels, c.encoder_extra_blocks, FullGaussian.num_parameters(c.pi_size), True
        )
        self.mask_decoder = MaskDecoder(c.pi_size, c.mask_decoder_channels, c.num_parts)
        self.alpha_encoder = Encoder(
            c.encoder_channels, c.encoder_extra_blocks, c.appearance_size, False
        )
        self.decoder = Hourglass(
            c.appearance_size + c.num_parts, c.hourglass_channels, c.hourglass_extra_blocks
        )

    def layout(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Layout:
        """π from ``x`` and its part masks; sampled while training, the means in eval mode."""
        self._check(x, "x")
        posterior = FullGaussian.from_parameters(self.pi_encoder(x), self.config.pi_size)
        pi = posterior.sample(generator) if self.training else posterior.mean
        logits_mean = self.mask_decoder(pi)
        logits = logits_mean
        if self.training:  # official ``MeanFieldDistribution.sample``: unit Gaussian noise
            noise = placement.randn(logits.shape, generator=generator, device=logits.device)
            logits = logits + noise.to(logits)
        soft = logits.softmax(dim=1)
        return Layout(posterior, pi, logits_mean, logits, soft, hard_one_hot(soft))

    def encode_parts(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """α per part ``(b, K, d)``: the α-encoder on each masked copy of ``x``."""
        b, k = mask.shape[:2]
        parts = mask_parts(x, mask).flatten(0, 1)  # (b·K, 3, h, w)
        return self.alpha_encoder(parts).view(b, k, -1)

    def render(self, part_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The hourglass on [unpooled features, one-hot mask]."""
        return self.decoder(torch.cat([unpool(part_features, mask), mask], dim=1))

    def forward(
        self, view0: torch.Tensor, view1: torch.Tensor, generator: torch.Generator | None = None
    ) -> PartDiscoveryOutput:
        if view0.shape != view1.shape:
            raise ValueError(f"views differ in shape: {tuple(view0.shape)}, {tuple(view1.shape)}")
        layout0, layout1 = self.layout(view0, generator), self.layout(view1, generator)
        part_features = self.encode_parts(view1, layout1.hard)
        return PartDiscoveryOutput(
            layout0, layout1, part_features, self.render(part_features, layout0.hard)
        )

    def _check(self, x: torch.Tensor, name: str) -> None:
        s = self.config.image_size
        check_tensor(x, name, ("b", 3, s, s), like=self, training=self.training)
