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

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, check_positive, config_from_dict
from esser_lab.nn import placement


@dataclass(frozen=True)
class Staircase:
    """edflow's ``staircase`` schedule: ``clip(start_value · factor**((step − start) // size))``."""

    start: int
    start_value: float
    step_size: int
    factor: float
    clip_min: float
    clip_max: float

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("step_size",))
        if self.clip_min > self.clip_max:
            raise ValueError(f"need clip_min ≤ clip_max, got {self.clip_min} > {self.clip_max}")

    def __call__(self, step: int) -> float:
        exponent = (step - self.start) // self.step_size
        value = self.start_value * self.factor ** min(max(exponent, -64), 64)  # no overflow
        return float(min(max(value, self.clip_min), self.clip_max))

    def rescaled(self, fraction: float) -> Staircase:
        """The same schedule on a run ``fraction`` as long: steps shrink, values stay."""
        start, size = round(self.start * fraction), max(1, round(self.step_size * fraction))
        return replace(self, start=start, step_size=size)


def _const(value: float) -> Staircase:
    return Staircase(0, value, 1, 1.0, value, value)


@dataclass(frozen=True)
class PartDiscoveryConfig:
    """Defaults are the official DeepFashion run (``train_deepfashion.yaml``, ``model.py``).

    Sizes: ``n_parts`` 25, ``z0_size`` 256 (π), ``local_app_size`` 64 (α per part), 128 px,
    ``encoder0``/``encoder1`` widths (32, 64, 128, 128, 256, 256) with 4 extra residual blocks,
    ``dv`` (the mask decoder) (16, 32, 32, 128, 128, 256), ``final_hour`` (32, 64) with 0 extra
    blocks, critics of width 512 (``dsize``) with 4 blocks; coordinate channels on encoder0 and
    dv. Training: lr 2e-4, batch 8, 500k steps; the mask priors' weights as the yaml's edflow
    schedules (several are constant because their clip_min equals clip_max); MI target 2.0, slack
    0.5, loa (the constraint's multiplier) from 0 with step 4.0, lor (log KL weight) from 0 with
    step 0.05 in [0, 7.5]. ``likelihood="vgg19"`` is the official perceptual reconstruction loss.
    """

    image_size: int = 128
    num_parts: int = 25
    pi_size: int = 256
    appearance_size: int = 64
    encoder_channels: tuple[int, ...] = (32, 64, 128, 128, 256, 256)
    encoder_extra_blocks: int = 4
    mask_decoder_channels: tuple[int, ...] = (16, 32, 32, 128, 128, 256)
    hourglass_channels: tuple[int, ...] = (32, 64)
    hourglass_extra_blocks: int = 0
    critic_width: int = 512
    critic_blocks: int = 4
    likelihood: str = "vgg19"  # "vgg19" (official) or "mse" (the stand-in without VGG weights)
    # weight on (P1): 1 in the official code (its VGG term carries its own 1e-3·½·dim scale);
    # w on the MSE stand-in ½ Σ (x − x̂)² is a Gaussian likelihood with variance 1/w
    reconstruction_weight: float = 1.0
    mi_constraint: bool = True  # RoDi's adversarial MI constraint + adaptive KL weight on π
    mi_target: float = 2.0
    mi_slack: float = 0.5
    loa_init: float = 0.0
    loa_lr: float = 4.0
    lor_init: float = 0.0
    lor_lr: float = 0.05
    lor_min: float = 0.0
    lor_max: float = 7.5
    mask_kl_weight: Staircase = field(default_factory=lambda: _const(1.0))
    gmrf_weight: Staircase = Staircase(100_000, 1e-2, 20_000, 3.14, 1e-3, 1e-3)
    mumford_shah_weight: Staircase = Staircase(100_000, 1e-2, 20_000, 3.14, 1e-6, 1e-6)
    mumford_shah_alpha: Staircase = Staircase(65_000, 1.0, 10_000, 10.0, 1e-2, 1e-2)
    mumford_shah_lambda: Staircase = Staircase(65_000, 1.0, 5_000, 10.0, 1.0, 1.0)
    variance_weight: Staircase = Staircase(41_000, 1.0, 40_000, 10.0, 1.0, 1e5)
    hard_ce_weight: Staircase = Staircase(41_000, 1.0, 1, 1e3, 1.0, 1e3)
    learning_rate: float = 2e-4
    batch_size: int = 8
    num_steps: int = 500_000

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("image_size", "critic_blocks"))
        check_positive(self, ("encoder_extra_blocks", "hourglass_extra_blocks"), 0)
        for name in ("encoder_channels", "mask_decoder_channels", "hourglass_channels"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be non-empty and ≥ 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        down = 2 ** (len(self.encoder_channels) - 1)
        up = 4 * 2 ** (len(self.mask_decoder_channels) - 1)
        if self.image_size % down or up != self.image_size:
            raise ValueError(
                f"image_size={self.image_size} must be divisible by 2**(len(encoder_channels)-1)"
                f"={down} and equal 4·2**(len(mask_decoder_channels)-1)={up}"
            )
        if self.image_size % 2 ** (len(self.hourglass_channels) - 1):
            raise ValueError("image_size must be divisible by the hourglass's down-sampling")
        if self.num_parts < 2:
            raise ValueError(f"num_parts must be ≥ 2, got {self.num_parts}")
        for name in ("pi_size", "appearance_size", "critic_width", "batch_size", "num_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.reconstruction_weight > 0:
            raise ValueError(f"reconstruction_weight must be > 0, got {self.reconstruction_weight}")
        if self.likelihood not in ("vgg19", "mse"):
            raise ValueError(f"likelihood must be 'vgg19' or 'mse', got {self.likelihood!r}")

    @classmethod
    def from_dict(cls, values: dict) -> PartDiscoveryConfig:
        values = {k: Staircase(**v) if isinstance(v, dict) else v for k, v in values.items()}
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> PartDiscoveryConfig:
        """The official DeepFashion configuration (128 px, 25 parts, 500k steps)."""
        return cls()

    def with_steps(self, num_steps: int) -> PartDiscoveryConfig:
        """``num_steps`` steps, every schedule's step positions shrunk in proportion."""
        fraction = num_steps / self.num_steps
        names = ("mask_kl_weight", "gmrf_weight", "mumford_shah_weight", "mumford_shah_alpha")
        names += ("mumford_shah_lambda", "variance_weight", "hard_ce_weight")
        schedules = {name: getattr(self, name).rescaled(fraction) for name in names}
        return replace(self, num_steps=num_steps, **schedules)

    @classmethod
    def small(cls) -> PartDiscoveryConfig:
        """64 px figures on one GPU in minutes; MSE instead of VGG (no weights offline)."""
        return replace(
            cls.paper(),
            image_size=64,
            num_parts=8,
            pi_size=64,
            appearance_size=32,
            encoder_channels=(32, 64, 128, 128, 256),
            mask_decoder_channels=(16, 32, 64, 128, 128),
            critic_width=256,
            critic_blocks=2,
            likelihood="mse",
            batch_size=32,
        ).with_steps(20_000)

    @classmethod
    def tiny(cls) -> PartDiscoveryConfig:
        """16 px figures on 2 CPU cores in seconds.

        Besides sizes and steps (all schedules shrink in proportion, ``with_steps``), six
        training settings differ: the MSE stand-in for the VGG loss (no weights offline), weighted
        by ``reconstruction_weight=10``; no MI constraint (``mi_constraint=False``: the one-hot
        mask is already a bottleneck that keeps view 0's colours out of the decoder; π keeps its
        KL at the initial weight exp(lor₀) = 1); learning rate 2e-3 (10×) for a run of a few
        hundred steps; the caps of the two largest prior weights, compactness 1e5 → 1 and hard
        cross-entropy 1e3 → 10: they were set against a VGG loss on 128 px images (hundreds to
        thousands) and swamp a 16 px MSE of ~50 (with them the loss sat at 1.5e5, all
        compactness, in our 500-step trial); and the hard cross-entropy's step from 1 to its cap
        at half the run instead of at 8 % of it.

        Why (chapter 8, "Why: where the reconstruction stops"; one-seed trials of 600 steps at
        batch 16 on a contended 2-core machine, global mIoU against colour k-means' 0.147): with
        weight 1 the MSE stand-in is a Gaussian likelihood of variance 1, half the pixel range,
        so a mask that follows the pose is worth little more than the KL it costs π. In 300
        steps the reconstruction then stalled at the level of a decoder that knows the figure's
        colours but not its pose (51.5 vs 46.2, seed 0), π carried 0.8 nats, the mask was nearly
        one fixed layout and the parts lost to k-means in every recorded seed (0.06–0.07).
        Weight 10 (variance 0.1) with 600 steps took the loss below the pose-free level (43–45)
        and π to 4–6 nats; mIoU 0.285, 0.151, 0.100, 0.178 (seeds 0–3). Seed 2 stayed at 0.10
        with 800 steps and with 5 parts, and reached 0.231 with the hard cross-entropy's step
        moved to half the run, the setting kept here. A run five times longer than the old preset
        (1500 steps, weight 1, seed 0) had reached 0.249.
        """
        small = cls.small()
        return replace(
            small,
            image_size=16,
            num_parts=6,
            pi_size=16,
            appearance_size=8,
            encoder_channels=(8, 16, 16),
            encoder_extra_blocks=1,
            mask_decoder_channels=(16, 16, 16),
            hourglass_channels=(16, 16),
            critic_width=32,
            critic_blocks=1,
            mi_constraint=False,
            reconstruction_weight=10.0,
            learning_rate=2e-3,
            batch_size=16,
            variance_weight=replace(small.variance_weight, clip_max=1.0),
            # its step from 1 to the cap at half the run instead of 8 % (a curriculum: the
            # masks learn the pose while soft, then harden)
            hard_ce_weight=replace(small.hard_ce_weight, clip_max=10.0, start=small.num_steps // 2),
        ).with_steps(600)


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
