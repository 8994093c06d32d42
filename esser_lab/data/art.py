"""Procedural "art styles": photos with a known content, painted by artists with a known style.

The toy stand-in for Places365 photos and WikiArt painters (chapter 3, Kotovenko et al. 2019).

* **Photos** are scikit-learn's handwritten digits (:func:`esser_lab.data.digits.load_digits`),
  grey, repeated to three channels: white ink (+1) on black (−1). The content label is the digit.
* **Artists** are distributions over a palette and a stroke pattern (:data:`STYLE_NAMES`):
  warm horizontal stripes, cool checks, violet dots and green diagonal hatching. A painting keeps
  the digit's shape as bright ink over a dark textured ground, so both factors are known.

Everything is vectorised and deterministic given a ``torch.Generator``; images are float32
``(b, 3, h, w)`` in [-1, 1]. The digits split in two: the first :data:`NUM_TRAIN_DIGITS` images
are the ``"train"`` photos, the rest the ``"test"`` photos (content never seen in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from esser_lab.data._batching import Indexable
from esser_lab.data._raster import check_generator, check_positive_int
from esser_lab.data.digits import load_digits

__all__ = [
    "NUM_STYLES",
    "NUM_TRAIN_DIGITS",
    "STYLE_NAMES",
    "ArtSamples",
    "load_photos",
    "paint",
    "sample",
    "sample_pairs",
]

STYLE_NAMES = ("warm stripes", "cool checks", "violet dots", "green hatching")
NUM_STYLES = len(STYLE_NAMES)
NUM_TRAIN_DIGITS = 1500  # of scikit-learn's 1,797 digits; the remaining 297 are the test photos

# per artist: background colour A, background colour B (the pattern blends A→B), ink; RGB in [0, 1].
# Every artist keeps the photo's light/dark layout (dark ground, bright ink), as a painter keeps a
# scene's values; the style is in the hue and the strokes, which a blurred comparison forgives.
_PALETTES = torch.tensor(
    [
        [[0.05, 0.04, 0.02], [0.45, 0.30, 0.20], [1.00, 0.80, 0.55]],  # warm stripes
        [[0.02, 0.04, 0.06], [0.20, 0.32, 0.45], [0.60, 0.85, 1.00]],  # cool checks
        [[0.05, 0.02, 0.05], [0.40, 0.22, 0.45], [0.95, 0.70, 1.00]],  # violet dots
        [[0.02, 0.05, 0.02], [0.25, 0.45, 0.20], [0.70, 1.00, 0.60]],  # green hatching
    ]
)
_COLOUR_JITTER = 0.04  # std of the per-painting palette jitter
# stroke period range in pixels, per artist
_PERIODS = torch.tensor([[2.0, 4.0], [3.0, 5.0], [3.0, 4.5], [2.5, 4.0]])

Split = Literal["train", "test"]


@dataclass(frozen=True)
class ArtSamples(Indexable):
    """A batch of paintings with their factors; ``photo`` is the unpainted content."""

    painting: Tensor  # (b, 3, h, w) in [-1, 1]
    photo: Tensor  # (b, 3, h, w) in [-1, 1], grey
    content: Tensor  # (b,) long, the digit 0..9
    style: Tensor  # (b,) long, the artist 0..NUM_STYLES-1


def load_photos(size: int = 16, split: Split = "train") -> tuple[Tensor, Tensor]:
    """The digit "photos" of one split: ``(images (n, 3, size, size), labels (n,))``."""
    check_positive_int(size, "size")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = load_digits(size)
    part = slice(0, NUM_TRAIN_DIGITS) if split == "train" else slice(NUM_TRAIN_DIGITS, None)
    return images[part].expand(-1, 3, -1, -1).contiguous(), labels[part].clone()


def _patterns(b: int, h: int, w: int, period: Tensor, phase: Tensor) -> Tensor:
    """All artists' stroke patterns in [0, 1] for every image: ``(b, NUM_STYLES, h, w)``."""
    y = torch.arange(h, dtype=torch.float32)[None, :, None]  # (1, h, 1)
    x = torch.arange(w, dtype=torch.float32)[None, None, :]  # (1, 1, w)
    p = period[:, None, None]  # (b, 1, 1)
    o = phase[:, None, None]
    stripes = (torch.floor((y + o) / p) % 2).expand(b, h, w)
    checks = (torch.floor((y + o) / p) + torch.floor((x + o) / p)) % 2
    # dots: a soft disc at every lattice point
    dy = torch.remainder(y + o, p) - p / 2
    dx = torch.remainder(x + o, p) - p / 2
    dots = (dy.square() + dx.square() < (0.35 * p).square()).float()
    hatching = (torch.remainder(x + y + o, p) < 1.0).float()
    return torch.stack([stripes, checks, dots, hatching], dim=1)


def paint(content: Tensor, style_ids: Tensor, generator: torch.Generator) -> Tensor:
    """Paint content images in the given artists' styles.

    Args:
        content: ``(b, 1 or 3, h, w)`` in [-1, 1]; its mean over channels is the ink mask
            (bright = ink), e.g. the photos of :func:`load_photos`.
        style_ids: ``(b,)`` integer artist ids in ``0..NUM_STYLES-1``.
        generator: the source of the per-painting palette jitter, stroke period and phase.

    Returns:
        ``(b, 3, h, w)`` float32 paintings in [-1, 1]: ink colour on the ink mask, the artist's
        two background colours blended by its stroke pattern elsewhere.
    """
    generator = check_generator(generator)
    if not isinstance(content, Tensor) or not content.is_floating_point() or content.ndim != 4:
        raise ValueError(f"content must be a float (b, c, h, w) tensor, got {_describe(content)}")
    if content.shape[1] not in (1, 3):
        raise ValueError(f"content must have 1 or 3 channels, got {content.shape[1]}")
    b, _, h, w = content.shape
    if not isinstance(style_ids, Tensor) or style_ids.is_floating_point():
        raise ValueError(f"style_ids must be an integer tensor, got {_describe(style_ids)}")
    if style_ids.shape != (b,):
        raise ValueError(f"style_ids must have shape ({b},), got {tuple(style_ids.shape)}")
    if b and (style_ids.min() < 0 or style_ids.max() >= NUM_STYLES):
        raise ValueError(f"style ids must be in 0..{NUM_STYLES - 1}, got {style_ids.tolist()}")
    content = content.detach().float().cpu()
    style_ids = style_ids.long().cpu()
    mask = ((content.mean(dim=1, keepdim=True) + 1) / 2).clamp(0, 1)  # (b, 1, h, w)
    u = torch.rand(b, 2, generator=generator, device=generator.device).cpu()
    low, high = _PERIODS[style_ids].unbind(-1)
    period = low + (high - low) * u[:, 0]
    phase = u[:, 1] * period
    pattern = _patterns(b, h, w, period, phase)  # (b, NUM_STYLES, h, w)
    pattern = pattern[torch.arange(b), style_ids][:, None]  # (b, 1, h, w)
    jitter = torch.randn(b, 3, 3, generator=generator, device=generator.device).cpu()
    palette = (_PALETTES[style_ids] + _COLOUR_JITTER * jitter).clamp(0, 1)  # (b, role, rgb)
    colour_a, colour_b, ink = (palette[:, k, :, None, None] for k in range(3))  # (b, 3, 1, 1)
    background = colour_a + (colour_b - colour_a) * pattern
    ink = ink * (0.75 + 0.25 * pattern)  # strokes show on the ink too
    image = mask * ink + (1 - mask) * background
    return (image * 2 - 1).clamp(-1, 1)


def sample(
    n: int, size: int = 16, split: Split = "train", *, generator: torch.Generator
) -> ArtSamples:
    """``n`` paintings of random photos of ``split`` by uniformly random artists."""
    check_positive_int(n, "n")
    generator = check_generator(generator)
    photos, labels = load_photos(size, split)
    index = torch.randint(len(photos), (n,), generator=generator, device=generator.device).cpu()
    style = torch.randint(NUM_STYLES, (n,), generator=generator, device=generator.device).cpu()
    photo = photos[index]
    return ArtSamples(paint(photo, style, generator), photo, labels[index], style)


def sample_pairs(
    n: int, size: int = 16, split: Split = "train", *, generator: torch.Generator
) -> dict[str, Tensor]:
    """Training rows for chapter 3: two photos, and two paintings by two *different* artists.

    Keys: ``photo``, ``photo_negative`` (another photo), ``content`` (the class of ``photo``),
    ``painting`` by artist ``style`` and ``painting_negative`` by ``style_negative ≠ style``.
    The paintings show other digits than the photos (content and style are unpaired).
    """
    check_positive_int(n, "n")
    generator = check_generator(generator)
    photos, labels = load_photos(size, split)
    index = torch.randint(len(photos), (4, n), generator=generator, device=generator.device).cpu()
    style = torch.randint(NUM_STYLES, (n,), generator=generator, device=generator.device).cpu()
    shift = torch.randint(1, NUM_STYLES, (n,), generator=generator, device=generator.device).cpu()
    style_negative = (style + shift) % NUM_STYLES
    return {
        "photo": photos[index[0]],
        "photo_negative": photos[index[1]],
        "content": labels[index[0]],
        "painting": paint(photos[index[2]], style, generator),
        "style": style,
        "painting_negative": paint(photos[index[3]], style_negative, generator),
        "style_negative": style_negative,
    }


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__
