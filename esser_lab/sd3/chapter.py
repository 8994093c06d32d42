"""Chapter 17 helpers (Stable Diffusion 3): figures and the sampling explorer.

The explorer samples live from a trained text-to-image model: pick a caption, the number of
sampling steps, the timestep shift α and the guidance scale. On the static book page the widget
is a frozen snapshot, so the chapter shows :func:`sampling_figure` beside it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from esser_lab.viz.images import png_strip, show_grid

__all__ = [
    "density_figure",
    "loss_figure",
    "samples_figure",
    "sampling_explorer",
    "sampling_figure",
    "shift_figure",
    "short_caption",
]

#: ``sampler(captions, steps, shift, guidance, seed) -> images (b, 3, h, w) in [−1, 1]``
Sampler = Callable[[Sequence[str], int, float, float, int], Tensor]


def short_caption(caption: str, width: int = 14) -> str:
    """A caption wrapped onto short lines, for column titles."""
    return "\n".join(textwrap.wrap(caption, width)) or "(empty)"


def density_figure(densities: Mapping[str, object], shifts: Sequence[float] = (1.0, 3.0)):
    """Left: the training-time densities π(t) (objects with ``.pdf``); right: the shifted
    sampling time t' = αt / (1 + (α − 1)t) for each α in ``shifts`` (Sec. 5.3.2)."""
    import matplotlib.pyplot as plt

    from esser_lab.diffusion.flow import shift_time

    t = torch.linspace(1e-3, 1 - 1e-3, 400)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3))
    for name, density in densities.items():
        left.plot(t, density.pdf(t), label=name)
    left.set_xlabel("t (0 data, 1 noise)")
    left.set_ylabel("π(t)")
    left.set_title("training timestep densities", fontsize=9)
    left.set_ylim(0, 3)
    left.legend(fontsize=7)
    u = torch.linspace(0, 1, 200, dtype=torch.float64)
    for alpha in shifts:
        right.plot(u, shift_time(u, alpha), label=f"α = {alpha:g}")
    right.set_xlabel("t (uniform sampling grid)")
    right.set_ylabel("shifted t'")
    right.set_title("the resolution shift (Eq. 23)", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def samples_figure(
    rows: Mapping[str, Tensor],
    captions: Sequence[str],
    *,
    title: str | None = None,
    columns: int = 8,
):
    """One row per entry of ``rows`` (images (b, 3, h, w)), the first ``columns`` images each,
    titled with their captions."""
    shown = {name: list(images[:columns]) for name, images in rows.items()}
    return show_grid(
        list(shown.values()),
        row_titles=list(shown),
        column_titles=[short_caption(c) for c in captions[:columns]],
        cell=1.0,
        title=title,
    )


def loss_figure(histories: Mapping[str, Sequence[float]], *, title: str, smooth: int = 10):
    """Training losses (running mean of ``smooth`` steps), one line per run, log scale."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    for name, losses in histories.items():
        values = torch.tensor(list(losses), dtype=torch.float64)
        if len(values) >= smooth:
            values = values.unfold(0, smooth, 1).mean(1)
        ax.plot(values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (running mean of {smooth})")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def shift_figure(
    best_alpha: Mapping[int, float],
    error: Mapping[int, Sequence[float]] | None = None,
    alphas: Sequence[float] = (),
    *,
    what: str = "pixels n",
    label: str = "best α (exact posterior)",
    error_label: str = "per-pixel W2² to the data",
):
    """The best shift α against the number of pixels (log–log) with the √(n/n₀) law through the
    first point; with ``error`` (per n, the error at each of ``alphas``) a second panel of the
    error curves. ``what``, ``label``, ``error_label``: the axis and legend texts (the trained
    models' sweep: latent tokens, FID-style)."""
    import matplotlib.pyplot as plt

    pixels = sorted(best_alpha)
    panels = 2 if error else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3), squeeze=False)
    ax = axes[0][0]
    ax.plot(pixels, [best_alpha[n] for n in pixels], "o-", label=label)
    n0 = pixels[0]
    ax.plot(pixels, [best_alpha[n0] * (n / n0) ** 0.5 for n in pixels], "--", label="∝ √n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(what)
    ax.set_ylabel("best α")
    ax.legend(fontsize=7)
    if error:
        ax = axes[0][1]
        for n in pixels:
            ax.plot(alphas, error[n], label=f"{what.split()[-1]} = {n}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("shift α")
        ax.set_ylabel(error_label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sampling_figure(
    sampler: Sampler,
    captions: Sequence[str],
    settings: Sequence[tuple[int, float, float]],
    *,
    seed: int = 0,
    title: str | None = None,
):
    """Rows: (steps, shift, guidance) settings; columns: captions; the same noise in every row."""
    rows = {
        f"{steps} steps, α {shift:g}, s {guidance:g}": sampler(
            captions, steps, shift, guidance, seed
        )
        for steps, shift, guidance in settings
    }
    return samples_figure(rows, captions, title=title, columns=len(captions))


def sampling_explorer(
    sampler: Sampler,
    captions: Sequence[str],
    *,
    scale: int = 6,
    steps: int = 10,
    max_steps: int = 50,
):
    """Controls: caption, sampling steps (``steps`` at first), shift α, guidance scale, noise
    seed; four samples of the chosen caption drawn live."""
    import ipywidgets as widgets

    caption = widgets.Dropdown(options=list(captions), value=captions[0], description="caption")
    steps = widgets.IntSlider(steps, 1, max_steps, description="steps")
    shift = widgets.FloatLogSlider(1.0, base=2, min=-1, max=3, step=0.5, description="shift α")
    guidance = widgets.FloatSlider(3.0, min=0.0, max=8.0, step=0.5, description="guidance s")
    seed = widgets.IntSlider(0, 0, 99, description="noise seed")
    picture = widgets.Image(format="png")
    note = widgets.HTML()

    def update(*_: object) -> None:
        images = sampler([caption.value] * 4, steps.value, shift.value, guidance.value, seed.value)
        picture.value = png_strip(list(images.clamp(-1, 1).cpu()), scale)
        note.value = (
            f"four samples of “{caption.value}”: {steps.value} Euler steps, α = {shift.value:g}, "
            f"s = {guidance.value:g} (s = 1: the conditional model; s = 0: the unconditional model)"
        )

    for control in (caption, steps, shift, guidance, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox(
        [widgets.HBox([caption, seed]), widgets.HBox([steps, shift, guidance]), picture, note]
    )
