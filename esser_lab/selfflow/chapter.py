"""Chapter 19 helpers (Self-Flow): figures and the dual-timestep explorer.

The explorer shows what dual-timestep scheduling feeds the two networks: pick t, s, the mask
ratio and a seed; it draws the student's mixed view (tokens in the mask at s, the rest at t) and
the teacher's homogeneous view at τ_min = min(t, s). It needs no trained model, so the static book
page shows :func:`views_figure` beside it at a few settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from esser_lab.selfflow.method import noise_tokens, token_mask
from esser_lab.viz.images import png_strip, show_grid

__all__ = ["alignment_figure", "dts_explorer", "mixed_views", "probe_figure", "views_figure"]


def mixed_views(
    images: Tensor, t: float, s: float, ratio: float, patch_size: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """(student's mixed view, teacher's view at min(t, s)) of ``images`` with one fixed ε."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator)
    tokens = (images.shape[-1] // patch_size) ** 2
    mask = token_mask(len(images), tokens, ratio, generator)
    per_token = torch.where(mask, torch.tensor(float(s)), torch.tensor(float(t)))
    mixed = noise_tokens(images, noise, per_token, patch_size)
    tau = torch.full((len(images), tokens), min(t, s))
    return mixed.clamp(-1, 1), noise_tokens(images, noise, tau, patch_size).clamp(-1, 1)


def views_figure(
    images: Tensor, settings: Sequence[tuple[float, float]], ratio: float, patch_size: int
):
    """Rows: the data, then for each (t, s) the student's and the teacher's view."""
    rows, titles = [list(images)], ["data"]
    for t, s in settings:
        mixed, clean = mixed_views(images, t, s, ratio, patch_size)
        rows += [list(mixed), list(clean)]
        titles += [f"student\nt={t:g}, s={s:g}", f"teacher\nτ_min={min(t, s):g}"]
    return show_grid(rows, row_titles=titles, cell=0.9)


def dts_explorer(images: Tensor, patch_size: int, *, scale: int = 6):
    """Sliders t, s, mask ratio and seed over ``images``: the two views, drawn live."""
    import ipywidgets as widgets

    t = widgets.FloatSlider(0.7, min=0.0, max=1.0, step=0.05, description="t")
    s = widgets.FloatSlider(0.2, min=0.0, max=1.0, step=0.05, description="s")
    ratio = widgets.FloatSlider(0.25, min=0.0625, max=0.9375, step=0.0625, description="ratio")
    seed = widgets.IntSlider(0, 0, 99, description="seed")
    student, teacher, note = (
        widgets.Image(format="png"),
        widgets.Image(format="png"),
        widgets.HTML(),
    )

    def update(*_: object) -> None:
        mixed, clean = mixed_views(images, t.value, s.value, ratio.value, patch_size, seed.value)
        student.value = png_strip(list(mixed), scale)
        teacher.value = png_strip(list(clean), scale)
        note.value = (
            f"top: the student's view ({ratio.value:.0%} of the {patch_size}×{patch_size} "
            f"patches at s = {s.value:g}, the rest at t = {t.value:g}); bottom: the teacher's "
            f"view, every patch at τ_min = {min(t.value, s.value):g}"
        )

    for control in (t, s, ratio, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([t, s]), widgets.HBox([ratio, seed]), student, teacher, note])


def probe_figure(
    tables: Mapping[str, Mapping[tuple[int, float], float]],
    *,
    chance: float,
    label: str = "the class",
):
    """Linear-probe accuracy per block, one colour per arm, one line style per probe time;
    ``label`` names what the probe reads, ``chance`` its chance level (a grey line)."""
    import matplotlib.pyplot as plt

    if not 0.0 < chance < 1.0:
        raise ValueError(f"chance is a probe's chance accuracy in (0, 1), got {chance}")
    fig, ax = plt.subplots(figsize=(6.5, 3))
    styles = ("-", "--", ":", "-.")
    for colour, (name, table) in enumerate(tables.items()):
        times = sorted({t for _, t in table})
        for style, t in zip(styles, times, strict=False):
            layers = sorted(k for k, tt in table if tt == t)
            ax.plot(layers, [table[(k, t)] for k in layers], style, color=f"C{colour}",
                    marker="o", ms=3, label=f"{name}, t = {t:g}")  # fmt: skip
    ax.axhline(chance, color="grey", lw=0.8)
    ax.set_xlabel("block")
    ax.set_ylabel(f"probe accuracy ({label})")
    ax.set_title(f"linear probe of mean-pooled block features (chance {chance:g})", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def alignment_figure(curves: Mapping[str, Tensor]):
    """The running-mean student–teacher cosine over training steps."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    for name, curve in curves.items():
        ax.plot(curve, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("cos(proj(student), teacher)")
    ax.set_title("alignment of the student's projected features to the EMA teacher's", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
