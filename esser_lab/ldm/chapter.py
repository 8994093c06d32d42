"""Chapter 14 helpers (latent diffusion): a guidance explorer widget and its static figure.

The explorer samples one image live: pick a class, a guidance scale s and a noise seed; the
latent model runs its DDIM steps and the first stage decodes. On the static book page the widget
is a frozen snapshot, so the chapter shows :func:`guidance_figure` beside it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from esser_lab.ldm.method import sample_images
from esser_lab.ldm.model import LatentDiffusion
from esser_lab.viz.images import png_strip, show_grid

__all__ = ["guidance_explorer", "guidance_figure", "guided_samples"]


@torch.no_grad()
def guided_samples(
    ldm: LatentDiffusion,
    labels: Tensor,
    scale: float,
    latent_shape: tuple[int, int, int],
    *,
    seed: int = 0,
    steps: int = 20,
) -> Tensor:
    """Images ``(len(labels), c, H, W)`` on the CPU, sampled with the EMA weights at ``scale``."""
    generator = torch.Generator().manual_seed(seed)
    with ldm.model_ema.average_of(ldm.model) if ldm.config.use_ema else contextlib.nullcontext():
        images = sample_images(
            ldm, labels, latent_shape, steps=steps, guidance_scale=scale, generator=generator
        )
    return images.clamp(-1, 1).cpu()


def guidance_figure(
    ldm: LatentDiffusion,
    classes: list[int],
    scales: list[float],
    latent_shape: tuple[int, int, int],
    *,
    seed: int = 0,
    steps: int = 20,
    title: str | None = None,
):
    """Rows: guidance scales; columns: classes; the same noise in every row."""
    labels = torch.tensor(classes)
    rows = [
        list(guided_samples(ldm, labels, s, latent_shape, seed=seed, steps=steps)) for s in scales
    ]
    return show_grid(
        rows,
        row_titles=[f"s = {s:g}" for s in scales],
        column_titles=[str(c) for c in classes],
        cell=0.9,
        title=title,
    )


def guidance_explorer(
    ldm: LatentDiffusion,
    num_classes: int,
    latent_shape: tuple[int, int, int],
    *,
    steps: int = 20,
    scale: int = 8,
):
    """Sliders: class, guidance scale, noise seed; shows four samples drawn live."""
    import ipywidgets as widgets

    label = widgets.IntSlider(0, 0, num_classes - 1, description="class")
    guidance = widgets.FloatSlider(3.0, min=0.0, max=6.0, step=0.5, description="guidance s")
    seed = widgets.IntSlider(0, 0, 99, description="noise seed")
    picture = widgets.Image(format="png")
    caption = widgets.HTML()

    def update(*_: object) -> None:
        labels = torch.full((4,), label.value)
        images = guided_samples(
            ldm, labels, guidance.value, latent_shape, seed=seed.value, steps=steps
        )
        picture.value = png_strip(list(images), scale)
        caption.value = (
            f"four samples of class {label.value} at s = {guidance.value:g} (s = 1: the plain "
            f"conditional model; s = 0: the unconditional one), {steps} DDIM steps"
        )

    for control in (label, guidance, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([label, guidance, seed]), picture, caption])
