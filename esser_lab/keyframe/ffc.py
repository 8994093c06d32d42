"""Fast Fourier convolution blocks of the local stream (chapter 15), after LaMa.

Suvorov et al. 2022, *Resolution-robust Large Mask Inpainting with Fourier Convolutions* (WACV,
arXiv 2109.07161), as vendored by the guided-inpainting release (``gi/modules/gi/lama_guided.py``):
``FFCResnetBlock`` → two ``FFC_BN_ACT`` → ``FFC`` (four paths: local→local, local→global,
global→local by 3×3 convolutions; global→global by a ``SpectralTransform`` whose ``FourierUnit``
is a 1×1 convolution on the real and imaginary parts of the image's 2-D FFT). A share
``ratio`` of the channels is *global* (the paper's 0.75): every output pixel of the spectral
path sees the whole feature map, which is what lets LaMa fill large holes.

Only the configuration the keyframe paper uses is written out (``configs/ours.yaml``: no local
Fourier unit (``enable_lfu: false``), no gating, no squeeze-excitation, reflect padding, the
"inline" layout in which the local channels come first and the global ones last in one tensor).
The submodule names are the official ones, so a released state dict loads by name.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FFCResnetBlock", "ResidualConvBlock"]


class FourierUnit(nn.Module):
    """1×1 conv + BatchNorm + ReLU on the stacked real/imaginary parts of ``rfft2(x)`` (ortho)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")  # (b, c, h, w//2+1) complex
        # official layout: channels (c, re/im) interleaved as c·2 + part
        parts = torch.stack((spectrum.real, spectrum.imag), dim=2).reshape(b, 2 * c, h, -1)
        parts = self.relu(self.bn(self.conv_layer(parts.to(x.dtype))))
        parts = parts.float().reshape(b, c, 2, h, -1)
        spectrum = torch.complex(parts[:, :, 0], parts[:, :, 1])
        return torch.fft.irfft2(spectrum, s=(h, w), norm="ortho").to(x.dtype)


class SpectralTransform(nn.Module):
    """conv1 (1×1, halves the channels) → x + FourierUnit(x) → conv2 (1×1); stride 1, no LFU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(True)
        )
        self.fu = FourierUnit(half)
        self.conv2 = nn.Conv2d(half, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


def _conv3(c_in: int, c_out: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, padding_mode="reflect")


class FFC(nn.Module):
    """The four paths between local and global channels (official ``FFC``, ungated)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        glob = int(channels * ratio)  # official: int(in_channels * ratio_gin)
        local = channels - glob
        self.convl2l = _conv3(local, local)
        self.convl2g = _conv3(local, glob)
        self.convg2l = _conv3(glob, local)
        self.convg2g = SpectralTransform(glob, glob)

    def forward(self, x_l: Tensor, x_g: Tensor) -> tuple[Tensor, Tensor]:
        return self.convl2l(x_l) + self.convg2l(x_g), self.convl2g(x_l) + self.convg2g(x_g)


class FFCBNAct(nn.Module):
    """FFC then BatchNorm + ReLU on each part (official ``FFC_BN_ACT``)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        self.ffc = FFC(channels, ratio)
        glob = int(channels * ratio)
        self.bn_l = nn.BatchNorm2d(channels - glob)
        self.bn_g = nn.BatchNorm2d(glob)
        self.act_l = nn.ReLU(inplace=True)
        self.act_g = nn.ReLU(inplace=True)

    def forward(self, x_l: Tensor, x_g: Tensor) -> tuple[Tensor, Tensor]:
        x_l, x_g = self.ffc(x_l, x_g)
        return self.act_l(self.bn_l(x_l)), self.act_g(self.bn_g(x_g))


class FFCResnetBlock(nn.Module):
    """x + conv2(conv1(x)) over the split (local, global) channels of one (b, c, h, w) tensor.

    ``ratio``: the global share of the channels (paper 0.75); the last ``int(c·ratio)`` channels
    are the global part (the official ``inline=True`` layout)."""

    def __init__(self, channels: int, ratio: float = 0.75) -> None:
        super().__init__()
        glob = int(channels * ratio)
        if not 0 < glob < channels or glob % 2:
            raise ValueError(
                "an FFC block needs local channels and an even number of global ones: "
                f"{channels} channels at ratio {ratio} give {channels - glob} local, {glob} global"
            )
        self.conv1 = FFCBNAct(channels, ratio)
        self.conv2 = FFCBNAct(channels, ratio)
        self.split = channels - int(channels * ratio)

    def forward(self, x: Tensor) -> Tensor:
        x_l, x_g = x[:, : self.split], x[:, self.split :]
        y_l, y_g = self.conv2(*self.conv1(x_l, x_g))
        return torch.cat((x_l + y_l, x_g + y_g), dim=1)


class ResidualConvBlock(nn.Module):
    """x + ReLU(BN(grouped 3×3 conv(x))): the plain-convolution local block of
    ``configs/ours_no_ffc.yaml`` (official ``RESIDUAL_CONV_NORM_ACT``, ``groups=num_groups``)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            channels, channels, 3, padding=1, groups=groups, bias=False, padding_mode="reflect"
        )
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.norm(self.conv(x)))
