"""An ipywidgets explorer for style transfer: pick a photo and an artist (chapter 3).

Everything is precomputed, so moving a slider never runs a model; on the static book page the
widget is a frozen snapshot, so the chapter shows a static grid beside it.
"""

from __future__ import annotations

import torch

from esser_lab.viz.images import png_strip


def style_explorer(
    photos: torch.Tensor,
    paintings: torch.Tensor,
    stylised: dict[str, torch.Tensor],
    artist_names: list[str],
    scale: int = 8,
):
    """Sliders for photo ``i`` and artist ``k``: the photo, a painting by ``k`` and, for each
    model in ``stylised``, its stylisation ``stylised[name][i, k]``.

    Shapes: ``photos (n, 3, h, w)``, ``paintings (m, 3, h, w)`` (one per artist), each entry of
    ``stylised`` ``(n, m, 3, h, w)``.
    """
    import ipywidgets as widgets

    n, m = photos.shape[0], paintings.shape[0]
    if len(artist_names) != m:
        raise ValueError(f"{m} paintings but {len(artist_names)} artist names")
    for name, grid in stylised.items():
        if grid.shape[:2] != (n, m):
            raise ValueError(f"stylised[{name!r}] must start with ({n}, {m}), got {grid.shape[:2]}")
    photo = widgets.IntSlider(0, 0, n - 1, description="photo")
    options = [(label, k) for k, label in enumerate(artist_names)]
    artist = widgets.Dropdown(options=options, value=0, description="artist")
    picture = widgets.Image(format="png")
    caption = widgets.HTML("photo · painting by the artist · " + " · ".join(stylised))

    def update(*_: object) -> None:
        i, k = photo.value, artist.value
        picture.value = png_strip(
            [photos[i], paintings[k], *(g[i, k] for g in stylised.values())], scale
        )

    photo.observe(update, names="value")
    artist.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([photo, artist]), picture, caption])
