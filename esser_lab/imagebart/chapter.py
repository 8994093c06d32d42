"""Chapter 13 helpers (ImageBART): masked completions, a completion explorer and its figures.

The explorer completes one held-out digit live: pick a mask, a test image, a scale of the chain
(x_T … x_0) and a seed; ImageBART's masked chain and the autoregressive baseline (in its best
raster order for the mask) fill the masked tokens, and the first stage decodes them. On the static
book page the widget is a frozen snapshot, so the chapter shows :func:`completion_figure` and
:func:`chain_figure` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from esser_lab.imagebart.claims import BASELINE_ORDERS
from esser_lab.imagebart.first_stage import RemappedVQModel
from esser_lab.imagebart.method import ar_complete, completion_mask, sample_chain
from esser_lab.imagebart.model import ImageBART
from esser_lab.nn.transformer import GPT
from esser_lab.viz.images import png_strip, show_grid

__all__ = ["chain_figure", "completion_explorer", "completion_figure", "masked_images"]


def masked_images(images: Tensor, keep: Tensor, side: int) -> Tensor:
    """``images`` (b, 1, H, W) with the completed region greyed out (for display)."""
    factor = images.shape[-1] // side
    pixels = keep.view(side, side).repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return torch.where(pixels, images, torch.zeros_like(images))


@torch.no_grad()
def chain_figure(
    model: ImageBART,
    first_stage: RemappedVQModel,
    side: int,
    num_samples: int = 6,
    *,
    x_clean: Tensor | None = None,
    keep: Tensor | None = None,
    seed: int = 0,
    runs: int = 1,
    title: str | None = None,
):
    """Rows: samples; columns: x_T, …, x_0 decoded (unconditional, or a masked chain with each
    scale applied ``runs`` times, see :func:`~esser_lab.imagebart.method.sample_chain`)."""
    generator = torch.Generator().manual_seed(seed)
    if x_clean is not None:
        x_clean = x_clean[:num_samples]
    chain = sample_chain(
        model,
        None if x_clean is not None else num_samples,
        x_clean,
        keep,
        generator=generator,
        runs=runs,
    )  # (T + 1, b, l)
    decoded = [first_stage.decode_codes(x, side).clamp(-1, 1).cpu() for x in chain]
    T = model.config.n_scales  # noqa: N806
    return show_grid(
        [[decoded[s][i] for s in range(T + 1)] for i in range(chain.shape[1])],
        column_titles=[f"x_{T - s}" for s in range(T + 1)],
        cell=0.9,
        title=title,
    )


@torch.no_grad()
def _completions(
    model: ImageBART,
    baselines: Mapping[str, GPT],
    x_clean: Tensor,
    kind: str,
    side: int,
    seed: int,
    runs: int = 1,
) -> tuple[Tensor, dict[str, Tensor]]:
    keep = completion_mask(kind, side)
    generator = torch.Generator().manual_seed(seed)
    chain = sample_chain(model, x_clean=x_clean, keep=keep, generator=generator, runs=runs)
    out = {}
    for order in BASELINE_ORDERS[kind]:
        out[f"AR ({order})"] = ar_complete(
            baselines[order], x_clean, keep, order, generator=generator
        )  # fmt: skip
    return chain, out


def completion_figure(
    model: ImageBART,
    baselines: Mapping[str, GPT],
    first_stage: RemappedVQModel,
    x_clean: Tensor,
    images: Tensor,
    kind: str,
    side: int,
    *,
    seed: int = 0,
    runs: int = 1,
    title: str | None = None,
):
    """Rows: the original, the kept part, ImageBART's completion (``runs`` per scale), the
    baseline's; columns: held-out digits."""
    keep = completion_mask(kind, side)
    chain, baseline = _completions(model, baselines, x_clean, kind, side, seed, runs)
    rows = [list(images.clamp(-1, 1)), list(masked_images(images, keep, side))]
    rows.append(list(first_stage.decode_codes(chain[-1], side).clamp(-1, 1).cpu()))
    names = ["original", "kept", "ImageBART"]
    for name, codes in baseline.items():
        rows.append(list(first_stage.decode_codes(codes, side).clamp(-1, 1).cpu()))
        names.append(name)
    return show_grid(rows, row_titles=names, cell=0.8, title=title)


def completion_explorer(
    model: ImageBART,
    baselines: Mapping[str, GPT],
    first_stage: RemappedVQModel,
    x_clean: Tensor,
    images: Tensor,
    side: int,
    *,
    scale: int = 8,
    runs: int = 1,
):
    """Dropdown: mask; sliders: held-out digit, chain scale shown, seed. ImageBART applies each
    scale ``runs`` times (pass the chapter's value, so the widget shows the measured sampler)."""
    import ipywidgets as widgets

    T = model.config.n_scales  # noqa: N806
    kind = widgets.Dropdown(options=["top", "centre", "bottom"], value="top", description="mask")
    index = widgets.IntSlider(0, 0, x_clean.shape[0] - 1, description="digit")
    shown = widgets.IntSlider(0, 0, T, description="show x_t, t =")
    seed = widgets.IntSlider(0, 0, 99, description="seed")
    picture = widgets.Image(format="png")
    caption = widgets.HTML()

    def update(*_: object) -> None:
        keep = completion_mask(kind.value, side)
        clean = x_clean[index.value : index.value + 1].expand(4, -1)
        chain, baseline = _completions(model, baselines, clean, kind.value, side, seed.value, runs)
        original = images[index.value : index.value + 1]
        tiles = [original[0], masked_images(original, keep, side)[0]]
        tiles += list(first_stage.decode_codes(chain[T - shown.value], side).clamp(-1, 1).cpu())
        for codes in baseline.values():
            tiles += list(first_stage.decode_codes(codes[:1], side).clamp(-1, 1).cpu())
        picture.value = png_strip(tiles, scale)
        caption.value = (
            f"original, kept tokens, four ImageBART chains at x_{shown.value} (x_0 = the "
            f"completion), then the autoregressive baseline ({', '.join(baseline)})"
        )

    for control in (kind, index, shown, seed):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([kind, index, shown, seed]), picture, caption])
