"""Chapter 12 helpers: both models' predictions, a camera explorer widget and its static figure.

The explorer moves the target camera of one toy scene sideways with a slider and shows, side by
side, the true view, the explicit baseline's warp-and-fill and a sample of the geometry-free
transformer. On the static book page the widget is a frozen snapshot, so the chapter shows
:func:`camera_sweep_figure` beside it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.data import scenes
from esser_lab.geofree.baseline import DepthErrorModel, ExplicitBaseline
from esser_lab.geofree.method import normalize_scale, sample_views
from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer
from esser_lab.viz.images import png_strip, show_grid

__all__ = [
    "camera_explorer",
    "camera_sweep_figure",
    "estimated_camera",
    "explicit_views",
    "implicit_views",
    "moved",
    "toy_config",
]


def toy_config(scale: str) -> tuple[GeoFreeConfig, str]:
    """The transformer config and first-stage preset the chapter trains at ``scale``.

    ``tiny``: :meth:`GeoFreeConfig.tiny` over the shipped 16-pixel VQGAN (``"tiny"``);
    ``small`` and ``full``: :meth:`GeoFreeConfig.small` over a 32-pixel VQGAN trained in the
    chapter (``"small"``). On this toy world ``full`` is ``small`` trained for more steps:
    :meth:`GeoFreeConfig.paper` expects the 16,384-code f = 16 VQGAN of 208×368 frames (13×23
    codes), which only the official weights provide, so the chapter builds it on the meta device
    and for loading those weights only.
    """
    if scale == "tiny":
        return GeoFreeConfig.tiny(), "tiny"
    if scale in ("small", "full"):
        return GeoFreeConfig.small(), "small"
    raise ValueError(f"scale must be 'tiny', 'small' or 'full', got {scale!r}")


ESTIMATED_DEPTH = DepthErrorModel()  # the estimator's errors both models get (training.py)


@torch.no_grad()
def estimated_camera(
    pairs: scenes.ViewPairs,
    seed: int = 0,
    depth_error: DepthErrorModel | None = ESTIMATED_DEPTH,
) -> dict[str, Tensor]:
    """The pairs' camera with t scale-normalised (G3) by an *estimated* source depth.

    The estimate is the first draw of ``depth_error`` from a generator seeded with ``seed``:
    the very depth :func:`explicit_views` warps with for the same seed (``None``: exact depth).
    """
    depth = pairs.source_depth
    if depth_error is not None:
        depth = depth_error(depth, torch.Generator().manual_seed(seed))
    return normalize_scale(pairs.camera, depth)


@torch.no_grad()
def implicit_views(
    model: GeoTransformer,
    pairs: scenes.ViewPairs,
    seed: int = 0,
    batch_size: int = 512,
    depth_error: DepthErrorModel | None = ESTIMATED_DEPTH,
    depth_seed: int | None = None,
) -> Tensor:
    """One sampled target view per pair (b, 3, H, W), on the CPU.

    α of (G3) comes from the depth estimate the baseline gets for ``depth_seed`` (default:
    ``seed``; :func:`estimated_camera`); the samples are drawn from a second generator seeded
    ``seed``. Several samples of the same inputs: vary ``seed``, keep ``depth_seed``.
    """
    camera = estimated_camera(pairs, seed if depth_seed is None else depth_seed, depth_error)
    generator = torch.Generator().manual_seed(seed)
    device = model.transformer.pos_emb.device
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size].to(device)
        part = {k: v[start : start + batch_size].to(device) for k, v in camera.items()}
        out.append(sample_views(model, chunk.source, part, generator=generator).cpu())
    return torch.cat(out)


@torch.no_grad()
def explicit_views(baseline: ExplicitBaseline, pairs: scenes.ViewPairs, seed: int = 0) -> Tensor:
    """The baseline's target views (b, 3, H, W): a fixed draw of its depth errors per pair."""
    generator = torch.Generator().manual_seed(seed)
    device = next(baseline.parameters()).device
    pairs = pairs.to(device)
    return baseline.eval()(pairs.source, pairs.source_depth, pairs.camera, generator).cpu()


def moved(world: scenes.Scenes, shift: float, size: int) -> scenes.ViewPairs:
    """Pairs of ``world`` (one scene, or several) seen from a camera moved by ``shift`` along x."""
    n = len(world)
    centre = torch.tensor([[shift, 0.0, 0.0]]).expand(n, 3)
    return scenes.view_pairs(world, scenes.Cameras(torch.eye(3).expand(n, 3, 3), centre), size)


def _row(model, baseline, world, shift, size, seed) -> list[Tensor]:
    pairs = moved(world, shift, size)
    explicit = explicit_views(baseline, pairs, seed)[0]
    implicit = implicit_views(model, pairs, seed)[0]
    holes = pairs.disoccluded[0].float() * 2 - 1
    return [pairs.source[0], pairs.target[0], holes.expand(3, -1, -1), explicit, implicit]


COLUMNS = ["source", "true target", "disoccluded", "explicit", "geometry-free"]


def camera_sweep_figure(
    model: GeoTransformer,
    baseline: ExplicitBaseline,
    world: scenes.Scenes,
    shifts: list[float],
    size: int,
    seed: int = 0,
    title: str | None = None,
):
    """Rows: the camera moved sideways by each shift; columns: :data:`COLUMNS`."""
    rows = [_row(model, baseline, world[:1], s, size, seed) for s in shifts]
    return show_grid(
        rows,
        row_titles=[f"x {s:+.2f}" for s in shifts],
        column_titles=COLUMNS,
        cell=0.9,
        title=title,
    )


def camera_explorer(
    model: GeoTransformer,
    baseline: ExplicitBaseline,
    world: scenes.Scenes,
    size: int,
    scale: int = 8,
):
    """Sliders: the sideways camera shift, the scene, the sampling seed; five pictures live."""
    import ipywidgets as widgets

    shift = widgets.FloatSlider(0.6, min=-0.9, max=0.9, step=0.1, description="camera x")
    scene = widgets.IntSlider(0, 0, len(world) - 1, description="scene")
    seed = widgets.IntSlider(0, 0, 99, description="seed")
    picture = widgets.Image(format="png")
    caption = widgets.HTML()

    def update(*_: object) -> None:
        i = scene.value
        row = _row(model, baseline, world[i : i + 1], shift.value, size, seed.value)
        picture.value = png_strip(row, scale)
        caption.value = (
            f"camera moved by {shift.value:+.1f} along x: " + ", ".join(COLUMNS) + " (white: "
            "target pixels the source does not see)"
        )

    for control in (shift, scene, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([shift, scene, seed]), picture, caption])
