"""Chapter 16 helpers (Gen-1): training through ``esser_lab.training``, generation for the
claims, the figures and the explorer.

The explorer generates live from the trained model: pick a clip, the structure level t_s, the
temporal guidance ω_t and the object's colour (the content). On the static book page the widget
is a frozen snapshot, so the chapter shows :func:`clips_figure` beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from esser_lab.data.modules import batch_loader
from esser_lab.data.video import Clips
from esser_lab.diffusion import DiscreteSchedule
from esser_lab.gen1.claims import content_code
from esser_lab.gen1.method import PixelFold, null_content, sample_video, structure
from esser_lab.gen1.model import Gen1Config, Gen1UNet
from esser_lab.gen1.training import LitGen1
from esser_lab.viz.images import png_strip, show_grid

__all__ = [
    "clips_figure",
    "curves_figure",
    "depth_frames",
    "fit_gen1",
    "generate",
    "video_explorer",
]


def fit_gen1(
    profile,  # noqa: ANN001 (esser_lab.scale.Scale)
    clips: Clips,
    config: Gen1Config,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    p_image: float = 0.25,
    p_drop: float = 0.1,
) -> LitGen1:
    """Train a fresh :class:`Gen1UNet` on ``clips`` for ``steps`` AdamW steps (a Lightning
    ``Trainer`` from the scale ``profile``) with the pixel first stage; returns the system."""
    from esser_lab.training.trainer import make_trainer

    code = content_code(clips.colour, clips.texture, clips.object_depth)
    data = {"video": clips.video, "depth": clips.depth, "content": code}
    system = LitGen1(
        Gen1UNet(config),
        PixelFold(2),
        DiscreteSchedule.stable_diffusion(),  # Gen-1 is SD-based: SD's schedule
        learning_rate=learning_rate,
        p_image=p_image,
        p_drop=p_drop,
    )
    loader = batch_loader(data, batch_size, shuffle=True, seed=profile.seed)
    make_trainer(profile, steps, progress_every=max(steps // 2, 1)).fit(system, loader)
    return system


@torch.no_grad()
def generate(
    system: LitGen1,
    clips: Clips,
    *,
    colour: Tensor | None = None,
    t_s: int = 0,
    temporal_scale: float = 1.0,
    content_scale: float = 1.0,
    steps: int = 10,
    seed: int = 0,
    null: bool = False,
) -> Tensor:
    """Generated clips (b, f, 3, H, W) in [−1, 1] with the structure of ``clips`` at level
    ``t_s`` and the content of ``colour`` (b, K) (default: the clips' own colours; textures
    kept), DDIM ``steps``, guidance ω_c / ω_t, the noise from ``seed`` (each clip's noise is
    the same whatever the other arguments: the chapter's comparisons are paired). ``null``:
    the null content ∅ instead (the content-free model, one pass per step)."""
    model = system.model.eval()
    device = next(model.parameters()).device
    colour = clips.colour if colour is None else colour
    c = content_code(colour, clips.texture, clips.object_depth).to(device)
    if null:
        c = null_content(c)
    factor = system.first_stage.factor
    s = structure(clips.depth.to(device), t_s, factor)
    z = sample_video(
        model,
        system.schedule,
        s,
        c,
        steps=steps,
        content_scale=content_scale,
        temporal_scale=temporal_scale,
        generator=torch.Generator().manual_seed(seed),
        clip=isinstance(system.first_stage, PixelFold),
    )
    return system.first_stage.decode(z).clamp(-1, 1).cpu()


def depth_frames(depth: Tensor) -> Tensor:
    """Depth (f, 1, H, W) in [0, 1] as grey frames (f, 3, H, W) in [−1, 1], near = bright."""
    return (1 - 2 * depth).expand(-1, 3, -1, -1)


def clips_figure(rows: Mapping[str, Tensor], *, title: str | None = None, frames: int = 8):
    """One row per entry (a clip (f, 3, H, W) in [−1, 1]), its first ``frames`` frames."""
    return show_grid(
        [list(video[:frames]) for video in rows.values()],
        row_titles=list(rows),
        column_titles=[f"frame {i}" for i in range(min(frames, *(len(v) for v in rows.values())))],
        cell=0.8,
        title=title,
    )


def curves_figure(
    iou_by_t_s: Mapping[int, float],
    error_by_scale: Mapping[float, float],
    accuracy_by_scale: Mapping[float, float],
    data_error: float,
):
    """Left: structure IoU against t_s; right: motion-compensated frame error (and content
    accuracy, second axis) against ω_t, with the real clips' error as a dashed line."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3))
    levels = sorted(iou_by_t_s)
    left.plot(levels, [iou_by_t_s[t] for t in levels], "o-")
    left.set_xlabel("structure blur t_s")
    left.set_ylabel("structure IoU")
    left.set_title("structure fidelity", fontsize=9)
    scales = sorted(error_by_scale)
    right.plot(scales, [error_by_scale[w] for w in scales], "o-", label="frame error (↓)")
    right.axhline(data_error, ls="--", c="grey", label="real clips")
    right.set_xlabel("temporal guidance ω_t (0 = per-frame model)")
    right.set_ylabel("motion-compensated MSE / variance")
    right.set_title("temporal consistency", fontsize=9)
    twin = right.twinx()
    twin.plot(scales, [accuracy_by_scale[w] for w in scales], "s:", c="C2", label="colour acc.")
    twin.set_ylabel("colour accuracy", color="C2")
    twin.set_ylim(0, 1)
    right.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


#: ``generator(index, t_s, temporal_scale, content_scale, colour, seed) -> clip (f, 3, H, W)``
ClipSource = Callable[[int, int, float, float, int, int], Tensor]


def video_explorer(
    source: ClipSource,
    colours: Sequence[str],
    *,
    clips: int,
    max_t_s: int,
    scale: int = 6,
):
    """Controls: the clip (its structure), t_s, ω_t, ω_c (content guidance), the object's
    colour (the content) and the noise seed; the generated clip drawn live as a strip."""
    import ipywidgets as widgets

    index = widgets.IntSlider(0, 0, clips - 1, description="clip")
    t_s = widgets.IntSlider(0, 0, max_t_s, description="t_s")
    omega = widgets.FloatSlider(1.0, min=0.0, max=3.0, step=0.5, description="ω_t")
    omega_c = widgets.FloatSlider(1.0, min=0.0, max=4.0, step=0.5, description="ω_c")
    colour = widgets.Dropdown(options=list(colours), value=colours[0], description="colour")
    seed = widgets.IntSlider(0, 0, 99, description="noise seed")
    picture = widgets.Image(format="png")
    note = widgets.HTML()

    def update(*_: object) -> None:
        choice = colours.index(colour.value)
        frames = source(index.value, t_s.value, omega.value, omega_c.value, choice, seed.value)
        picture.value = png_strip(list(frames.clamp(-1, 1)), scale)
        note.value = (
            f"clip {index.value}'s depth at t_s = {t_s.value}, a {colour.value} object, "
            f"ω_t = {omega.value:g} (0: the per-frame image model; 1: the video model), "
            f"ω_c = {omega_c.value:g} (1: no content guidance)"
        )

    for control in (index, t_s, omega, omega_c, colour, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox(
        [widgets.HBox([index, seed, colour]), widgets.HBox([t_s, omega, omega_c]), picture, note]
    )
