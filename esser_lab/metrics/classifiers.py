"""Small expert classifiers that a chapter trains itself, to judge generated images.

Chapter 3 uses two: an *artist* classifier trained on real paintings (the "deception rate" of
Kotovenko et al. 2019 asks it whether a stylisation looks like the target artist) and a
*content* classifier (does the stylisation still show the photo's digit). They stand in for the
paper's WikiArt-trained artist classifier. Plain PyTorch: training takes a few seconds on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.checks import check_tensor


class ExpertClassifier(nn.Module):
    """Three stride-2 convolutions, global average pooling, a linear layer: ``(b, 3, h, w) →
    (b, num_classes)`` logits."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be ≥ 2, got {num_classes}")
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = ("b", self.in_channels, "h", "w")
        check_tensor(x, "x", shape, like=self, training=self.training)
        return self.head(self.features(x).mean(dim=(2, 3)))


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    generator: torch.Generator,
) -> ExpertClassifier:
    """Train an :class:`ExpertClassifier` with Adam on ``(images, labels)``; returns it in eval
    mode and frozen."""
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"need images (n, c, h, w) and labels (n,), got {tuple(images.shape)}, "
            f"{tuple(labels.shape)}"
        )
    model = ExpertClassifier(num_classes, images.shape[1]).to(images.device)  # where the data is
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True)
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Class predictions ``(n,)`` in batches, computed where ``model``'s weights are and returned
    on ``images``' device."""
    device = next(model.parameters()).device
    return torch.cat(
        [
            model(chunk.to(device)).argmax(dim=1).to(images.device)
            for chunk in images.split(batch_size)
        ]
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    return (predict(model, images).to(labels.device) == labels).float().mean().item()
