"""Figures and the explorer of chapter 15 (keyframe propagation); no training here."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from esser_lab.keyframe.layers import warp_features
from esser_lab.keyframe.method import KeyframeSamples

__all__ = ["DEVIATIONS", "distance_figure", "fills_figure", "keyframe_explorer", "panel"]

#: What the chapter does differently from the paper and its official code, at every scale unless
#: said (the chapter prints this list; tests/keyframe check the behaviours it states).
DEVIATIONS: dict[str, str] = {
    "The tiny loss": "at `tiny` the generator trains on L1 in the hole plus L1 on the known "
    "pixels, not on LaMa's adversarial objective (a GAN does not train in a minute on a CPU); "
    "`small` and `full` train the paper's objective.",
    "Whole keyframes": "the keyframes enter without a hole of their own (their mask channel is "
    "zero), at every scale. The official data module cuts a separate hole into every reference "
    "frame as well, so the paper's generator also learns to fill from keyframes that miss "
    "parts.",
    "The data at full scale": "`full` runs the procedural clips at the `small` sizes "
    "(`KeyframeConfig.small()` on the small clips), only longer, with the clips' exact flow plus "
    "noise for RAFT; not `KeyframeConfig.paper()` on Places365 with RAFT's flow, which the "
    "paper trained. The paper's configuration is built and loads the released generator.",
    "The error channel in the hole": "the clips' error channel is filled inside the hole from "
    "the same edge points as the flow (they have no backward flow to check). The official "
    "error there is the forward–backward check of the two filled flows, which `RaftFlow` "
    "computes for real video.",
    "One generator pass a batch": "the generator runs once per batch and the discriminator's "
    "step reuses its output, detached. The official module (one closure per optimiser) runs "
    "the generator again for the discriminator's step, after the generator's update on a batch "
    "that steps, and its BatchNorms see every batch twice.",
    "The perceptual network in eval mode": "the ADE20k ResNet-50 of the perceptual loss keeps "
    "its published BatchNorm statistics throughout. In the official module it is switched "
    "back to train mode with the rest, so its BatchNorms normalise with each batch's "
    "statistics during training.",
    "The released-weights cell": "with a released checkpoint present, the cell runs the "
    "generator on random images with zero flow and zero error: a check of the shapes, not a "
    "fill.",
    "The tiny optimiser": "at `tiny` Adam runs at a constant learning rate of 2e-3, without "
    "gradient accumulation, warm-up, cosine schedule or discriminator; `small` and `full` "
    "follow the official config (base rate 1e-5 × accumulation 2 × batch size, on one GPU; "
    "the official `main.py` also multiplies by the number of GPUs).",
    "Precision": "on a GPU, `small` and `full` train in bf16 mixed precision "
    "(`esser_lab.scale`); the official trains in fp32, Lightning 1.4's default. `tiny` and "
    "CPU runs are fp32.",
    "Hole masks": "every problem's hole is one axis-aligned box with sides of 35–60 % of the "
    "frame, at every scale. The official data (`ours.yaml`) draw LaMa's mixed masks: per image "
    "either 1–5 irregular strokes or 1–4 boxes (30–150 pixels of 256), one kind or the other "
    "with equal odds.",
    "The clips' error channel": "outside the hole, the error channel of the procedural clips "
    "is the Euclidean norm of the flow's noise (plus 1 where the flow is not valid); the "
    "official error, which `RaftFlow` computes by default for real video, is the mean of the "
    "two components' absolute forward–backward residuals.",
}

CONDITIONS = {"clean": "clean flow", "one_wrong": "one flow wrong", "all_wrong": "all flows wrong"}


def _signed(image: Tensor) -> Tensor:
    return image * 2 - 1  # [0, 1] → the viz convention [-1, 1]


def panel(samples: KeyframeSamples, fills: Mapping[str, Tensor], i: int) -> list[Tensor]:
    """Row ``i`` as images in [-1, 1]: the target with its hole (grey), the keyframes, the first
    keyframe warped by its flow, then each arm's fill, then the truth."""
    m = samples.mask[i]
    holed = samples.image[i] * (1 - m) + 0.5 * m
    warped = warp_features(samples.keys[i, :1], samples.flows[i, :1])[0]
    row = [holed, *samples.keys[i], warped, *(f[i] for f in fills.values()), samples.image[i]]
    return [_signed(x) for x in row]


def fills_figure(
    samples: Mapping[str, KeyframeSamples],
    fills: Mapping[str, Mapping[str, Tensor]],
    index: int,
):
    """One example under each flow condition: inputs, the four arms' fills, the truth."""
    from esser_lab.viz.images import show_grid

    names = list(next(iter(fills.values())))
    keys = next(iter(samples.values())).keys.shape[1]
    columns = ["target + hole", *[f"keyframe {k + 1}" for k in range(keys)], "key 1 warped"]
    columns += [f"fill: {n}" for n in names] + ["truth"]
    rows = [panel(samples[c], fills[c], index) for c in samples]
    return show_grid(rows, row_titles=[CONDITIONS.get(c, c) for c in samples],
                     column_titles=columns, cell=1.0)  # fmt: skip


def distance_figure(distances: Mapping[str, Mapping[int, float]]):
    """Hole PSNR (clean flow) against the frames from the target to its nearer keyframe, per arm."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for name, table in distances.items():
        ax.plot(list(table), list(table.values()), marker="o", label=name)
    ax.set_xlabel("frames to the nearer keyframe")
    ax.set_ylabel("hole PSNR (dB), clean flow")
    ax.set_xticks(sorted({d for t in distances.values() for d in t}))
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def keyframe_explorer(
    samples: Mapping[str, KeyframeSamples],
    fills: Mapping[str, Mapping[str, Tensor]],
    *,
    scale: int = 8,
):
    """Pick an example and a flow condition: inputs, fills of every arm, truth, drawn live."""
    import ipywidgets as widgets

    from esser_lab.viz.images import png_strip

    n = len(next(iter(samples.values())))
    index = widgets.IntSlider(0, 0, n - 1, description="example")
    condition = widgets.Dropdown(
        options=[(CONDITIONS.get(c, c), c) for c in samples], description="flow"
    )
    picture, note = widgets.Image(format="png"), widgets.HTML()
    names = list(next(iter(fills.values())))

    def update(*_: object) -> None:
        s = samples[condition.value]
        i = index.value
        picture.value = png_strip(panel(s, fills[condition.value], i), scale)
        wrong = [k + 1 for k, bad in enumerate(s.corrupted[i].tolist()) if bad]
        note.value = (
            f"target frame {int(s.target[i])}, {int(s.distance[i])} frame(s) from the nearest "
            f"keyframe; wrong flow for keyframe(s) {wrong or 'none'}. Left to right: target with "
            f"its hole, the keyframes, keyframe 1 warped, the fills of {', '.join(names)}, truth"
        )

    index.observe(update, names="value")
    condition.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([index, condition]), picture, note])
