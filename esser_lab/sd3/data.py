"""Captioned sprites: the text-to-image toy of chapter 17 (Stable Diffusion 3).

Stable Diffusion 3 (Esser, Kulal, Blattmann et al., ICML 2024; arXiv 2403.03206) conditions its
MMDiT on captions. The toy stands in for the paper's captioned images with
:mod:`esser_lab.data.sprites`: one or two coloured shapes, the caption read off the factors
("a red circle", "a blue square left of a green star"), tokenised over a small fixed vocabulary
(notes §6.2b), and the captioned attributes as labels so that *caption adherence* can be measured
with a classifier trained on real images (:mod:`esser_lab.sd3.adherence`).

Conventions a reader could get wrong:

* images ``(b, 3, size, size)`` float32 in ``[-1, 1]`` on a black background;
* the two objects of an image are put in a **canonical order**: the first is the left one when
  they are further apart in x than in y, else the upper one, so the relation is always "left of"
  or "above" and "the first object" is well defined from the image alone (a classifier can be
  asked its colour); ``RELATIONS`` lists the two;
* tokens ``(b, CONTEXT_LENGTH)`` int64, one word a token, padding id 0 (``"<pad>"``) at the end;
* labels of an absent object (second object of a one-object image) and the relation of a
  one-object image are ``ABSENT`` (−1), the ``ignore_index`` of the classifier's loss;
* textures are off by default: at 16 px stripes and dots are one or two pixels wide and do not
  read (``textures=True`` for 32 px and up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.data import sprites
from esser_lab.data._batching import Indexable
from esser_lab.data._raster import check_generator, check_positive_int, uniform

__all__ = [
    "ABSENT",
    "CONTEXT_LENGTH",
    "LABEL_CLASSES",
    "RELATIONS",
    "VOCAB",
    "CaptionedSprites",
    "captioned_batch",
    "detokenize",
    "tokenize",
]

ABSENT = -1
RELATIONS = ("left of", "above")
#: every word of the sprites' caption grammar; id 0 is padding
VOCAB: tuple[str, ...] = (
    "<pad>",
    "a",
    "an",
    *sprites.COLOURS,
    "striped",
    "checkered",
    "dotted",
    *sprites.SHAPES,
    "left",
    "right",
    "of",
    "above",
    "below",
    "and",
)
_WORD_ID = {word: index for index, word in enumerate(VOCAB)}
#: the longest caption: "a yellow checkered square left of an orange dotted heart" (10 words)
CONTEXT_LENGTH = 12
#: number of classes of each label (``num_objects`` is 1 or 2, stored as is)
LABEL_CLASSES = {
    "num_objects": 2,
    "colour_0": len(sprites.COLOURS),
    "shape_0": len(sprites.SHAPES),
    "texture_0": len(sprites.TEXTURES),
    "colour_1": len(sprites.COLOURS),
    "shape_1": len(sprites.SHAPES),
    "texture_1": len(sprites.TEXTURES),
    "relation": len(RELATIONS),
}
# circumradius / image side: larger than sprites.sample's so shapes read at 16 px (measured in
# the tests: an attribute classifier trained on these images is far above chance on each label)
_CAPTIONED = ("colour", "shape", "texture")  # per-object factors that are labelled
_SCALE_RANGE = {1: (0.3, 0.45), 2: (0.19, 0.27)}


def tokenize(captions: tuple[str, ...] | list[str], length: int = CONTEXT_LENGTH) -> Tensor:
    """Captions → token ids ``(b, length)`` int64, one word a token, padded with 0 at the end."""
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of strings, got one string")
    check_positive_int(length, "length")
    tokens = torch.zeros(len(captions), length, dtype=torch.long)
    for row, text in enumerate(captions):
        words = text.split()
        unknown = [word for word in words if word not in _WORD_ID]
        if unknown:
            raise ValueError(f"caption {text!r} has words outside VOCAB: {unknown}")
        if len(words) > length:
            raise ValueError(f"caption {text!r} has {len(words)} words, more than length={length}")
        tokens[row, : len(words)] = torch.tensor([_WORD_ID[word] for word in words])
    return tokens


def detokenize(tokens: Tensor) -> tuple[str, ...]:
    """Token ids ``(b, l)`` → captions (padding dropped); inverse of :func:`tokenize`."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
        got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, Tensor) else tokens
        raise ValueError(f"tokens must be an integer tensor (b, l), got {got}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= len(VOCAB)):
        raise ValueError(f"token ids must lie in [0, {len(VOCAB)}), got {tokens.min()}..")
    return tuple(" ".join(VOCAB[i] for i in row if i != 0) for row in tokens.tolist())


@dataclass(frozen=True)
class CaptionedSprites(Indexable):
    """A batch of captioned sprite images.

    Attributes:
        image: ``(b, 3, size, size)`` float32 in ``[-1, 1]``.
        tokens: ``(b, CONTEXT_LENGTH)`` int64, padding 0.
        num_objects: ``(b,)`` int64, 1 or 2.
        colour, shape, texture: ``(b, 2)`` int64 indices into the sprites' tables, in caption
            order; ``ABSENT`` for the missing second object.
        relation: ``(b,)`` int64 index into ``RELATIONS`` (first object to second); ``ABSENT``
            for one object.
        caption: one string per image.
    """

    image: Tensor
    tokens: Tensor
    num_objects: Tensor
    colour: Tensor
    shape: Tensor
    texture: Tensor
    relation: Tensor
    caption: tuple[str, ...]

    @property
    def labels(self) -> dict[str, Tensor]:
        """The captioned attributes as ``(b,)`` int64 labels, keys of ``LABEL_CLASSES``."""
        labels = {"num_objects": self.num_objects}
        for obj in range(2):
            labels[f"colour_{obj}"] = self.colour[:, obj]
            labels[f"shape_{obj}"] = self.shape[:, obj]
            labels[f"texture_{obj}"] = self.texture[:, obj]
        labels["relation"] = self.relation
        return labels


def _canonical(position: Tensor) -> tuple[Tensor, Tensor]:
    """For ``(n, 2, 2)`` positions: whether to swap the two objects so that the first is left of
    (or, when further apart in y, above) the second, and the resulting relation index."""
    delta = position[:, 0] - position[:, 1]  # (n, 2): first minus second, (x, y), y down
    horizontal = delta[:, 0].abs() >= delta[:, 1].abs()  # sprites.caption's rule
    swap = torch.where(horizontal, delta[:, 0] > 0, delta[:, 1] > 0)
    return swap, (~horizontal).long()  # 0 = "left of", 1 = "above"


def _draw(
    n: int, k: int, shapes: Tensor, textures: bool, rotate: bool, generator: torch.Generator
) -> dict[str, Tensor]:
    """Factors of ``n`` images with ``k`` objects each (as ``sprites.sample``, larger scales)."""
    device = generator.device
    drawn = torch.randint(len(shapes), (n, k), generator=generator, device=device)
    factors = {
        "shape": shapes.to(device)[drawn],
        "colour": torch.randint(len(sprites.COLOURS), (n, k), generator=generator, device=device),
    }
    if textures:
        count = len(sprites.TEXTURES)
        factors["texture"] = torch.randint(count, (n, k), generator=generator, device=device)
    else:
        factors["texture"] = torch.zeros(n, k, dtype=torch.long, device=device)
    scale = uniform((n, k), *_SCALE_RANGE[k], generator)
    factors["rotation"] = uniform((n, k), 0.0, 2 * math.pi if rotate else 0.0, generator)
    factors["position"], factors["scale"] = sprites._place(scale, generator)
    return factors


def captioned_batch(
    n: int,
    size: int = 16,
    *,
    generator: torch.Generator,
    num_objects: int | tuple[int, ...] = (1, 2),
    textures: bool = False,
    shapes: tuple[str, ...] = sprites.SHAPES,
    rotate: bool = False,
) -> CaptionedSprites:
    """``n`` captioned sprite images of ``size`` pixels (16 at tiny, 32 or 64 at small).

    ``num_objects``: 1, 2, or ``(1, 2)`` (each image draws one or two with equal probability).
    ``shapes``: the names drawn from (labels still index ``sprites.SHAPES``); ``rotate``: random
    rotations (default upright: rotated 16-px shapes are much harder to tell apart).
    Deterministic given ``generator``; vectorised (one render per object count).
    """
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    generator = check_generator(generator)
    counts = (num_objects,) if isinstance(num_objects, int) else tuple(num_objects)
    if not counts or any(k not in (1, 2) for k in counts) or len(set(counts)) != len(counts):
        raise ValueError(f"num_objects must be 1, 2 or (1, 2), got {num_objects!r}")
    unknown = [name for name in shapes if name not in sprites.SHAPES]
    if not shapes or unknown or isinstance(shapes, str):
        raise ValueError(f"shapes must be a non-empty tuple of {sprites.SHAPES}, got {shapes!r}")
    shape_ids = torch.tensor([sprites.SHAPES.index(name) for name in shapes])
    device = generator.device
    if len(counts) == 2:
        two = torch.rand(n, generator=generator, device=device) < 0.5
    else:
        two = torch.full((n,), counts[0] == 2, device=device)
    image = torch.empty(n, 3, size, size, device=device)
    labels = {name: torch.full((n, 2), ABSENT, device=device) for name in _CAPTIONED}
    relation = torch.full((n,), ABSENT, device=device)
    captions: list[str] = [""] * n
    for k, rows in ((1, (~two).nonzero().squeeze(1)), (2, two.nonzero().squeeze(1))):
        if not rows.numel():
            continue
        factors = _draw(rows.numel(), k, shape_ids, textures, rotate, generator)
        if k == 2:
            swap, relation[rows] = _canonical(factors["position"])
            order = torch.stack([swap.long(), 1 - swap.long()], dim=1)  # (m, 2)
            for name, value in factors.items():
                index = order.view(*order.shape, *([1] * (value.dim() - 2))).expand_as(value)
                factors[name] = value.gather(1, index)
        rendered = sprites.render(size=size, **factors)
        image[rows] = rendered.image
        for name in _CAPTIONED:
            labels[name][rows, :k] = factors[name]
        for row, text in zip(rows.tolist(), rendered.caption, strict=True):
            captions[row] = text
    return CaptionedSprites(
        image=image,
        tokens=tokenize(captions).to(device),
        num_objects=two.long() + 1,
        colour=labels["colour"],
        shape=labels["shape"],
        texture=labels["texture"],
        relation=relation,
        caption=tuple(captions),
    )
