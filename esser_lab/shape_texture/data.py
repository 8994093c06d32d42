"""Full-scale data of chapter 11: Stylized PASCAL VOC pairs read from a local folder.

The official ``generate_stylized_voc/`` renders every VOC 2012 object image in five textures
(AdaIN; cracked, marbled, pleated, potholed, woven) and names each file
``{texture}_{class}_{image id}`` with ``texture`` in 1…5 (the first character), ``class`` in
1…20 and the VOC image id (``2008_000123``), e.g. ``3_12_2008_000123.png``
(``dim_estimation/datasets/svoc.py``). :func:`stylized_voc_pairs` draws the estimator's pairs
from such a folder as that dataset does: factor 0 (shape) = the same image in another texture,
factor 1 (texture) = the same texture on an image of another class. Nothing downloads: build
the folder with the official script and point ``root`` at it.

Official code: ``random.randint(0, n_factors)`` with ``n_factors = 3`` draws 0…3 inclusive, so
a quarter of its pairs are shape pairs and three quarters texture pairs, of which only those
labelled 1 are read (2 is the residual's index, 3 is never read); here pair ``i`` shares factor
``i % 2`` and every pair counts. Its images are 513 px (``config.py``: ``image_size``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import torch

from esser_lab.data.cue_conflict import CuePairs
from esser_lab.data.folder import IMAGE_EXTENSIONS, load_image

__all__ = ["StylizedVOCIndex", "concat_pairs", "iter_stylized_voc_pairs", "stylized_voc_pairs"]


class StylizedVOCIndex:
    """The files of a stylised-VOC folder by (texture, class, image id)."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(
                f"no stylised-VOC folder at {str(root)!r}: build it with the official "
                "generate_stylized_voc/ script (files named {texture}_{class}_{image id}.png) "
                "and pass its path"
            )
        self.files: dict[tuple[int, int, str], Path] = {}
        for path in sorted(root.iterdir()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            parts = path.stem.split("_")
            if len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise ValueError(
                    f"{path.name!r} is not named {{texture}}_{{class}}_{{image id}} "
                    "(e.g. 3_12_2008_000123.png)"
                )
            self.files[int(parts[0]), int(parts[1]), "_".join(parts[2:])] = path
        if not self.files:
            raise ValueError(f"{str(root)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.by_texture_class: dict[tuple[int, int], list[Path]] = defaultdict(list)
        self.textures_of: dict[tuple[int, str], list[int]] = defaultdict(list)
        for (texture, label, image_id), path in self.files.items():
            self.by_texture_class[texture, label].append(path)
            self.textures_of[label, image_id].append(texture)
        self.keys = sorted(self.files)

    def __len__(self) -> int:
        return len(self.files)


def _choice(items: list, generator: torch.Generator):  # noqa: ANN202
    return items[int(torch.randint(len(items), (1,), generator=generator))]


def iter_stylized_voc_pairs(
    root: str | Path | StylizedVOCIndex,
    n: int,
    size: int,
    *,
    generator: torch.Generator,
    chunk: int = 64,
) -> Iterator[CuePairs]:
    """The ``n`` pairs of :func:`stylized_voc_pairs` (the same draws, in the same order), as
    :class:`CuePairs` of at most ``chunk`` pairs each, read from disk one chunk at a time: at the
    official 513 px, 2,000 pairs held at once are 12.6 GB of float32."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int ≥ 1, got {chunk!r}")
    from esser_lab.data.cue_conflict import CueConflict

    index = root if isinstance(root, StylizedVOCIndex) else StylizedVOCIndex(root)
    empty = torch.empty(0)
    others = [f.name for f in fields(CueConflict) if f.name != "image"]

    def batch(images: list) -> CueConflict:
        return CueConflict(image=torch.stack(images), **dict.fromkeys(others, empty))

    images_a, images_b, factors = [], [], []
    for i in range(n):
        texture, label, image_id = _choice(index.keys, generator)
        factor = i % 2
        if factor == 0:
            others_t = [t for t in index.textures_of[label, image_id] if t != texture]
            if not others_t:
                raise ValueError(f"{image_id} of class {label} exists in one texture only")
            partner = index.files[_choice(others_t, generator), label, image_id]
        else:
            classes = [c for (t, c) in index.by_texture_class if t == texture and c != label]
            if not classes:
                raise ValueError(f"texture {texture} is shown on class {label} only")
            partner = _choice(index.by_texture_class[texture, _choice(sorted(classes), generator)],
                              generator)  # fmt: skip
        images_a.append(load_image(index.files[texture, label, image_id], size))
        images_b.append(load_image(partner, size))
        factors.append(factor)
        if len(factors) == chunk or i == n - 1:
            yield CuePairs(batch(images_a), batch(images_b), torch.tensor(factors))
            images_a, images_b, factors = [], [], []


def stylized_voc_pairs(
    root: str | Path | StylizedVOCIndex, n: int, size: int, *, generator: torch.Generator
) -> CuePairs:
    """``n`` pairs (images only: ``a.image``, ``b.image``, ``factor``; the other fields of the
    :class:`~esser_lab.data.cue_conflict.CueConflict` results are empty) at ``size`` pixels, all
    in memory (at full size use :func:`iter_stylized_voc_pairs`)."""
    parts = list(iter_stylized_voc_pairs(root, n, size, generator=generator, chunk=max(n, 1)))
    return concat_pairs(parts)


def concat_pairs(parts: list[CuePairs]) -> CuePairs:
    """One :class:`CuePairs` of ``parts`` in order."""
    if not parts:
        raise ValueError("no pairs to concatenate")
    from esser_lab.data.cue_conflict import CueConflict

    def cat(side: str) -> CueConflict:
        results = [getattr(p, side) for p in parts]
        names = [f.name for f in fields(CueConflict)]
        return CueConflict(**{n: torch.cat([getattr(r, n) for r in results]) for n in names})

    return CuePairs(cat("a"), cat("b"), torch.cat([p.factor for p in parts]))
