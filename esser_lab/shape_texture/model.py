"""The backbones of chapter 11: a ResNet whose features are read out per stage.

Islam, Kowal, Esser, Jia, Ommer, Derpanis & Bruce, *Shape or Texture: Understanding
Discriminative Features in CNNs*, ICLR 2021 (arXiv:2101.11604).

The paper studies ImageNet classifiers (ResNet-50 above all) by global-average-pooling the
output of each stage, ``res1`` … ``res5`` (official ``dim_estimation/models/resnet.py``:
``res1`` is the stem after its max-pool, 64 channels; ``res2`` … ``res5`` are ``layer1`` …
``layer4``, 256 / 512 / 1024 / 2048 channels), and feeding those vectors to the dimension
estimate. :class:`ShapeTextureNet` gives every backbone the same three views:

* ``forward(x)``: class logits ``(b, num_classes)``;
* ``feature_maps(x)``: one map ``(b, c_s, h_s, w_s)`` per stage;
* ``stage_features(x)``: the same, globally average-pooled, ``(b, c_s)`` per stage.

``ShapeTextureConfig.paper()`` is torchvision's ResNet-50 (the official code's, with
torchvision's key names, so torchvision's ImageNet weights load into ``model.resnet``; it
standardises its ``[-1, 1]`` input the way those weights expect).
``small()`` and ``tiny()`` are the same family shrunk: a stem of one 3×3 convolution (no
stride, no max-pool: their images are 16–32 px) and stages of basic residual blocks, stride 2
from the second stage on. Images are ``(b, 3, s, s)`` in ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields

__all__ = ["BasicBlock", "ShapeTextureConfig", "ShapeTextureNet"]

STAGE_NAMES = ("res1", "res2", "res3", "res4", "res5")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ShapeTextureConfig:
    """A shape classifier's backbone and its training (defaults: torchvision's ResNet-50 and its
    ImageNet recipe, the backbones the paper analyses; the paper takes them pretrained).

    ``stage_channels`` are the output widths of the residual stages; the stem is ``res1``.
    """

    architecture: Literal["resnet50", "resnet"] = "resnet50"
    in_channels: int = 3
    image_size: int = 224
    num_classes: int = 1000
    stem_channels: int = 64
    stage_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    blocks_per_stage: tuple[int, ...] = (3, 4, 6, 3)
    # torchvision's ImageNet recipe (SGD, lr 0.1 for batch 256, momentum 0.9, weight decay 1e-4;
    # its lr steps down every 30 epochs; here the rate is constant at every scale)
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 256
    num_steps: int = 450_000  # 90 epochs of 1.28 M images at batch 256

    def __post_init__(self) -> None:
        check_fields(self)
        if len(self.stage_channels) != len(self.blocks_per_stage) or not self.stage_channels:
            raise ValueError(
                "stage_channels and blocks_per_stage need one entry per stage, got "
                f"{self.stage_channels} and {self.blocks_per_stage}"
            )
        if len(self.stage_channels) + 1 > len(STAGE_NAMES):
            raise ValueError(f"at most {len(STAGE_NAMES) - 1} stages, got {self.stage_channels}")
        if self.architecture == "resnet50" and (
            self.stem_channels,
            self.stage_channels,
            self.blocks_per_stage,
            self.in_channels,
        ) != (64, (256, 512, 1024, 2048), (3, 4, 6, 3), 3):
            raise ValueError("architecture 'resnet50' fixes the widths and depths to ResNet-50's")
        for name in ("image_size", "num_classes", "stem_channels", "batch_size", "num_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if min(self.stage_channels) < 1 or min(self.blocks_per_stage) < 1:
            raise ValueError("stage widths and block counts must be ≥ 1")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return STAGE_NAMES[: len(self.stage_channels) + 1]

    @property
    def feature_dims(self) -> tuple[int, ...]:
        """The pooled feature width of each stage, ``res1`` first."""
        return (self.stem_channels, *self.stage_channels)

    @classmethod
    def paper(cls) -> ShapeTextureConfig:
        """torchvision's ResNet-50 on ImageNet (official ``models.resnet.resnet50``)."""
        return cls()

    @classmethod
    def small(cls, num_classes: int = 4, image_size: int = 32) -> ShapeTextureConfig:
        return replace(
            cls(),
            architecture="resnet",
            image_size=image_size,
            num_classes=num_classes,
            stem_channels=32,
            stage_channels=(32, 64, 128, 256),
            blocks_per_stage=(2, 2, 2, 2),
            learning_rate=0.05,
            weight_decay=5e-4,
            batch_size=128,
            num_steps=4000,
        )

    @classmethod
    def tiny(cls, num_classes: int = 4, image_size: int = 16) -> ShapeTextureConfig:
        return replace(
            cls.small(num_classes, image_size),
            stem_channels=16,
            stage_channels=(16, 32, 48, 64),
            blocks_per_stage=(1, 1, 1, 1),
            batch_size=64,
            num_steps=240,
        )


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the input (a 1×1 conv + BN where the width or
    the stride changes), then ReLU: torchvision's ``BasicBlock`` (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(h + identity)


class ShapeTextureNet(nn.Module):
    """A classifier whose stages are read out (see the module docstring)."""

    def __init__(self, config: ShapeTextureConfig) -> None:
        super().__init__()
        if not isinstance(config, ShapeTextureConfig):
            raise TypeError(f"config must be a ShapeTextureConfig, got {type(config).__name__}")
        self.config = config
        if config.architecture == "resnet50":
            from torchvision.models import resnet50

            self.resnet = resnet50(weights=None, num_classes=config.num_classes)
            # torchvision's ImageNet weights expect [0, 1] RGB standardised per channel; the
            # images here are in [-1, 1]. Not saved: the state dict keeps torchvision's keys.
            # official code: cv2 reads BGR and the means are given in BGR order, so the
            # network sees BGR; here RGB, as the weights were trained
            mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
            self.register_buffer("pixel_mean", mean.view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", std.view(1, 3, 1, 1), persistent=False)
            return
        c = config.stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )
        stages = []
        for index, (width, blocks) in enumerate(
            zip(config.stage_channels, config.blocks_per_stage, strict=True)
        ):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(c, width, stride)]
            layers += [BasicBlock(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            c = width
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(c, config.num_classes)

    def _check(self, x: Tensor) -> None:
        c = self.config.in_channels
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != c:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"images must be (b, {c}, h, w), got {got}")
        check_tensor(x, "images", ("b", c, "h", "w"), like=self, training=self.training)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """One map per stage, ``res1`` first: ``(b, c_s, h_s, w_s)``."""
        self._check(x)
        if self.config.architecture == "resnet50":
            r = self.resnet
            x = ((x + 1) / 2 - self.pixel_mean) / self.pixel_std
            h = r.maxpool(r.relu(r.bn1(r.conv1(x))))  # res1 (official: after the max-pool)
            maps = [h]
            for layer in (r.layer1, r.layer2, r.layer3, r.layer4):
                h = layer(h)
                maps.append(h)
            return maps
        h = self.stem(x)
        maps = [h]
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """Globally average-pooled features per stage, ``(b, c_s)`` each (official
        ``avgpool`` then ``flatten`` at the chosen stage)."""
        return [h.mean((2, 3)) for h in self.feature_maps(x)]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(b, num_classes)``."""
        last = self.feature_maps(x)[-1].mean((2, 3))  # (b, c)
        fc = self.resnet.fc if self.config.architecture == "resnet50" else self.fc
        return fc(last)
