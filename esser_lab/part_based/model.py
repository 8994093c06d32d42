"""Part-based disentangling of shape and appearance: the network.

Lorenz, Bereska, Milbich & Ommer, "Unsupervised Part-Based Disentangling of Object Shape and
Appearance", CVPR 2019, arXiv:1903.06946. Chapter 2 of esser-lab.

An hourglass turns an image into K softmax part maps; each map's mean μ_k and covariance Σ_k
are the part's position and extent (the *shape*). A second hourglass stage gives features that
are pooled under each part map into one vector per part (the *appearance*). The decoder renders
heatmaps around the μ_k, multiplies them by the appearance vectors and decodes an image.

Follows the official TensorFlow code (``CompVis/unsupervised-disentangling``: ``config.py``,
``architectures.py``, ``ops.py``). Conventions a reader could get wrong:

* coordinates are (x, y) in [-1, 1] with pixel centres at ``(2i + 1)/n − 1`` (``grid_sample``
  with ``align_corners=False``); the official code uses (y, x) on ``linspace(-1, 1, n)``;
* images are float ``(b, 3, h, w)`` in [-1, 1] (the official code works in [0, 1]);
* by default the decoder's heatmaps are isotropic, ``1 / (1 + ‖10 (x − μ_k)‖²)``: the released
  code's default (``--covariance`` off) renders no Σ_k, which only enters the equivariance loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, check_positive, config_from_dict
from esser_lab.nn.placement import images_per_pass
from esser_lab.part_based.layers import Hourglass, Residual, UpBlock, conv_bn_relu


@dataclass(frozen=True)
class PartBasedConfig:
    """Defaults are the official code's (``config.py`` argparse defaults, ``main.py``)."""

    image_size: int = 256  # --in_dim = --reconstr_dim
    part_map_size: int = 64  # --heat_dim: part maps and features live at this resolution
    image_channels: int = 3  # --n_c
    n_parts: int = 16  # --n_parts
    n_features: int = 64  # --n_features: length of each part's appearance vector
    stem_channels: int = 64  # the 6×6 preprocessing convolution
    shape_channels: int = 256  # --nFeat_1: width of the part hourglass
    appearance_channels: int = 256  # --nFeat_2: width of the feature hourglass
    shape_depth: int = 5  # poolings of the part hourglass (nLow = 4 → 64 → 2 pixels)
    appearance_depth: int = 2  # poolings of the feature hourglass (n_Low_feat = 1)
    dropout: float = 0.2  # after each hourglass
    decoder_channels: tuple[int, ...] = (512, 512, 256, 256, 128, 128, 64)  # ``decoder``, 4→256
    heatmap_precision: float = 10.0  # ``feat_mu_to_enc(range=10)``
    covariance_heatmaps: bool = False  # --covariance (off in the released default)
    L_inv_scale: float = 0.8  # --L_inv_scal
    # objective (``model.py``): c_l2 · L_rec + c_trans · L_μ + c_precision · L_Σ
    reconstruction_scale: float = 0.1  # --l_2_scal: radius of the mask around each μ_k
    reconstruction_threshold: float = 0.2  # --l_2_threshold
    l1: bool = False  # --L1: absolute instead of squared pixel error
    c_l2: float = 1.0
    c_trans: float = 5.0
    c_precision: float = 0.1  # --c_precision_trans
    # spatial transform (``transformations.tps_parameters``)
    tps_scale: float = 0.05  # --tps_scal
    rotation_scale: float = 0.1  # --rot_scal
    offset_scale: float = 0.15  # --off_scal
    zoom: float = 0.8  # --scal
    zoom_variation: float = 0.05  # --scal_var
    # appearance transform (``ops.augm``)
    contrast: float = 0.5
    brightness: float = 0.3
    saturation: float = 0.1
    hue: float = 0.3
    # optimisation: Adam(1e-3), --bn 32 images, each seen in two views; 100k steps
    learning_rate: float = 1e-3
    batch_size: int = 32
    total_steps: int = 100_000  # --schedule_scale; the loop repeats the data --epochs times

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self,
            ("image_channels", "n_features", "stem_channels", "shape_channels"),
        )
        check_positive(self, ("appearance_channels", "batch_size", "total_steps"))
        check_positive(self, ("shape_depth", "appearance_depth"), 0)
        if not self.decoder_channels or min(self.decoder_channels) < 1:
            raise ValueError(f"decoder_channels must all be ≥ 1, got {self.decoder_channels}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        s, m = self.image_size, self.part_map_size
        if s < 16 or s & (s - 1):
            raise ValueError(f"image_size must be a power of two ≥ 16, got {s}")
        if s % m or s // m not in (1, 2, 4):
            raise ValueError(f"part_map_size must be image_size / 1, 2 or 4, got {m} for {s}")
        if m % 2**self.shape_depth or m % 2**self.appearance_depth:
            raise ValueError(f"part_map_size {m} must be divisible by 2**(hourglass depth)")
        if self.n_parts <= 4:
            raise ValueError(f"n_parts must be > 4 (the decoder's part layout), got {self.n_parts}")
        if len(self.decoder_channels) != self.num_stages:
            raise ValueError(
                f"decoder_channels needs {self.num_stages} entries (stages 4 … {s} px), "
                f"got {len(self.decoder_channels)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_stages(self) -> int:
        """Decoder resolutions 4, 8, …, image_size."""
        return int(math.log2(self.image_size)) - 1

    def stage_layout(self) -> list[tuple[int, tuple[int, int]]]:
        """Per decoder stage (coarsest first): (parts whose heatmap enters, feature slice).

        ``main.py``: parts 0–1 carry appearance at 4×4, parts 2–3 at 8×8, the rest at 16×16;
        heatmaps of 2, 4, then all parts; finer stages get heatmaps only.
        """
        k = self.n_parts
        depths = [2, 4] + [k] * (self.num_stages - 2)
        slices = [(0, 2), (2, 4), (4, k)] + [(0, 0)] * (self.num_stages - 3)
        return list(zip(depths, slices, strict=True))

    @classmethod
    def from_dict(cls, values: dict) -> PartBasedConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> PartBasedConfig:
        """256×256 images, 64×64 part maps, 16 parts, hourglasses of width 256."""
        return cls()

    @classmethod
    def small(cls) -> PartBasedConfig:
        """64×64 figures on one GPU in minutes."""
        return replace(
            cls.paper(),
            image_size=64,
            part_map_size=32,
            shape_channels=128,
            appearance_channels=128,
            shape_depth=4,
            decoder_channels=(256, 256, 128, 128, 64),
            total_steps=8_000,
        )

    @classmethod
    def tiny(cls) -> PartBasedConfig:
        """16×16 figures on 2 CPU cores in seconds: narrow, shallow hourglasses, 200 steps.

        Besides sizes and steps one training setting differs: learning rate 3e-3 instead of
        1e-3, because 200 steps at 1e-3 leave the part maps almost uniform.
        """
        return replace(
            cls.small(),
            image_size=16,
            part_map_size=16,
            n_features=8,
            stem_channels=16,
            shape_channels=16,
            appearance_channels=16,
            shape_depth=2,
            appearance_depth=1,
            decoder_channels=(32, 16, 16),
            learning_rate=3e-3,
            batch_size=16,
            total_steps=200,
        )

    def without_equivariance(self) -> PartBasedConfig:
        """The ablation: the same model and data, no equivariance terms (c_trans = c_prec = 0)."""
        return replace(self, c_trans=0.0, c_precision=0.0)


@dataclass
class PartEncoding:
    """What the encoder gives for a batch (K parts, part maps of side m)."""

    part_maps: torch.Tensor  # (b, K, m, m), each map sums to 1
    mu: torch.Tensor  # (b, K, 2) part means, (x, y) in [-1, 1]
    sigma: torch.Tensor  # (b, K, 2, 2) part covariances
    L_inv: torch.Tensor  # (b, K, 2, 2) scaled inverse Cholesky factor of Σ (``ops``)
    features: torch.Tensor  # (b, K, n_features) part appearance vectors


def coordinate_grid(size: int, device: torch.device | None = None) -> torch.Tensor:
    """Pixel centres ``(size, size, 2)``, (x, y) in [-1, 1] (``align_corners=False``)."""
    line = (torch.arange(size, device=device, dtype=torch.float32) * 2 + 1) / size - 1
    y, x = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([x, y], dim=-1)


def part_statistics(
    part_maps: torch.Tensor, L_inv_scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``part_map_to_mu_L_inv``: μ_k = Σ_u p_k(u) u, Σ_k = Σ_u p_k(u) u uᵀ − μ_k μ_kᵀ (eq. 3).

    Returns ``(mu (b, K, 2), sigma (b, K, 2, 2), L_inv (b, K, 2, 2))`` where Σ = L Lᵀ and
    ``L_inv = scale · L⁻¹``, as the code computes it (the Cholesky factor in closed form).
    """
    grid = coordinate_grid(part_maps.shape[-1], part_maps.device).to(part_maps.dtype)
    mu = torch.einsum("bkhw,hwi->bki", part_maps, grid)
    second = torch.einsum("bkhw,hwi,hwj->bkij", part_maps, grid, grid)
    sigma = second - mu[..., :, None] * mu[..., None, :]
    eps = 1e-12
    a = (sigma[..., 0, 0] + eps).sqrt()  # L = [[a, 0], [b, c]]
    b = sigma[..., 0, 1] / (a + eps)
    c = (sigma[..., 1, 1] - b**2 + eps).clamp_min(eps).sqrt()
    row1 = torch.stack([c, torch.zeros_like(c)], -1)
    row2 = torch.stack([-b, a], -1)
    L_inv = L_inv_scale / (a * c + eps)[..., None, None] * torch.stack([row1, row2], -2)
    return mu, sigma, L_inv


def part_heatmaps(mu: torch.Tensor, precision: torch.Tensor, size: int) -> torch.Tensor:
    """``precision_dist_op``: ``1 / (1 + ‖P_k (u − μ_k)‖²)`` on a ``size²`` grid: (b, K, h, w).

    ``precision`` is ``(b, K, 2, 2)`` (``L_inv``) or a scalar tensor (the isotropic default).
    """
    grid = coordinate_grid(size, mu.device).to(mu.dtype)
    d = grid[None, None] - mu[:, :, None, None, :]  # (b, K, h, w, 2)
    if precision.ndim == 0:
        projected = precision * d
    else:
        projected = torch.einsum("bkij,bkhwj->bkhwi", precision, d)
    return 1.0 / (1.0 + projected.pow(2).sum(-1))


class Encoder(nn.Module):
    """``seperate_hourglass``: part maps (stage 0) and appearance features (stage 1).

    Stage 1 sees the stem features plus a projection of the part maps, as in the code.
    """

    def __init__(self, config: PartBasedConfig) -> None:
        super().__init__()
        c = config
        factor = c.image_size // c.part_map_size
        stem = [  # a 6×6 convolution; stride 2 unless the maps keep the image's size
            nn.ZeroPad2d((2, 2, 2, 2) if factor > 1 else (3, 2, 3, 2)),
            nn.Conv2d(c.image_channels, c.stem_channels, 6, stride=min(factor, 2), bias=False),
            nn.BatchNorm2d(c.stem_channels),
            nn.ReLU(),
        ]
        if factor == 4:  # 256 → 128 → 64: residual, pool, two residuals
            half = c.shape_channels // 2
            stem += [Residual(c.stem_channels, 128), nn.MaxPool2d(2), Residual(128, half)]
            stem += [Residual(half, c.shape_channels)]
        else:
            stem += [Residual(c.stem_channels, c.shape_channels)]
        self.stem = nn.Sequential(*stem)
        self.shape_hourglass = Hourglass(c.shape_depth, c.shape_channels)
        self.shape_head = conv_bn_relu(c.shape_channels, c.shape_channels)
        self.part_logits = nn.Conv2d(c.shape_channels, c.n_parts, 1, bias=False)
        self.part_projection = nn.Conv2d(c.n_parts, c.shape_channels, 1, bias=False)
        self.appearance_in = Residual(c.shape_channels, c.appearance_channels)
        self.appearance_hourglass = Hourglass(c.appearance_depth, c.appearance_channels)
        self.appearance_head = conv_bn_relu(c.appearance_channels, c.appearance_channels)
        self.feature_out = nn.Conv2d(c.appearance_channels, c.n_features, 1, bias=False)
        self.dropout = nn.Dropout(c.dropout)
        self.L_inv_scale = c.L_inv_scale

    def forward(self, image: torch.Tensor) -> PartEncoding:
        r = self.stem(image)  # (b, d, m, m)
        h = self.shape_head(self.dropout(self.shape_hourglass(r)))
        logits = self.part_logits(h)  # (b, K, m, m)
        part_maps = logits.flatten(2).softmax(-1).view_as(logits)  # softmax over space per part
        merged = self.part_projection(part_maps) + r
        g = self.appearance_head(
            self.dropout(self.appearance_hourglass(self.appearance_in(merged)))
        )
        raw = self.feature_out(g)  # (b, n_features, m, m)
        features = torch.einsum("bfhw,bkhw->bkf", raw, part_maps)  # ``get_features``: pooling
        mu, sigma, L_inv = part_statistics(part_maps, self.L_inv_scale)
        return PartEncoding(part_maps, mu, sigma, L_inv, features)


class Decoder(nn.Module):
    """``decoder`` over ``feat_mu_to_enc``: heatmaps (× appearance) at 4, 8, …, image_size."""

    def __init__(self, config: PartBasedConfig) -> None:
        super().__init__()
        self.config = config
        layout = config.stage_layout()
        ch = config.decoder_channels
        inputs = [
            depth + (config.n_features if end > start else 0) for depth, (start, end) in layout
        ]
        self.blocks = nn.ModuleList()
        width = inputs[0]
        for stage in range(config.num_stages - 1):
            self.blocks.append(UpBlock(width, ch[stage], ch[stage + 1]))
            width = ch[stage + 1] + inputs[stage + 1]
        # a 6×6 convolution with TF's "SAME" padding (2 before, 3 after)
        self.out = nn.Sequential(
            nn.ZeroPad2d((2, 3, 2, 3)), nn.Conv2d(width, config.image_channels, 6)
        )

    def encode(self, mu: torch.Tensor, L_inv: torch.Tensor, features: torch.Tensor) -> list:
        """``feat_mu_to_enc``: per stage, part heatmaps and heat-weighted appearance features."""
        c = self.config
        # a scalar filled on mu's device (``new_tensor`` would copy it from the host: a sync)
        precision = L_inv if c.covariance_heatmaps else mu.new_full((), c.heatmap_precision)
        stages = []
        for stage, (depth, (start, end)) in enumerate(c.stage_layout()):
            heat = part_heatmaps(mu, precision, 4 * 2**stage)  # (b, K, s, s)
            parts = [heat[:, :depth]]
            if end > start:
                h = heat[:, start:end]
                h = h / (h.sum(1, keepdim=True) + 1)  # --heat_feat_normalize
                # Σ_k heat_k · f_k: one n_features-channel map (the code sums over the parts)
                parts.append(torch.einsum("bkhw,bkf->bfhw", h, features[:, start:end]))
            stages.append(torch.cat(parts, 1))
        return stages

    def forward(
        self, mu: torch.Tensor, L_inv: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        stages = self.encode(mu, L_inv, features)
        x = stages[0]
        for block, skip in zip(self.blocks, stages[1:], strict=True):
            x = torch.cat([block(x), skip], 1)
        return 2 * torch.sigmoid(self.out(x)) - 1  # the code's sigmoid, mapped to [-1, 1]


class PartBased(nn.Module):
    """Encoder and decoder; ``forward`` decodes the shape of ``x`` with the appearance of ``y``."""

    def __init__(self, config: PartBasedConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, image: torch.Tensor) -> PartEncoding:
        self.check_image(image, "image")
        return self.encoder(image)

    def decode(self, shape: PartEncoding, appearance: PartEncoding) -> torch.Tensor:
        """Render the parts of ``shape`` (μ, L⁻¹) with the appearance vectors of ``appearance``."""
        return self.decoder(shape.mu, shape.L_inv, appearance.features)

    def forward(self, image: torch.Tensor) -> PartEncoding:
        return self.encode(image)

    # Evaluation over a large set a chunk at a time (placement.images_per_pass: one pass at tiny)
    def _chunk(self, image: torch.Tensor) -> int:
        return images_per_pass(image.shape[-2], image.shape[-1])

    @torch.no_grad()
    def encode_in_chunks(self, image: torch.Tensor) -> PartEncoding:
        """``encode`` for evaluation sets of any size (no gradient), a chunk of images at a time."""
        self.check_image(image, "image")
        n = self._chunk(image)
        if image.shape[0] <= n:
            return self.encode(image)
        parts = [self.encode(chunk) for chunk in image.split(n)]
        return PartEncoding(
            **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(PartEncoding)}
        )

    @torch.no_grad()
    def decode_in_chunks(self, mu: torch.Tensor, L_inv: torch.Tensor, features: torch.Tensor):
        """``decoder(mu, L_inv, features)`` for evaluation sets of any size, a chunk at a time."""
        side = self.config.image_size
        n = images_per_pass(side, side)
        if mu.shape[0] <= n:
            return self.decoder(mu, L_inv, features)
        return torch.cat(
            [
                self.decoder(m, li, f)
                for m, li, f in zip(mu.split(n), L_inv.split(n), features.split(n), strict=True)
            ]
        )

    def check_image(self, x: torch.Tensor, name: str) -> None:
        c = self.config
        shape = ("b", c.image_channels, c.image_size, c.image_size)
        check_tensor(x, name, shape, like=self, training=self.training)
