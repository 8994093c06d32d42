"""Building blocks of the part-based model: the hourglass's residual module and the hourglass.

Differs from ``esser_lab.vunet.layers.ResidualBlock``: a pre-activation bottleneck with batch
norm (Newell et al.'s stacked-hourglass module, as ``architecture_ops._residual`` of
``CompVis/unsupervised-disentangling``), not a weight-normalised gated block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """``_conv_bn_relu``: convolution, batch norm (momentum 0.9 in TF = 0.1 in torch), ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=False),
        nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1),
        nn.ReLU(),
    )


class Residual(nn.Module):
    """``_residual``: BN-ReLU-1×1 (c/2), BN-ReLU-3×3 (c/2), BN-ReLU-1×1 (c), plus a skip.

    The skip is the identity when the widths agree, else a 1×1 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.block = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class Hourglass(nn.Module):
    """``_hourglass``: an upper residual branch plus a pooled lower branch, recursively.

    ``depth`` counts the 2×2 max-poolings: the official ``nLow = 4`` recursion pools 5 times
    (64 → 2 pixels), ``n_Low_feat = 1`` pools twice.
    """

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be ≥ 1, got {depth}")
        self.up = Residual(channels, channels)
        self.low_in = Residual(channels, channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.low_out = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low_out(self.inner(self.low_in(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class UpBlock(nn.Module):
    """``nccuc``: 4×4 conv-BN-ReLU, a stride-2 4×4 transposed conv + ReLU, then the next stage's
    part encoding is concatenated (in ``Decoder.forward``)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 1, 2))  # TF "SAME" for a 4×4 kernel
        self.conv = nn.Conv2d(in_channels, mid_channels, 4)
        self.norm = nn.BatchNorm2d(mid_channels)
        self.up = nn.ConvTranspose2d(mid_channels, out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.up(F.relu(self.norm(self.conv(self.pad(x))))))
