"""Building blocks of chapter 3: local group norm (style-conditioned), encoders, discriminator.

Kotovenko et al., ICCV 2019; official ``ops.py`` (``local_group_norm``) and ``module.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.checks import check_tensor

# the official discriminator, layer by layer: channels (× ndf), side-prediction kernel, window /
_DISC_CHANNELS = (2, 2, 4, 8, 8, 16, 16)
_DISC_PRED_KERNELS = (5, 10, 3, 10, 3, 6, 3)
_DISC_WINDOW_DIVISORS = (2, 4, 8, 16, 32, 64, 128)


class ReflectConv(nn.Conv2d):
    """A convolution with reflection padding (official: ``REFLECT`` pads, no bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, bias=False)
        self.pad = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return super().forward(x)


class SamePadConv(nn.Conv2d):
    """Stride-1 convolution with TensorFlow's ``SAME`` zero padding (extra row/column at the end
    for even kernels, as the official side predictions with kernels 10 and 6 need)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(in_channels, out_channels, kernel)
        before = (kernel - 1) // 2
        self.padding_sizes = (before, kernel - 1 - before) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.padding_sizes))


def dense(in_features: int, out_features: int) -> nn.Linear:
    """A dense layer with TensorFlow's defaults (Glorot-uniform kernel, zero bias), as in the
    official ``tf.layers.dense``; PyTorch's default bias would give every style vector a common
    random direction and start them almost collapsed."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> ReflectConv:
    return ReflectConv(in_channels, out_channels, 3, stride)


class LocalGroupNorm(nn.Module):
    """Group norm with statistics over sliding windows; scale/offset learnt or predicted from s.

    ``ops.local_group_norm``: channels split into groups of ``group_size`` (the code's ``G``);
    each group's mean and variance are averaged over ``window × window`` patches with stride
    ``window/2`` and bilinearly resized back, so an image is normalised *locally*. With
    ``style_dim`` the per-channel scale and offset are ``lrelu(W s + b)`` (AdaIN-like style
    injection at every layer); without, they are learnt parameters. A window that covers the
    whole map makes this an ordinary group norm.
    """

    def __init__(
        self, channels: int, group_size: int, window: int, style_dim: int | None = None
    ) -> None:
        super().__init__()
        self.group_size = min(group_size, channels)
        if channels % self.group_size:
            raise ValueError(f"{channels} channels do not split into groups of {self.group_size}")
        self.channels = channels
        self.window = max(int(window), 1)
        self.style_dim = style_dim
        if style_dim is None:
            self.scale = nn.Parameter(1 + 0.02 * torch.randn(channels))
            self.offset = nn.Parameter(torch.zeros(channels))
        else:
            self.to_scale = dense(style_dim, channels)
            self.to_offset = dense(style_dim, channels)

    def _local_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Window means of ``(b, groups, h, w)``, resized back to ``(h, w)``."""
        h, w = x.shape[-2:]
        window = min(self.window, h, w)
        pooled = F.avg_pool2d(x, window, stride=max(window // 2, 1))
        if pooled.shape[-2:] == (1, 1):
            return pooled.expand_as(x)
        return F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        # a layer inside the networks: shape only (its input is made within the step)
        check_tensor(x, "x", ("b", self.channels, "h", "w"), finite=False)
        b, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {c}")
        groups = x.view(b, c // self.group_size, self.group_size, h, w)
        mean = self._local_mean(groups.mean(dim=2))[:, :, None]  # (b, groups, 1, h, w)
        var = self._local_mean((groups - mean).square().mean(dim=2))[:, :, None]
        normalised = ((groups - mean) / torch.sqrt(var + 1e-5)).view(b, c, h, w)
        if self.style_dim is None:
            if style is not None:
                raise ValueError("this normalisation is not style-conditioned: pass no style")
            return normalised * self.scale[:, None, None] + self.offset[:, None, None]
        if style is None or style.shape != (b, self.style_dim):
            got = None if style is None else tuple(style.shape)
            raise ValueError(f"style must have shape ({b}, {self.style_dim}), got {got}")
        scale = F.leaky_relu(self.to_scale(style), 0.2)[:, :, None, None]  # (b, c, 1, 1)
        offset = F.leaky_relu(self.to_offset(style), 0.2)[:, :, None, None]
        return normalised * scale + offset


class ConvStack(nn.Module):
    """``module.encoder``'s convolutions: a stride-1 stem, then ``n`` stride-2 convs, ReLU."""

    def __init__(self, ngf: int, num_downsamplings: int, group_size: int, window: int) -> None:
        super().__init__()
        widths = [ngf] + [ngf * 2**k for k in range(num_downsamplings)]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for k, width in enumerate(widths):
            in_width = 3 if k == 0 else widths[k - 1]
            self.convs.append(conv3x3(in_width, width, stride=1 if k == 0 else 2))
            # official windows: /2 for the stem, then /4, 32 (fixed), /8, /16; here /2^(k+1)
            self.norms.append(LocalGroupNorm(width, group_size, window // 2 ** (k + 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)))
        return x


class ContentEncoder(ConvStack):
    """E_c: photo ``(b, 3, h, w)`` → content code ``(b, ngf·2^(n−1), h/2^n, w/2^n)``."""


class StyleEncoder(nn.Module):
    """E_s: the same conv stack (own weights), global average, 3 dense layers, L2 normalised."""

    def __init__(
        self, ngf: int, num_downsamplings: int, group_size: int, style_dim: int, dropout: float
    ) -> None:
        super().__init__()
        top = ngf * 2 ** (num_downsamplings - 1)
        # official: the style encoder's windows start from a fixed 128 px
        self.convs = ConvStack(ngf, num_downsamplings, group_size, 128)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = dense(top, ngf * 8)
        self.fc2 = dense(ngf * 8, ngf * 8)
        self.fc3 = dense(ngf * 8, style_dim)

    def forward(self, painting: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.convs(painting).mean(dim=(2, 3)))  # (b, top)
        h = F.relu(self.fc1(self.dropout(h)))
        h = F.relu(self.fc2(self.dropout(h)))
        return F.normalize(self.fc3(self.dropout(h)), dim=1)  # (b, style_dim), ‖s‖ = 1


@dataclass
class DiscriminatorOutput:
    """Logits of the three heads."""

    real: torch.Tensor  # (b, 1, h/2, w/2): painting (real) vs stylised photo (fake), patch-wise
    style: torch.Tensor  # (b, num_styles, h/2, w/2): the artist, per pixel
    content: torch.Tensor  # (b, num_content_classes): the photo's class


class Discriminator(nn.Module):
    """Multi-scale discriminator: each stride-2 layer adds a 1-channel side prediction.

    The side predictions, resized to the first layer's resolution, feed three heads: real/fake
    (``d_pred_discr``), artist (``d_pred_style``) and content (``d_pred_cont_*``: conv, global
    max, three dense layers).
    """

    def __init__(
        self,
        ndf: int,
        num_layers: int,
        group_size: int,
        window: int,
        num_styles: int,
        num_content_classes: int,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.preds = nn.ModuleList()
        in_width = 3
        for k in range(num_layers):
            width = ndf * _DISC_CHANNELS[k]
            self.convs.append(nn.Conv2d(in_width, width, 5, 2, padding=2, bias=False))
            self.norms.append(LocalGroupNorm(width, group_size, window // _DISC_WINDOW_DIVISORS[k]))
            self.preds.append(SamePadConv(width, 1, _DISC_PRED_KERNELS[k]))
            in_width = width + 1  # each layer sees the previous side prediction too
        self.real_head = nn.Conv2d(num_layers, 1, 5, padding=2)
        self.style_head = nn.Conv2d(num_layers, num_styles, 5, padding=2)
        self.content_conv = nn.Conv2d(num_layers, num_content_classes, 5, padding=2)
        self.content_mlp = nn.Sequential(
            dense(num_content_classes, ndf * 4),
            nn.ReLU(),
            dense(ndf * 4, ndf * 4),
            nn.ReLU(),
            dense(ndf * 4, num_content_classes),
        )

    def forward(self, image: torch.Tensor) -> DiscriminatorOutput:
        h, side = image, []
        for conv, norm, pred in zip(self.convs, self.norms, self.preds, strict=True):
            h = F.leaky_relu(norm(conv(h)), 0.2)
            p = pred(h)
            side.append(p)
            h = torch.cat([h, p], dim=1)
        size = side[0].shape[-2:]
        resized = [side[0]] + [F.interpolate(p, size=size, mode="bilinear") for p in side[1:]]
        preds = torch.cat(resized, dim=1)  # (b, num_layers, h/2, w/2)
        content = self.content_conv(preds).amax(dim=(2, 3))  # global max pool
        return DiscriminatorOutput(
            self.real_head(preds), self.style_head(preds), self.content_mlp(content)
        )
