"""Chapter 11 helpers: figures of the dimensions, and a readout explorer with its static figure.

The explorer shows one held-out image live: its ground truth and what the readouts predict,
binary or semantic, on the trained network's frozen features, on the untrained network's
(where given) and on raw pixels. On the static book page the
widget is a frozen snapshot, so the chapter shows :func:`readout_figure` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from esser_lab.shape_texture.method import StageDims
from esser_lab.viz.images import png_strip, show_grid

__all__ = [
    "dims_figure",
    "dims_over_training_figure",
    "map_rgb",
    "readout_explorer",
    "readout_figure",
]

# background black, then one colour per shape class (in [-1, 1])
_PALETTE = torch.tensor(
    [[-1, -1, -1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1]],
    dtype=torch.float32,
)


def map_rgb(labels: Tensor) -> Tensor:
    """``(n, h, w)`` class maps as ``(n, 3, h, w)`` images in ``[-1, 1]``: 0 (background)
    black, then one colour per class (a binary map's object is red, class 1)."""
    return _PALETTE[labels.long().clamp(0, len(_PALETTE) - 1)].permute(0, 3, 1, 2)


def dims_figure(results: Mapping[str, Sequence[StageDims]], title: str | None = None):
    """Stacked bars per stage: the share of each stage's dimensions that the estimate gives to
    shape, texture and the residual, one group of bars per network."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 2.8), sharey=True)
    axes = [axes] if len(results) == 1 else list(axes)
    for ax, (name, dims) in zip(axes, results.items(), strict=True):
        stages = [d.stage for d in dims]
        shape = [d.shape_fraction for d in dims]
        texture = [d.texture_fraction for d in dims]
        residual = [1 - s - t for s, t in zip(shape, texture, strict=True)]
        ax.bar(stages, shape, label="shape", color="tab:blue")
        ax.bar(stages, texture, bottom=shape, label="texture", color="tab:orange")
        bottom = [s + t for s, t in zip(shape, texture, strict=True)]
        ax.bar(stages, residual, bottom=bottom, label="residual", color="0.8")
        for i, d in enumerate(dims):
            ax.text(i, 0.02, f"{d.shape}/{d.width}", ha="center", fontsize=7, color="white")
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("share of the stage's dimensions")
    axes[-1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def dims_over_training_figure(
    records: Mapping[str, Mapping[int, Sequence[StageDims]]], early_step: int
):
    """Shape (solid) and texture (dashed) dimensions of the last stage against the training
    step, one colour per network (``records``: name → step → per-stage estimates)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    for (name, run), colour in zip(records.items(), ("tab:red", "tab:blue"), strict=False):
        steps = sorted(run)
        ax.plot(steps, [run[s][-1].shape for s in steps], "o-", color=colour,
                label=f"{name}: shape")  # fmt: skip
        ax.plot(steps, [run[s][-1].texture for s in steps], "s--", color=colour,
                label=f"{name}: texture", alpha=0.6)  # fmt: skip
        width = run[steps[-1]][-1].width
    ax.axvline(early_step, color="0.6", ls=":", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"dimensions of {width}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def readout_figure(
    images: Tensor,
    truths: Mapping[str, Tensor],
    predictions: Mapping[tuple[str, str], Tensor],
    count: int = 8,
):
    """Rows: the images, then per task its truth and its readouts (``predictions`` keyed
    ``(source, task)``; sources ``"features"``, ``"untrained"`` and ``"pixels"`` in that order,
    the ones present)."""
    rows, titles = [list(images[:count])], ["image"]
    for task, truth in truths.items():
        rows.append(list(map_rgb(truth[:count])))
        titles.append(f"{task} truth")
        for source in _sources(predictions, task):
            rows.append(list(map_rgb(predictions[source, task][:count])))
            titles.append(f"{task}, {source}")
    return show_grid(rows, row_titles=titles, cell=0.8)


_SOURCE_ORDER = ("features", "untrained", "pixels")
_SOURCE_WORDS = {
    "features": "the readout on the trained network's frozen features",
    "untrained": "the same head on the untrained network's",
    "pixels": "the same head on raw 3×3 pixel neighbourhoods",
}


def _sources(predictions: Mapping[tuple[str, str], Tensor], task: str) -> list[str]:
    return [s for s in _SOURCE_ORDER if (s, task) in predictions]


def readout_explorer(
    images: Tensor,
    truths: Mapping[str, Tensor],
    predictions: Mapping[tuple[str, str], Tensor],
    *,
    scale: int = 8,
):
    """An image index and a task: shows the image, the truth and both readouts' predictions."""
    import ipywidgets as widgets

    index = widgets.IntSlider(0, 0, len(images) - 1, description="image")
    task = widgets.Dropdown(options=list(truths), description="readout")
    picture = widgets.Image(format="png")
    caption = widgets.HTML()

    def update(*_: object) -> None:
        i, t = index.value, task.value
        sources = _sources(predictions, t)
        strip = [images[i], map_rgb(truths[t][i : i + 1])[0]]
        strip += [map_rgb(predictions[s, t][i : i + 1])[0] for s in sources]
        picture.value = png_strip(strip, scale)
        caption.value = f"image {i}: the image, the {t} truth, " + ", ".join(
            _SOURCE_WORDS[s] for s in sources
        )

    for control in (index, task):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([index, task]), picture, caption])
