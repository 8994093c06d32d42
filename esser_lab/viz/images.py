"""Image grids for the chapters. Images are ``(c, h, w)`` tensors in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """``(c, h, w)`` in [-1, 1] → ``(h, w, 3)`` in [0, 1] (1 channel → grey, >3 → first 3)."""
    if image.ndim != 3:
        raise ValueError(f"expected one (c, h, w) image, got shape {tuple(image.shape)}")
    image = image.detach().float().cpu()
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    image = image[:3]
    return ((image.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def png_strip(images: Sequence[torch.Tensor], scale: int) -> bytes:
    """Images side by side (1-pixel white gaps), enlarged ``scale``× by pixel repetition, as PNG.

    The widgets' picture format: an ``ipywidgets.Image`` shows these bytes without matplotlib.
    """
    import io

    from PIL import Image

    if not images:
        raise ValueError("png_strip needs at least one image")
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    gap = np.ones((images[0].shape[1], 1, 3))
    strip = np.concatenate([x for image in images for x in (to_rgb(image), gap)][:-1], axis=1)
    pixels = (strip * 255).round().astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def stickman_rgb(stickman: torch.Tensor) -> torch.Tensor:
    """Colour a per-part stickman ``(p, h, w)`` in [0, 1] for display, as an image in [-1, 1]."""
    palette = torch.tensor(
        [[1.0, 0.85, 0.2], [0.9, 0.2, 0.2], [0.2, 0.6, 1.0], [0.3, 0.9, 0.3], [0.8, 0.4, 1.0]]
    )
    if stickman.shape[0] > len(palette):
        raise ValueError(f"at most {len(palette)} stickman channels, got {stickman.shape[0]}")
    weights = stickman.detach().float().cpu().clamp(0, 1)
    rgb = torch.einsum("phw,pc->chw", weights, palette[: weights.shape[0]]).clamp(0, 1)
    return rgb * 2 - 1


def show_grid(
    rows: Sequence[Sequence[torch.Tensor]],
    row_titles: Sequence[str] = (),
    column_titles: Sequence[str] = (),
    cell: float = 1.1,
    title: str | None = None,
):
    """A matplotlib figure with one image per cell; returns the figure."""
    import matplotlib.pyplot as plt

    num_rows, num_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=(cell * num_cols + 1.2, cell * num_rows + 0.4), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(num_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row) and row[c] is not None:
                ax.imshow(to_rgb(row[c]), interpolation="nearest")
            if c == 0 and r < len(row_titles):
                ax.set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
