"""The perceptual network of the keyframe generator's loss: the ADE20k ResNet-50 (dilated).

LaMa's high-receptive-field perceptual loss (``ResNetPL``; :func:`esser_lab.keyframe.losses.
resnet_perceptual_loss`) reads the four stages of the encoder of a scene-parsing network trained
on ADE20k by the MIT CSAIL semantic-segmentation code (``ade20k-resnet50dilated-ppm_deepsup``,
file ``encoder_epoch_20.pth``). That ResNet-50 is not torchvision's: its stem is three 3×3
convolutions (3→64 stride 2, 64→64, 64→128) instead of one 7×7, and its last two stages are
dilated instead of strided (layer3: dilation 2, layer4: dilation 4; an output stride of 8).
:class:`ADE20kResNet50Dilated` builds it with the file's parameter names (``conv1`` … ``bn3``,
``layer1.0.conv1.weight`` …, ``layer4.2.bn3.running_var``).

The weights are not in torchvision's weights API and have no published checksum, so they are
never fetched: at ``small``/``full`` (``Scale.pretrained == "published"``) they are read from the
file the user gives (by default ``data/checkpoints/keyframe/ade20k/ade20k-resnet50dilated-
ppm_deepsup/encoder_epoch_20.pth``, the official ``weights_path`` layout under
``data/checkpoints/keyframe``), with a clear message when it is missing. At ``tiny``, in the
tests and in CI (``"stand-in"``) the same architecture gets seeded random weights (Kaiming normal
as the official ``ResNet`` initialisation, and the last BatchNorm of each residual branch at zero,
torchvision's ``zero_init_residual``, so that sixteen random blocks do not blow the features up):
it measures nothing perceptual, and a chapter that uses it says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "ADE20K_ENCODER_FILE",
    "ADE20kResNet50Dilated",
    "ade20k_encoder",
    "default_ade20k_path",
]

#: The file's place under the official ``weights_path`` (``ModelBuilder.get_encoder``).
ADE20K_ENCODER_FILE = "ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"
_LAYERS = (3, 4, 6, 3)  # ResNet-50's bottlenecks per stage


class _Bottleneck(nn.Module):
    """1×1 → 3×3 (stride or dilation) → 1×1 ×4, BatchNorm after each, ReLU; a projection when
    the shape changes (the CSAIL ``Bottleneck``, its names)."""

    def __init__(
        self, inplanes: int, planes: int, stride: int, dilation: int, project: bool
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if project:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ADE20kResNet50Dilated(nn.Module):
    """The CSAIL ``ResnetDilated(resnet50, dilate_scale=8)`` encoder: deep stem, max-pool,
    layer1 (stride 1), layer2 (stride 2), layer3 and layer4 dilated (2 and 4; their first
    3×3 at half the dilation, the official ``_nostride_dilate``). :meth:`forward` returns the
    four stages' outputs (256, 512, 1024, 2048 channels at 1/4, 1/8, 1/8, 1/8 of the input's
    side), as the official ``forward(x, return_feature_maps=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 128
        # (planes, stride, dilation of the first 3×3, dilation of the others) per stage
        stages = ((64, 1, 1, 1), (128, 2, 1, 1), (256, 1, 1, 2), (512, 1, 2, 4))
        for i, ((planes, stride, first, rest), count) in enumerate(
            zip(stages, _LAYERS, strict=True), start=1
        ):
            blocks = []
            for j in range(count):
                project = j == 0  # every stage's first block changes the width
                blocks.append(
                    _Bottleneck(
                        inplanes,
                        planes,
                        stride if j == 0 else 1,
                        first if j == 0 else rest,
                        project,
                    )
                )
                inplanes = planes * 4
            self.add_module(f"layer{i}", nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features

    def train(self, mode: bool = True) -> ADE20kResNet50Dilated:
        """Always in eval mode: a frozen loss network keeps its BatchNorm statistics.

        # official code: ``ResNetPL`` calls ``.eval()`` once, but as a submodule of the
        # Lightning module it is put back in train mode with it, so the official BatchNorms
        # normalise with batch statistics (and update their running ones) during training;
        # here the published statistics are used throughout."""
        return super().train(False)


def default_ade20k_path() -> Path:
    """``data/checkpoints/keyframe/`` + :data:`ADE20K_ENCODER_FILE`."""
    from esser_lab.pretrained import checkpoint_folder

    return checkpoint_folder() / "keyframe" / ADE20K_ENCODER_FILE


def _stand_in(encoder: ADE20kResNet50Dilated, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in encoder.modules():
            if isinstance(module, _Bottleneck):
                nn.init.zeros_(module.bn3.weight)


def _load(encoder: ADE20kResNet50Dilated, path: Path) -> None:
    from esser_lab.weights import read_state_dict

    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = encoder.state_dict()
    # files written by old torch have no BatchNorm step counters; the counters are not used
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: not the ADE20k ResNet-50 (dilated) encoder state dict of the CSAIL "
            "semantic-segmentation release (keys conv1.weight, bn1.*, conv2.*, conv3.*, "
            f"layer1.0.conv1.weight … layer4.2.bn3.*); missing {missing[:6]}, unexpected "
            f"{unexpected[:6]}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(value.shape)}, the encoder's is "
                f"{tuple(expected[key].shape)}"
            )
    encoder.load_state_dict(state, strict=False)


def ade20k_encoder(
    pretrained: str, path: str | Path | None = None, *, seed: int = 0
) -> ADE20kResNet50Dilated:
    """The frozen ADE20k ResNet-50 (dilated) encoder: the published weights read from ``path``
    (default :func:`default_ade20k_path`) when ``pretrained == "published"``, else a seeded
    stand-in of the same architecture. Never downloads."""
    if pretrained not in ("published", "stand-in"):
        raise ValueError(f"pretrained must be 'published' or 'stand-in', got {pretrained!r}")
    with torch.random.fork_rng(devices=[]):  # building the layers draws their default init
        encoder = ADE20kResNet50Dilated()
    if pretrained == "stand-in":
        _stand_in(encoder, seed)
    else:
        path = Path(path) if path is not None else default_ade20k_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"the ADE20k ResNet-50 (dilated) encoder of LaMa's perceptual loss is not at "
                f"{path}. It is not in torchvision and has no published checksum, so it is not "
                "downloaded: get the CSAIL semantic-segmentation release's "
                "ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth (the file LaMa's "
                "README points to) and place it there or pass its path; or run with "
                "ESSER_LAB_PRETRAINED=stand-in (seeded random weights: measures nothing)."
            )
        _load(encoder, path)
    return encoder.requires_grad_(False).eval()
