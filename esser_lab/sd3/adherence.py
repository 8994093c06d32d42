"""Caption adherence: does a generated image show what its caption says?

Stable Diffusion 3 (arXiv 2403.03206) measures prompt adherence with GenEval (Sec. 5.3, Table 5),
which runs an object detector on generated images and checks each prompt's objects, colours,
counts and positions. The toy's stand-in (notes §6.2b): a small classifier trained on *real*
captioned sprites (:mod:`esser_lab.sd3.data`) that reads every captioned attribute (number of
objects, colour / shape / texture of each object in caption order, the relation), and
:func:`caption_accuracy` = the fraction of images whose every captioned attribute it recognises
(GenEval's per-prompt success, all-or-nothing).

Differs from :class:`esser_lab.metrics.classifiers.ExpertClassifier` (which it would reuse): no
global average pooling, the features are flattened, because "which object is left" needs where
things are; and one head per attribute, trained jointly with absent labels ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.data._raster import check_generator, check_positive_int
from esser_lab.sd3.data import ABSENT, LABEL_CLASSES

__all__ = [
    "AttributeClassifier",
    "attribute_accuracy",
    "caption_accuracy",
    "fit_attribute_classifier",
]


class AttributeClassifier(nn.Module):
    """Three convolutions (strides 1, 2, 2), a hidden layer over the flattened ``(size/4)²`` map,
    one linear head per label of ``LABEL_CLASSES``: ``(b, 3, size, size) → {label: logits}``."""

    def __init__(self, size: int, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        check_positive_int(size, "size")
        if size % 4:
            raise ValueError(f"size must be a multiple of 4, got {size}")
        self.size = size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, hidden),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden, count) for name, count in LABEL_CLASSES.items()}
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        check_tensor(x, "x", ("b", 3, self.size, self.size), like=self, training=self.training)
        features = self.features(x)
        return {name: head(features) for name, head in self.heads.items()}


def _targets(labels: dict[str, Tensor], n: int) -> dict[str, Tensor]:
    """Labels as class indices (``num_objects`` 1/2 → 0/1), checked against ``LABEL_CLASSES``."""
    missing = sorted(set(LABEL_CLASSES) - set(labels))
    if missing:
        raise ValueError(f"labels lack {missing}; expected the keys {list(LABEL_CLASSES)}")
    targets = {}
    for name in LABEL_CLASSES:
        value = labels[name]
        if not isinstance(value, Tensor) or value.shape != (n,) or value.is_floating_point():
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else value
            raise ValueError(f"labels[{name!r}] must be an integer tensor ({n},), got {got}")
        targets[name] = value - 1 if name == "num_objects" else value
    return targets


def fit_attribute_classifier(
    images: Tensor,
    labels: dict[str, Tensor],
    steps: int = 600,
    generator: torch.Generator | None = None,
    *,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
) -> AttributeClassifier:
    """Train an :class:`AttributeClassifier` with Adam on real ``images`` ``(n, 3, s, s)`` and
    their ``labels`` (``CaptionedSprites.labels``): the sum of one cross-entropy per label, absent
    labels ignored. Seeded by ``generator`` (batches and initial weights); frozen, in eval mode."""
    generator = check_generator(generator)
    check_positive_int(steps, "steps")
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must be (n, 3, size, size), got {getattr(images, 'shape', images)}"
        )
    targets = _targets(labels, images.shape[0])
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights, without touching the global generator
        model = AttributeClassifier(images.shape[-1]).to(images.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        index = index.to(images.device)
        logits = model(images[index])
        loss = sum(
            F.cross_entropy(logits[name], targets[name][index], ignore_index=ABSENT)
            for name in LABEL_CLASSES
            if (targets[name][index] != ABSENT).any()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def _correct(classifier: AttributeClassifier, images: Tensor, labels: dict) -> dict[str, Tensor]:
    """Per label, ``(n,)`` bool: recognised, or absent (nothing to recognise)."""
    targets = _targets(labels, images.shape[0])
    device = next(classifier.parameters()).device
    logits: dict[str, list[Tensor]] = {name: [] for name in LABEL_CLASSES}
    for chunk in images.split(512):
        for name, value in classifier(chunk.to(device)).items():
            logits[name].append(value.argmax(1).to(images.device))
    return {
        name: (torch.cat(logits[name]) == targets[name]) | (targets[name] == ABSENT)
        for name in LABEL_CLASSES
    }


def caption_accuracy(classifier: AttributeClassifier, images: Tensor, labels: dict) -> float:
    """Fraction of ``images`` whose every captioned attribute the classifier recognises."""
    correct = _correct(classifier, images, labels)
    return torch.stack(list(correct.values())).all(0).float().mean().item()


def attribute_accuracy(
    classifier: AttributeClassifier, images: Tensor, labels: dict
) -> dict[str, float]:
    """Per label, the accuracy over the images where it is present (NaN if nowhere)."""
    correct = _correct(classifier, images, labels)
    targets = _targets(labels, images.shape[0])
    return {
        name: correct[name][targets[name] != ABSENT].float().mean().item() for name in LABEL_CLASSES
    }
