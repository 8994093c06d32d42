"""Scoring the interpretation against the sprites' known factors (chapter 5's measurements).

* probes: how well a linear read-out of one block of numbers (a factor of ``T(z)``, or the same
  coordinates of the raw code ``z``) predicts each ground-truth factor, chance-normalised;
* edits: the colour on the target's true mask and the object's centroid, compared with the exact
  re-rendering of the edit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from esser_lab.data import sprites
from esser_lab.iin.method import linear_probe, linear_r2

PROBED = ("colour", "position", "shape", "scale")  # the named factors first, then two residual ones


def probe_scores(
    train_blocks: Sequence[Tensor],
    test_blocks: Sequence[Tensor],
    train: sprites.Sprites,
    test: sprites.Sprites,
) -> Tensor:
    """``(blocks, 4)`` scores of each block on ``PROBED``: (accuracy − chance) / (1 − chance) for
    colour and shape, test R² (clamped at 0) for position and scale."""
    if len(train_blocks) != len(test_blocks):
        raise ValueError(f"got {len(train_blocks)} train blocks but {len(test_blocks)} test blocks")
    rows = []
    for block_train, block_test in zip(train_blocks, test_blocks, strict=True):
        row = []
        for name in PROBED:
            y_train, y_test = getattr(train, name)[:, 0], getattr(test, name)[:, 0]
            if name in ("colour", "shape"):
                classes = len(sprites.COLOURS if name == "colour" else sprites.SHAPES)
                accuracy = linear_probe(block_train, y_train, block_test, y_test, classes)
                row.append((accuracy - 1 / classes) / (1 - 1 / classes))
            else:
                row.append(max(linear_r2(block_train, y_train, block_test, y_test), 0.0))
        rows.append(row)
    return torch.tensor(rows)


def mask_colour_error(images: Tensor, target: sprites.Sprites) -> Tensor:
    """``(b,)`` mean |RGB| error, in [0, 1] units, of the mean colour on the target's true mask
    against the target's colour."""
    mask = target.mask[:, 0, None].float()  # (b, 1, h, w)
    mean = (images * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1.0)  # (b, 3)
    palette = torch.tensor(list(sprites.COLOURS.values())).to(images.device)
    return (mean - palette[target.colour[:, 0].to(images.device)]).abs().mean(1) / 2


def centroid(images: Tensor, background: Sequence[float], threshold: float = 0.6) -> Tensor:
    """``(b, 2)`` centroid (x, y) in [0, 1] of the pixels that differ from ``background``."""
    size = images.shape[-1]
    background = torch.tensor(background).to(images.device)  # on the images' device
    ink = ((images - background[None, :, None, None]).abs().sum(1) > threshold).float()
    coords = (torch.arange(size, dtype=images.dtype, device=images.device) + 0.5) / size
    total = ink.sum((1, 2)).clamp_min(1.0)
    x = (ink * coords[None, None, :]).sum((1, 2)) / total
    y = (ink * coords[None, :, None]).sum((1, 2)) / total
    return torch.stack([x, y], dim=1)


def position_error(images: Tensor, target: sprites.Sprites) -> Tensor:
    """``(b,)`` distance in pixels between the centroids of ``images`` and of the target image."""
    background = target.background[0].tolist()
    size = images.shape[-1]
    return (centroid(images, background) - centroid(target.image, background)).norm(dim=1) * size


def centroid_shift(images: Tensor, reference: Tensor, background: Sequence[float]) -> Tensor:
    """``(b,)`` distance in pixels between the centroids of ``images`` and ``reference`` (e.g. an
    edit and the unedited reconstruction: how far the edit moved the object)."""
    if images.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(images.shape)} vs {tuple(reference.shape)}")
    size = images.shape[-1]
    return (centroid(images, background) - centroid(reference, background)).norm(dim=1) * size
