"""Two-part sprites whose structure is a *relation* between the parts (chapter 19).

A 16×16 RGB image on black holds two 6×6 glyphs, one in the left half and one in the right half,
each at a random position inside its half. The data obey a rule that ties the halves together:

* **the shape rule**: both glyphs have the same shape (one of :data:`GLYPHS`); the colours are
  drawn independently of the shape;
* **the colour relation** (a hidden binary factor, half the images each): the right glyph has
  the left glyph's colour, or a different one.

Neither fact can be read from one half alone: a denoiser that treats tokens independently cannot
keep the shapes equal, and features that are a sum over tokens cannot tell "same colour" from
"different colour" with a linear read-out (for four colours, equality is not a sum of a function
of the left colour and a function of the right one). The shape rule is what the chapter checks
in generated samples (:func:`judge_shapes`: the best-matching template per half, when it matches
well); the colour
relation is the label of its linear probe.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["COLOURS", "GLYPHS", "RelationBatch", "judge_shapes", "relation_batch", "templates"]

GLYPHS = ("plus", "cross", "ring", "triangle")
COLOURS = ((1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-0.6, -0.6, 1.0), (1.0, 1.0, -1.0))
SIZE, GLYPH, HALF = 16, 6, 8

_ROWS = {
    "plus": ("..##..", "..##..", "######", "######", "..##..", "..##.."),
    "cross": ("##..##", ".####.", "..##..", "..##..", ".####.", "##..##"),
    "ring": ("######", "#....#", "#....#", "#....#", "#....#", "######"),
    "triangle": ("..##..", "..##..", ".####.", ".####.", "######", "######"),
}


def templates() -> Tensor:
    """The glyphs as (4, 6, 6) float masks in :data:`GLYPHS` order."""
    return torch.tensor([[[c == "#" for c in row] for row in _ROWS[g]] for g in GLYPHS]).float()


class RelationBatch(NamedTuple):
    image: Tensor  # (n, 3, 16, 16) in [-1, 1]
    shape: Tensor  # (n,) the shared glyph
    left_colour: Tensor  # (n,)
    right_colour: Tensor  # (n,)

    @property
    def same_colour(self) -> Tensor:
        """The relation label (n,): 1 where both glyphs have one colour."""
        return (self.left_colour == self.right_colour).long()


def _paint(images: Tensor, masks: Tensor, colours: Tensor, rows: Tensor, cols: Tensor) -> None:
    palette = torch.tensor(COLOURS)
    for i in range(len(images)):
        r, c = int(rows[i]), int(cols[i])
        patch = images[i, :, r : r + GLYPH, c : c + GLYPH]
        glyph = masks[i].bool()
        patch[:, glyph] = palette[colours[i]][:, None]


def relation_batch(n: int, generator: torch.Generator | None = None) -> RelationBatch:
    """``n`` images of the rule above, drawn from ``generator``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int ≥ 1, got {n!r}")
    masks = templates()
    shape = torch.randint(len(GLYPHS), (n,), generator=generator)
    left = torch.randint(len(COLOURS), (n,), generator=generator)
    same = torch.rand(n, generator=generator) < 0.5
    other = (left + torch.randint(1, len(COLOURS), (n,), generator=generator)) % len(COLOURS)
    right = torch.where(same, left, other)
    images = torch.full((n, 3, SIZE, SIZE), -1.0)
    span = HALF - GLYPH + 1
    for offset, colours in ((0, left), (HALF, right)):
        rows = torch.randint(SIZE - GLYPH + 1, (n,), generator=generator)
        cols = offset + torch.randint(span, (n,), generator=generator)
        _paint(images, masks[shape], colours, rows, cols)
    return RelationBatch(images, shape, left, right)


def judge_shapes(images: Tensor, min_iou: float = 0.6) -> tuple[Tensor, Tensor]:
    """The glyph of each half, (n,) and (n,), by the best template match: the foreground
    (any channel above 0) of the half is compared with every glyph at every position, and the
    glyph with the highest intersection-over-union wins; −1 where no glyph reaches ``min_iou``
    (a blob or an empty half is no glyph)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, SIZE, SIZE):
        raise ValueError(f"images must be (n, 3, {SIZE}, {SIZE}), got {tuple(images.shape)}")
    foreground = (images.amax(dim=1) > 0).float()  # (n, 16, 16)
    masks = templates()
    results = []
    for start in (0, HALF):
        half = foreground[:, :, start : start + HALF]  # (n, 16, 8)
        windows = half.unfold(1, GLYPH, 1).unfold(2, GLYPH, 1)  # (n, 11, 3, 6, 6)
        inter = torch.einsum("nijhw,ghw->nijg", windows, masks)
        outside = half.sum((1, 2))[:, None, None, None] - inter  # foreground the glyph misses
        union = masks.sum((1, 2)) + outside
        iou = (inter / union).flatten(1, 2).amax(dim=1)  # (n, glyphs)
        best, glyph = iou.max(dim=1)
        results.append(torch.where(best >= min_iou, glyph, -1))
    return results[0], results[1]
