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
from dataclasses import fields
from pathlib import Path

import torch

from esser_lab.data.cue_conflict import CuePairs
from esser_lab.data.folder import IMAGE_EXTENSIONS, load_image

__all__ = ["StylizedVOCIndex", "stylized_voc_pairs"]


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


def stylized_voc_pairs(
    root: str | Path | StylizedVOCIndex, n: int, size: int, *, generator: torch.Generator
) -> CuePairs:
    """``n`` pairs (images only: ``a.image``, ``b.image``, ``factor``; the other fields of the
    :class:`~esser_lab.data.cue_conflict.CueConflict` results are empty) at ``size`` pixels."""
    from esser_lab.data.cue_conflict import CueConflict

    index = root if isinstance(root, StylizedVOCIndex) else StylizedVOCIndex(root)
    images_a, images_b, factors = [], [], []
    for i in range(n):
        texture, label, image_id = _choice(index.keys, generator)
        factor = i % 2
        if factor == 0:
            others = [t for t in index.textures_of[label, image_id] if t != texture]
            if not others:
                raise ValueError(f"{image_id} of class {label} exists in one texture only")
            partner = index.files[_choice(others, generator), label, image_id]
        else:
            classes = [c for (t, c) in index.by_texture_class if t == texture and c != label]
            if not classes:
                raise ValueError(f"texture {texture} is shown on class {label} only")
            partner = _choice(index.by_texture_class[texture, _choice(sorted(classes), generator)],
                              generator)  # fmt: skip
        images_a.append(load_image(index.files[texture, label, image_id], size))
        images_b.append(load_image(partner, size))
        factors.append(factor)
    empty = torch.empty(0)
    others = [f.name for f in fields(CueConflict) if f.name != "image"]

    def batch(images: list) -> CueConflict:
        return CueConflict(image=torch.stack(images), **dict.fromkeys(others, empty))

    return CuePairs(batch(images_a), batch(images_b), torch.tensor(factors))
