"""Figures for part-based models: coloured part maps, part means on images, a swap explorer.

Images are ``(3, h, w)`` tensors in [-1, 1]; part means are (x, y) in [-1, 1]
(``align_corners=False`` pixel centres), as ``esser_lab.part_based`` returns them.
"""

from __future__ import annotations

import torch

from esser_lab.viz.images import to_rgb


def part_palette(num_parts: int) -> torch.Tensor:
    """``num_parts`` distinct colours ``(K, 3)`` in [0, 1] from matplotlib's ``tab20``."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return torch.tensor([cmap(k % 20)[:3] for k in range(num_parts)], dtype=torch.float32)


def part_map_rgb(part_maps: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
    """Colour one image's part maps ``(K, m, m)``, each scaled to its own peak, over the image.

    Returns ``(3, h, w)`` in [-1, 1] at the image's size (or the maps' size without an image).
    """
    if part_maps.ndim != 3:
        raise ValueError(f"part_maps must have shape (K, m, m), got {tuple(part_maps.shape)}")
    maps = part_maps.detach().float().cpu()
    if image is not None and image.shape[-1] != maps.shape[-1]:
        maps = torch.nn.functional.interpolate(maps[None], size=image.shape[-2:], mode="nearest")[0]
    weights = maps / maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]  # (K, h, w)
    colour = torch.einsum("khw,kc->chw", weights, part_palette(maps.shape[0]))
    alpha = weights.amax(0, keepdim=True).clamp(0, 1)
    colour = colour / weights.sum(0, keepdim=True).clamp_min(1e-12)
    base = torch.zeros_like(colour) if image is None else (image.detach().cpu().float() + 1) / 4
    return (alpha * colour + (1 - alpha) * base) * 2 - 1


def show_part_means(
    images: torch.Tensor,
    means: torch.Tensor,
    keypoints: torch.Tensor | None = None,
    title: str | None = None,
    cell: float = 1.6,
):
    """Images with their part means (coloured dots) and, optionally, true keypoints (white +)."""
    import matplotlib.pyplot as plt

    n, size = images.shape[0], images.shape[-1]
    palette = part_palette(means.shape[1]).numpy()
    fig, axes = plt.subplots(1, n, figsize=(cell * n, cell + 0.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(to_rgb(images[i]), interpolation="nearest", extent=(-1, 1, 1, -1))
        mu = means[i].detach().cpu()
        ax.scatter(mu[:, 0], mu[:, 1], c=palette, s=18, edgecolors="black", linewidths=0.5)
        if keypoints is not None:
            kp = keypoints[i].detach().cpu() * 2 - 1
            ax.scatter(kp[:, 0], kp[:, 1], c="white", marker="+", s=14, linewidths=0.8)
        ax.set_xlim(-1, 1)
        ax.set_ylim(1, -1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(f"{title} ({size}×{size})", fontsize=11)
    fig.tight_layout()
    return fig


def swap_explorer(
    shape_images: torch.Tensor,
    appearance_images: torch.Tensor,
    swaps: torch.Tensor,
    ground_truth: torch.Tensor,
    scale: int = 8,
    caption: str = "shape of x · appearance of y · swap · ground truth",
):
    """Sliders for the shape donor ``i`` and the appearance donor ``j``; shows both donors,
    ``swaps[i, j]`` and ``ground_truth[i, j]`` (all precomputed: a slider never runs a model).

    Shapes: ``shape_images (n, 3, h, w)``, ``appearance_images (m, 3, h, w)``, ``swaps`` and
    ``ground_truth`` ``(n, m, 3, h, w)``.
    """
    import ipywidgets as widgets

    from esser_lab.viz.images import png_strip

    n, m = shape_images.shape[0], appearance_images.shape[0]
    if swaps.shape[:2] != (n, m) or ground_truth.shape[:2] != (n, m):
        raise ValueError(
            f"swaps and ground_truth must start with ({n}, {m}), got "
            f"{tuple(swaps.shape[:2])} and {tuple(ground_truth.shape[:2])}"
        )
    shape = widgets.IntSlider(0, 0, n - 1, description="shape")
    appearance = widgets.IntSlider(0, 0, m - 1, description="appearance")
    picture = widgets.Image(format="png")

    def update(*_: object) -> None:
        i, j = shape.value, appearance.value
        picture.value = png_strip(
            [shape_images[i], appearance_images[j], swaps[i, j], ground_truth[i, j]], scale
        )

    shape.observe(update, names="value")
    appearance.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([shape, appearance]), picture, widgets.HTML(caption)])
