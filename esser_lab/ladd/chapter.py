"""Chapter 18 helpers (LADD): the t̂ densities figure, the loss figure and the step explorer.

The explorer samples live from the teacher (guided) or a LADD student (unguided) for a caption
and a number of Euler steps; on the static page it is a frozen snapshot, so the chapter shows the
samples figure beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from esser_lab.viz.images import png_strip

__all__ = ["adversarial_figure", "noise_level_figure", "steps_explorer"]

#: ``sampler(model_name, captions, steps, seed) -> images (b, 3, h, w) in [−1, 1]``
Sampler = Callable[[str, Sequence[str], int, int], Tensor]


def noise_level_figure(levels: Mapping[str, tuple[float, float]]):
    """The densities of the re-noising level t̂ ~ logit-normal(m, s), one per ``levels`` entry
    (label → (m, s)), with the student's training path beside them for orientation."""
    import matplotlib.pyplot as plt

    from esser_lab.diffusion.densities import logit_normal

    t = torch.linspace(1e-3, 1 - 1e-3, 400)
    fig, ax = plt.subplots(figsize=(6, 2.6))
    for label, (m, s) in levels.items():
        ax.plot(t, logit_normal(m, s).pdf(t), label=label)
    ax.set_xlabel("t̂ (0 data, 1 noise)")
    ax.set_ylabel("density")
    ax.set_title("where the discriminator looks: the re-noising level t̂", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def adversarial_figure(histories: Mapping[str, Sequence[Mapping[str, float]]], smooth: int = 10):
    """The student's and the discriminator's hinge losses over training (running means), one
    panel each, one line per run."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.5, 2.6))
    for key, ax, title in (
        ("loss_g", axes[0], "student: −E D(fake)"),
        ("loss_d", axes[1], "discriminator: hinge (2 = cannot tell)"),
    ):
        for name, history in histories.items():
            values = torch.tensor([row[key] for row in history], dtype=torch.float64)
            if len(values) >= smooth:
                values = values.unfold(0, smooth, 1).mean(1)
            ax.plot(values, label=name)
        ax.set_xlabel("student step")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def steps_explorer(
    sampler: Sampler, captions: Sequence[str], models: Sequence[str], *, scale: int = 6
):
    """Controls: caption, model (``models``), Euler steps, noise seed; four samples drawn live."""
    import ipywidgets as widgets

    caption = widgets.Dropdown(options=list(captions), value=captions[0], description="caption")
    model = widgets.Dropdown(options=list(models), value=models[-1], description="model")
    steps = widgets.IntSlider(1, 1, 25, description="steps")
    seed = widgets.IntSlider(0, 0, 99, description="noise seed")
    picture = widgets.Image(format="png")
    note = widgets.HTML()

    def update(*_: object) -> None:
        images = sampler(model.value, [caption.value] * 4, steps.value, seed.value)
        picture.value = png_strip(list(images.clamp(-1, 1).cpu()), scale)
        note.value = f"four samples of “{caption.value}”: {model.value}, {steps.value} steps"

    for control in (caption, model, steps, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox(
        [widgets.HBox([caption, model]), widgets.HBox([steps, seed]), picture, note]
    )
