"""Chapter 10 helpers (Taming Transformers): an ipywidgets code editor and its static figure.

The editor shows what one code of a VQGAN controls: pick an image, a grid position and a code,
and see the decode with that one code replaced. The decodes run live (one small decoder call per
change); on the static book page the widget is a frozen snapshot, so the chapter shows
:func:`code_swap_figure` beside it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.taming.model import VQModel
from esser_lab.viz.images import png_strip, show_grid

__all__ = ["code_editor", "code_swap_figure", "swap_code"]


@torch.no_grad()
def swap_code(model: VQModel, indices: Tensor, row: int, col: int, codes: Tensor) -> Tensor:
    """Decodes ``(n, c, H, W)`` of one code grid ``indices`` ``(h, w)`` with position ``(row,
    col)`` set to each of ``codes`` ``(n,)``."""
    if indices.dim() != 2:
        raise ValueError(f"indices must be one (h, w) code grid, got {tuple(indices.shape)}")
    h, w = indices.shape
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"(row, col) must lie in the {h}×{w} grid, got ({row}, {col})")
    grids = indices.expand(len(codes), h, w).clone()
    grids[:, row, col] = codes.to(grids.device)
    return model.decode_code(grids)


def code_swap_figure(
    model: VQModel, image: Tensor, row: int, col: int, codes: Tensor, title: str | None = None
):
    """The image, its reconstruction, and the decodes with code ``(row, col)`` swapped."""
    device = next(model.parameters()).device  # the model may sit on the GPU it trained on
    with torch.no_grad():
        indices = model.encode(image[None].to(device)).indices[0]
        reconstruction = model.decode_code(indices[None])[0].cpu()
        swapped = swap_code(model, indices, row, col, codes).cpu()
    titles = ["image", f"rec. (code {int(indices[row, col])})"]
    titles += [f"code {int(c)}" for c in codes]
    return show_grid(
        [[image, reconstruction, *swapped]], column_titles=titles, cell=1.0, title=title
    )


def code_editor(models: dict[str, VQModel], images: Tensor, scale: int = 8):
    """Sliders: image, model, grid position and code; shows image · reconstruction · edit."""
    import ipywidgets as widgets

    if images.dim() != 4:
        raise ValueError(f"images must be (n, c, h, w), got {tuple(images.shape)}")
    names = list(models)
    first = models[names[0]]
    side = first.config.resolution // first.config.factor
    which = widgets.Dropdown(options=names, description="model")
    image = widgets.IntSlider(0, 0, len(images) - 1, description="image")
    row = widgets.IntSlider(side // 2, 0, side - 1, description="row")
    col = widgets.IntSlider(side // 2, 0, side - 1, description="column")
    code = widgets.IntSlider(0, 0, first.config.n_embed - 1, description="code")
    picture = widgets.Image(format="png")
    label = widgets.HTML()

    def update(*_: object) -> None:
        model = models[which.value]
        code.max = model.config.n_embed - 1
        x = images[image.value]
        device = next(model.parameters()).device  # the model may sit on the GPU it trained on
        with torch.no_grad():
            indices = model.encode(x[None].to(device)).indices[0]
            reconstruction = model.decode_code(indices[None])[0].cpu()
            edited = swap_code(model, indices, row.value, col.value, torch.tensor([code.value]))
        edited = edited[0].cpu()
        picture.value = png_strip([x, reconstruction, edited], scale)
        label.value = (
            f"image · reconstruction (code {int(indices[row.value, col.value])} at "
            f"({row.value}, {col.value})) · that code set to {code.value}"
        )

    for control in (which, image, row, col, code):
        control.observe(update, names="value")
    update()
    return widgets.VBox(
        [widgets.HBox([which, image]), widgets.HBox([row, col, code]), picture, label]
    )
