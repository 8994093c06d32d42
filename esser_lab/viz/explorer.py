"""An ipywidgets explorer over precomputed images: pick an appearance and a pose.

On the rendered (static) book page a widget is a frozen snapshot, so every chapter shows a static
figure beside it. Everything is precomputed, so moving a slider never runs a model.
"""

from __future__ import annotations

import torch

from esser_lab.viz.images import png_strip


def transfer_explorer(
    appearance_images: torch.Tensor,
    pose_images: torch.Tensor,
    transfers: torch.Tensor,
    ground_truth: torch.Tensor,
    scale: int = 8,
    caption: str = "appearance of x · pose of y · VUNet transfer · ground truth",
):
    """Sliders for the appearance donor ``i`` and the pose donor ``j``; shows x_i, y_j, the
    transfer ``transfers[i, j]`` and the ground truth ``ground_truth[i, j]``.

    Shapes: ``appearance_images (n, 3, h, w)``, ``pose_images (m, 3, h, w)``,
    ``transfers`` and ``ground_truth`` ``(n, m, 3, h, w)``.
    """
    import ipywidgets as widgets

    n, m = appearance_images.shape[0], pose_images.shape[0]
    if transfers.shape[:2] != (n, m) or ground_truth.shape[:2] != (n, m):
        raise ValueError(
            f"transfers and ground_truth must start with ({n}, {m}), got "
            f"{tuple(transfers.shape[:2])} and {tuple(ground_truth.shape[:2])}"
        )
    appearance = widgets.IntSlider(0, 0, n - 1, description="appearance")
    pose = widgets.IntSlider(0, 0, m - 1, description="pose")
    picture = widgets.Image(format="png")
    label = widgets.HTML(caption)

    def update(*_: object) -> None:
        i, j = appearance.value, pose.value
        picture.value = png_strip(
            [appearance_images[i], pose_images[j], transfers[i, j], ground_truth[i, j]], scale
        )

    appearance.observe(update, names="value")
    pose.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([appearance, pose]), picture, label])
