"""Shape decoding (chapter 11): per-pixel readouts on frozen features.

The paper reads binary (foreground / background) and semantic (per-pixel class) segmentation
out of a frozen ImageNet or Stylized-ImageNet ResNet-50 with a trained head (official
``shape_decoding/``: DeepLab heads on one stage or several) and finds that where the object is
decodes far better than *which* object each pixel belongs to. Here the head is a per-pixel
two-layer perceptron (a 1×1 convolution, ReLU, a 1×1 convolution), trained on:

* the network's **hypercolumns**: every stage's map upsampled (bilinear) to the image size and
  concatenated, as the official multi-stage heads read from several layers;
* the **raw pixels** of each pixel's 3×3 neighbourhood (the receptive field of the network's
  first convolution): the same head on the image itself, the baseline the features must beat.

Scores are the mean intersection-over-union over classes (background included), with the
chance level of the best constant prediction (every pixel the most frequent class) and the
score normalised between the two: ``(mIoU − chance) / (1 − chance)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.shape_texture.model import ShapeTextureNet

__all__ = [
    "ReadoutScore",
    "fit_readout",
    "hypercolumns",
    "mean_iou",
    "pixel_patches",
    "predict",
    "score_readout",
]


@torch.no_grad()
def hypercolumns(model: ShapeTextureNet, images: Tensor, batch_size: int = 256) -> Tensor:
    """``(n, Σ_s c_s, h, w)``: every stage's feature map at the image size (eval mode), on the
    CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    size = images.shape[-2:]
    out = []
    for i in range(0, len(images), batch_size):
        maps = model.feature_maps(images[i : i + batch_size].to(device))
        up = [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps]
        out.append(torch.cat(up, 1).cpu())
    model.train(was_training)
    return torch.cat(out)


def pixel_patches(images: Tensor, kernel: int = 3) -> Tensor:
    """``(n, c·kernel², h, w)``: each pixel's ``kernel × kernel`` neighbourhood (zero-padded)."""
    if images.dim() != 4:
        raise ValueError(f"images must be (n, c, h, w), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    patches = F.unfold(images, kernel, padding=kernel // 2)  # (n, c·k², h·w)
    return patches.view(n, c * kernel * kernel, h, w)


def mean_iou(prediction: Tensor, target: Tensor, num_classes: int) -> float:
    """Mean IoU over the classes present in ``target`` or ``prediction`` (same shapes, long)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target differ: {tuple(prediction.shape)} vs {tuple(target.shape)}"
        )
    ious = []
    for k in range(num_classes):
        p, t = prediction == k, target == k
        union = (p | t).sum()
        if union > 0:
            ious.append(float((p & t).sum() / union))
    return sum(ious) / len(ious)


@dataclass(frozen=True)
class ReadoutScore:
    """A readout's held-out mIoU, its chance level and the normalised score."""

    miou: float
    chance: float

    @property
    def normalised(self) -> float:
        """``(mIoU − chance) / (1 − chance)``: 0 at chance, 1 perfect."""
        return (self.miou - self.chance) / (1 - self.chance)


def _pixels(inputs: Tensor) -> Tensor:
    return inputs.permute(0, 2, 3, 1).reshape(-1, inputs.shape[1])  # (n·h·w, c)


def fit_readout(
    inputs: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    hidden: int = 32,
    steps: int = 200,
    pixels_per_step: int = 4096,
    learning_rate: float = 1e-2,
    generator: torch.Generator,
) -> nn.Sequential:
    """A per-pixel head ``Linear(c, hidden) → ReLU → Linear(hidden, num_classes)`` trained with
    Adam on cross-entropy over random pixels of ``inputs`` ``(n, c, h, w)`` for ``target``
    ``(n, h, w)``. Inputs are standardised per channel (the statistics sit in the head)."""
    if inputs.dim() != 4 or target.shape != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(
            f"inputs (n, c, h, w) and target (n, h, w) must match, got {tuple(inputs.shape)} "
            f"and {tuple(target.shape)}"
        )
    x, y = _pixels(inputs), target.reshape(-1)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        head = nn.Sequential(
            _Standardise(mean, std),
            nn.Linear(x.shape[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
    optimizer = torch.optim.Adam(head.parameters(), lr=learning_rate)
    for _ in range(steps):
        rows = torch.randint(0, len(x), (pixels_per_step,), generator=generator)
        loss = F.cross_entropy(head(x[rows]), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head.eval().requires_grad_(False)


class _Standardise(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def predict(head: nn.Sequential, inputs: Tensor) -> Tensor:
    """The head's class per pixel, ``(n, h, w)``."""
    n, _, h, w = inputs.shape
    return head(_pixels(inputs)).argmax(1).view(n, h, w)


def score_readout(
    head: nn.Sequential, inputs: Tensor, target: Tensor, num_classes: int
) -> ReadoutScore:
    """Held-out mIoU of ``head`` on ``inputs`` against ``target``, and the chance level (every
    pixel the most frequent class of ``target``)."""
    prediction = predict(head, inputs)
    majority = torch.bincount(target.reshape(-1), minlength=num_classes).argmax()
    chance = mean_iou(torch.full_like(target, int(majority)), target, num_classes)
    return ReadoutScore(mean_iou(prediction, target, num_classes), chance)
