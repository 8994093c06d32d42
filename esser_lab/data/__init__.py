"""Data of the book: procedural sets with ground-truth factors, real-data loaders, DataModules.

* :mod:`esser_lab.data.figures`: articulated stick figures (pose x appearance, part masks);
* :mod:`esser_lab.data.sprites`: coloured, textured shapes with every factor and captions;
* :mod:`esser_lab.data.folder`: :class:`ImageFolder` over local image files (never downloads);
* :mod:`esser_lab.data.art`: digit "photos" painted by procedural "artists" (content x style);
* :mod:`esser_lab.data.digits`: scikit-learn's bundled 8x8 handwritten digits;
* :mod:`esser_lab.data.scenes`: a toy 3-D world seen from two known cameras, with depth and
  disocclusion masks (view synthesis);
* :mod:`esser_lab.data.cue_conflict`: shapes filled with textures, shape and texture known,
  with masks, per-pixel class maps and factor pairs (shape vs texture);
* :mod:`esser_lab.data.video`: textured objects moving over a panned background, with exact depth,
  masks, motion and flow between any two frames (the video chapters);
* :mod:`esser_lab.data.modules`: LightningDataModules over all of the above.

Importing this package is cheap: every name below is imported on first use, and Lightning only
when a DataModule is asked for. ``figures`` and ``sprites`` both define ``sample`` and ``render``,
so use them through their modules: ``from esser_lab.data import figures; figures.sample(...)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esser_lab.data.art import ArtSamples
    from esser_lab.data.cue_conflict import CueConflict
    from esser_lab.data.digits import load_digits
    from esser_lab.data.figures import Appearance, Figures
    from esser_lab.data.folder import ImageFolder
    from esser_lab.data.modules import (
        ArtPairsDataModule,
        FiguresDataModule,
        ImageFolderDataModule,
        SpritesDataModule,
    )
    from esser_lab.data.scenes import ViewPairs
    from esser_lab.data.sprites import Sprites

_SUBMODULES = (
    "art",
    "cue_conflict",
    "digits",
    "figures",
    "folder",
    "modules",
    "scenes",
    "sprites",
    "video",
)
_NAMES = {
    "CueConflict": "cue_conflict",
    "Appearance": "figures",
    "Figures": "figures",
    "Sprites": "sprites",
    "ViewPairs": "scenes",
    "ImageFolder": "folder",
    "load_digits": "digits",
    "ArtPairsDataModule": "modules",
    "ArtSamples": "art",
    "FiguresDataModule": "modules",
    "SpritesDataModule": "modules",
    "ImageFolderDataModule": "modules",
}

__all__ = [
    "Appearance",
    "ArtPairsDataModule",
    "ArtSamples",
    "CueConflict",
    "Figures",
    "FiguresDataModule",
    "ImageFolder",
    "ImageFolderDataModule",
    "Sprites",
    "SpritesDataModule",
    "ViewPairs",
    "art",
    "cue_conflict",
    "digits",
    "figures",
    "folder",
    "load_digits",
    "modules",
    "scenes",
    "sprites",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
