"""Real images from a local folder (CelebA, FFHQ, ImageNet-style trees, your own photos).

esser_lab never downloads data: put the images on disk yourself (see ``data/README.md`` of the
repository) and point :class:`ImageFolder` at them. Images come out as float32 ``(3, size, size)``
in ``[-1, 1]``: converted to RGB, the shorter side resized to ``size`` (bicubic), centre-cropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from esser_lab.data._raster import check_positive_int

__all__ = ["IMAGE_EXTENSIONS", "ROOT_CLASS", "ImageFolder", "load_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ROOT_CLASS = "."  # the class of images lying directly in the root when it also has sub-folders


def load_image(path: str | Path, size: int) -> Tensor:
    """One image file as ``(3, size, size)`` float32 in ``[-1, 1]`` (RGB, resize, centre crop).

    Raises:
        ValueError: the file cannot be decoded as an image (the message names the file).
    """
    check_positive_int(size, "size")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image file {str(path)!r}: {error}") from error
    width, height = image.size
    factor = size / min(width, height)
    new_width, new_height = max(size, round(width * factor)), max(size, round(height * factor))
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.uint8)  # (h, w, 3)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, h, w)
    return pixels.float() / 127.5 - 1.0


class ImageFolder(Dataset):
    """The image files under ``root`` (recursively, sorted), as ``{"image", "label"}`` dicts.

    The class of a file is the name of the first sub-folder of ``root`` on its path (an
    ImageNet-style tree); files lying directly in ``root`` have class ``ROOT_CLASS`` (".").
    ``classes`` is sorted and ``class_to_idx`` maps names to labels; a flat folder has the single
    class ".", so every label is 0.

    Args:
        root: the folder to read; it must exist and hold at least one image file.
        size: output side in pixels.
        extensions: file endings (case-insensitive) counted as images.

    Raises:
        FileNotFoundError: ``root`` does not exist, is not a folder, or holds no image file.
    """

    def __init__(
        self, root: str | Path, size: int, *, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    ) -> None:
        self.root = Path(root).expanduser()
        self.size = check_positive_int(size, "size")
        if isinstance(extensions, str) or not extensions:
            raise ValueError(f"extensions must be a non-empty tuple of endings, got {extensions!r}")
        self.extensions = tuple(extension.lower() for extension in extensions)
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(
                f"image folder {str(self.root)!r} {what}. esser_lab never downloads data: put the "
                "images there yourself (see data/README.md in the repository for where each data "
                "set goes)"
            )
        self.files = sorted(
            path
            for path in self.root.rglob("*")
            if path.is_file() and path.suffix.lower() in self.extensions
        )
        if not self.files:
            raise FileNotFoundError(
                f"no image files under {str(self.root)!r}: looked (recursively) for files "
                f"ending in {', '.join(self.extensions)}"
            )
        names = [self._class_name(path) for path in self.files]
        self.classes = sorted(set(names))
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.labels = [self.class_to_idx[name] for name in names]

    def _class_name(self, path: Path) -> str:
        parts = path.relative_to(self.root).parts
        return parts[0] if len(parts) > 1 else ROOT_CLASS

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        return {"image": load_image(self.files[index], self.size), "label": self.labels[index]}

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root={str(self.root)!r}, size={self.size}, images={len(self)}, "
            f"classes={len(self.classes)})"
        )
