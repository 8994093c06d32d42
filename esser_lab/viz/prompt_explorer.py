"""An ipywidgets explorer for text-conditional samples: pick the words, see the samples (chapter 6).

Everything is precomputed, so changing a word never runs a model; on the static book page the
widget is a frozen snapshot, so the chapter shows a static grid beside it.
"""

from __future__ import annotations

import torch

from esser_lab.viz.images import png_strip


def prompt_explorer(
    samples: dict[str, torch.Tensor],
    first_words: list[str],
    second_words: list[str],
    template: str = "a {0} {1}",
    scale: int = 6,
):
    """Two dropdowns (e.g. colour and shape); shows, for each model in ``samples``, the images
    ``samples[name][i, j]`` (``(n1, n2, k, 3, h, w)``: k samples for the prompt of words i, j)."""
    import ipywidgets as widgets

    n1, n2 = len(first_words), len(second_words)
    for name, grid in samples.items():
        if grid.dim() != 6 or tuple(grid.shape[:2]) != (n1, n2):
            raise ValueError(
                f"samples[{name!r}] must be ({n1}, {n2}, k, 3, h, w), got {tuple(grid.shape)}"
            )
    first = widgets.Dropdown(
        options=[(w, i) for i, w in enumerate(first_words)], description="word 1"
    )
    second = widgets.Dropdown(
        options=[(w, j) for j, w in enumerate(second_words)], description="word 2"
    )
    rows = {name: widgets.Image(format="png") for name in samples}
    prompt = widgets.HTML()

    def update(*_: object) -> None:
        i, j = first.value, second.value
        prompt.value = f"<b>{template.format(first_words[i], second_words[j])}</b>"
        for name, picture in rows.items():
            picture.value = png_strip(list(samples[name][i, j]), scale)

    first.observe(update, names="value")
    second.observe(update, names="value")
    update()
    lines = [
        widgets.HBox([widgets.HTML(f"{name}&nbsp;"), picture]) for name, picture in rows.items()
    ]
    return widgets.VBox([widgets.HBox([first, second]), prompt, *lines])
