"""Training pairs and test triplets for RoDi on the articulated figures of chapter 1.

A training pair is (x, x'): the same appearance in two independent poses
(``figures.same_appearance_pairs``). x' is the α view; its colours can be jittered slightly, as a
second photograph of the same person differs in light and white balance. The jitter makes the
shortcut real: x' no longer carries x's exact colours, so an unconstrained π-encoder gains by
copying them from x, and the MI constraint has something to prevent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esser_lab.data import figures


def jitter_appearance(
    appearance: figures.Appearance, amount: float, *, generator: torch.Generator
) -> figures.Appearance:
    """Add uniform noise in ``[−amount, amount]`` to every part and background colour channel."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")

    def noise(shape: torch.Size) -> torch.Tensor:
        return (torch.rand(shape, generator=generator) * 2 - 1) * amount

    colours = (appearance.colours + noise(appearance.colours.shape)).clamp(-1, 1)
    background = (appearance.background + noise(appearance.background.shape)).clamp(-1, 1)
    return figures.Appearance(colours, background, appearance.texture)


@dataclass(frozen=True)
class Pairs:
    """``image`` is x (π's input and the target); ``alpha_image`` is x' (α's input)."""

    image: torch.Tensor
    alpha_image: torch.Tensor
    target: figures.Figures  # x with every ground-truth factor


def appearance_pairs(n: int, size: int, jitter: float, *, generator: torch.Generator) -> Pairs:
    """``n`` pairs: same appearance, independent poses, x' re-rendered with jittered colours."""
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must lie in [0, 1], got {jitter}")
    first, second = figures.same_appearance_pairs(n, size, generator=generator)
    if jitter > 0:
        appearance = jitter_appearance(second.appearance, jitter, generator=generator)
        second = figures.render(second.keypoints, appearance, size)
    return Pairs(first.image, second.image, first)


@dataclass(frozen=True)
class Triplets:
    """Held-out transfer triplets with an exact answer.

    ``x`` gives the pose (``x_view`` is its partner view, for reconstructions), ``y_view`` the
    appearance (another view of ``y``), and ``truth = render(keypoints of x, appearance of y)``.
    """

    x: figures.Figures
    x_view: figures.Figures
    y: figures.Figures
    y_view: figures.Figures
    truth: figures.Figures

    def to(self, device: torch.device | str) -> Triplets:
        """The same triplets on ``device`` (where the models are measured)."""
        return Triplets(*(f.to(device) for f in (self.x, self.x_view, self.y, self.y_view,
                                                 self.truth)))  # fmt: skip


def transfer_triplets(n: int, size: int, *, seed: int = 12345) -> Triplets:
    """``n`` test triplets from their own seed (the chapter's and the seed benchmark's test set)."""
    generator = torch.Generator().manual_seed(seed)
    x, x_view = figures.same_appearance_pairs(n, size, generator=generator)  # pose donors
    y, y_view = figures.same_appearance_pairs(n, size, generator=generator)  # appearances
    return Triplets(x, x_view, y, y_view, figures.render(x.keypoints, y.appearance, size))
