"""An ipywidgets explorer over precomputed translations: pick an image, a target and a strength.

Chapter 9 (data biases) translates an image of one data set into each other data set, blended in
latent space with strength α (the official demo's animation). Everything is precomputed, so moving
a slider never runs a model; on the static page the widget is a frozen snapshot, so the chapter
shows a static figure beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from esser_lab.viz.images import png_strip


def translation_explorer(
    inputs: torch.Tensor,
    translations: torch.Tensor,
    target_names: Sequence[str],
    alphas: Sequence[float],
    scale: int = 8,
    caption: str = "input · translation",
):
    """Sliders for the image ``i`` and the strength ``α``, a dropdown for the target data set.

    Shapes: ``inputs (n, 3, h, w)``; ``translations (targets, len(alphas), n, 3, h, w)``.
    """
    import ipywidgets as widgets

    n = inputs.shape[0]
    expected = (len(target_names), len(alphas), n)
    if tuple(translations.shape[:3]) != expected:
        raise ValueError(
            f"translations must start with (targets, alphas, n) = {expected}, "
            f"got {tuple(translations.shape[:3])}"
        )
    image = widgets.IntSlider(0, 0, n - 1, description="image")
    strength = widgets.SelectionSlider(
        options=[(f"{a:.2f}", k) for k, a in enumerate(alphas)],
        value=len(alphas) - 1,
        description="α",
    )
    target = widgets.Dropdown(options=[(name, k) for k, name in enumerate(target_names)])
    picture = widgets.Image(format="png")
    label = widgets.HTML(caption)

    def update(*_: object) -> None:
        i, a, t = image.value, strength.value, target.value
        picture.value = png_strip([inputs[i], translations[t, a, i]], scale)

    for control in (image, strength, target):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([image, strength, target]), picture, label])
