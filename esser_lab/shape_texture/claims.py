"""Chapter 11's claims (Islam, Kowal, Esser et al., *Shape or Texture*, ICLR 2021).

Every comparison is between networks (or readouts) trained the same way; criteria were fixed
before any result was seen:

* **training data** (the paper's ImageNet vs Stylized-ImageNet ResNet-50s): the network trained
  on texture-randomised images ("SIN-like") has *more* shape and *fewer* texture dimensions at
  its last stage than the same network trained where texture predicts the class ("IN-like");
* **depth, made by training** (the paper's per-stage estimates, res1 … res5): the difference
  between the last and the first stage's shape share (shares, since the stages' widths differ:
  counts would favour the wider stage by construction) is larger after training than for the
  same network untrained (same architecture, same initialisation seed). The untrained
  difference is not zero: the softmax of (S3) alone hands a wide stage a share of shape, so
  only what training adds to it is the paper's finding;
* **over training** (the paper: "the majority of overall shape information" is learnt in the
  first few epochs): after the first quarter of the training steps, the IN-like network's last
  stage has gained more than half of the shape dimensions it gains over the whole run
  (``(d(T/4) − d(0)) / (d(T) − d(0))`` against 0.5, the paper's "majority");
* **shape decoding** (the paper: encoding shape does not mean encoding per-pixel semantics):
  with the same head on the same frozen features, the binary (object / background) readout's
  score above chance is larger than the semantic (per-pixel class) readout's; and each readout
  on the trained network's hypercolumns against the same head, steps and data on the untrained
  network's hypercolumns (what training put there, beyond what random filters keep). The same
  head on each pixel's raw 3×3 neighbourhood is a sanity row only: a window that narrow cannot
  see what whole-image hypercolumns see, so beating it says little;
* **texture bias** (the motivation, Geirhos et al. 2019): on texture-randomised test images the
  IN-like network classifies shape worse than the SIN-like one.

Chance levels and the raw-pixel readouts are sanity rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from esser_lab.cards import Card, PaperPair
from esser_lab.shape_texture.method import StageDims
from esser_lab.shape_texture.readout import ReadoutScore

__all__ = ["RegimeResult", "early_fraction", "file_claims"]

UNVERIFIED = "unverified"


@dataclass(frozen=True)
class RegimeResult:
    """One trained network: its per-stage dimensions and its shape accuracy on
    texture-randomised held-out images."""

    regime: str  # "shortcut" (IN-like) or "randomised" (SIN-like)
    dims: Sequence[StageDims]  # res1 first
    accuracy: float


def early_fraction(records: Mapping[int, Sequence[StageDims]], at_step: int) -> float:
    """``(d(at) − d(0)) / (d(T) − d(0))`` for the last stage's shape dimensions ``d``, ``T`` the
    last recorded step: the share of the run's gain in shape dimensions reached at ``at_step``.
    0 when the run gains none (then no shape was learnt early either)."""
    if 0 not in records or at_step not in records:
        raise ValueError(f"records need steps 0 and {at_step}, have {sorted(records)}")
    final = max(records)
    start, at, end = (records[s][-1].shape for s in (0, at_step, final))
    if end <= start:
        return 0.0
    return (at - start) / (end - start)


def file_claims(
    card: Card,
    shortcut: RegimeResult,
    randomised: RegimeResult,
    untrained: Sequence[StageDims],
    early: float,
    early_at: float,
    readouts: Mapping[tuple[str, str], ReadoutScore],
    num_classes: int,
) -> None:
    """Files the chapter's claims on ``card``.

    ``untrained``: the per-stage estimates of the IN-like network before its first step (the
    same architecture and initialisation seed, res1 first). ``readouts`` maps ``(source, task)``
    with source ``"features"`` (the trained IN-like network's hypercolumns), ``"untrained"``
    (the untrained network's) or ``"pixels"`` (raw 3×3 neighbourhoods) and task ``"binary"`` /
    ``"semantic"`` to held-out scores; ``early`` is :func:`early_fraction` at ``early_at`` (a
    fraction of the training steps)."""
    sources = ("features", "untrained", "pixels")
    needed = [(s, t) for s in sources for t in ("binary", "semantic")]
    missing = [k for k in needed if k not in readouts]
    if missing:
        raise ValueError(f"readouts lack {missing}")
    if len(untrained) != len(shortcut.dims) or len(untrained) < 2:
        raise ValueError(
            f"untrained needs one estimate per stage ({len(shortcut.dims)}, at least 2), "
            f"got {len(untrained)}"
        )
    last_in, last_sin = shortcut.dims[-1], randomised.dims[-1]
    same = "the same network trained as long on images whose texture predicts the class (IN-like)"
    why = "the paper's comparison: ResNet-50 trained on ImageNet vs on Stylized-ImageNet"
    card.add(
        "sin-shape-dims",
        "training on texture-randomised images gives more shape dimensions (last stage)",
        metric=f"shape dimensions of {last_sin.width} at {last_sin.stage}, estimate (S2)–(S3)",
        ours=last_sin.shape,
        baseline=same,
        baseline_value=last_in.shape,
        why=why,
        better="higher",
        paper=PaperPair(None, None, "shape dims, ResNet-50 SIN vs IN (Table 1)", UNVERIFIED),
    )
    card.add(
        "sin-texture-dims",
        "training on texture-randomised images gives fewer texture dimensions (last stage)",
        metric=f"texture dimensions of {last_sin.width} at {last_sin.stage}",
        ours=last_sin.texture,
        baseline=same,
        baseline_value=last_in.texture,
        why=why,
        better="lower",
        paper=PaperPair(None, None, "texture dims, ResNet-50 SIN vs IN (Table 1)", UNVERIFIED),
    )
    first_in = shortcut.dims[0]
    card.add(
        "training-grows-shape-with-depth",
        "training makes the last stage's shape share grow beyond the first's (IN-like)",
        metric=f"shape share at {last_in.stage} minus shape share at {first_in.stage}",
        ours=last_in.shape_fraction - first_in.shape_fraction,
        baseline="the same difference for the same network untrained (same initialisation)",
        baseline_value=untrained[-1].shape_fraction - untrained[0].shape_fraction,
        why="the paper's per-stage estimates (res1 … res5): shape is encoded late; the "
        "untrained network's difference is what the estimate gives before any learning",
        better="higher",
        paper=PaperPair(None, None, "shape dims per stage, res1 → res5 (Fig. 3)", UNVERIFIED),
    )
    card.add(
        "shape-early",
        f"most of the shape dimensions are gained in the first {early_at:.0%} of training "
        "(IN-like, last stage)",
        metric="share of the run's gain in shape dimensions reached at that step",
        ours=early,
        baseline="one half: the paper's 'majority of overall shape information'",
        baseline_value=0.5,
        why="the paper's dimensions over epochs; a majority is more than half",
        better="higher",
        paper=PaperPair(None, None, "shape dims over epochs (Fig. 4)", UNVERIFIED),
    )
    binary, semantic = readouts["features", "binary"], readouts["features", "semantic"]
    card.add(
        "binary-vs-semantic",
        "where the object is decodes from frozen features better than which class each pixel is",
        metric="held-out mIoU normalised between chance and 1, IN-like network's hypercolumns",
        ours=binary.normalised,
        baseline="the same head on the same features, per-pixel shape classes",
        baseline_value=semantic.normalised,
        why="the paper's binary vs semantic shape decoding (same backbone, same head)",
        better="higher",
        paper=PaperPair(None, None, "mIoU, binary vs semantic VOC readout (Table 3)", UNVERIFIED),
    )
    for task in ("binary", "semantic"):
        card.add(
            f"{task}-features-vs-untrained",
            f"training puts the {task} map into the features: the trained network's "
            "hypercolumns decode it better than the untrained network's",
            metric="held-out mIoU normalised between chance and 1",
            ours=readouts["features", task].normalised,
            baseline="the same head, steps and data on the untrained network's hypercolumns "
            "(same architecture, same initialisation)",
            baseline_value=readouts["untrained", task].normalised,
            why="what training adds to the features beyond what random filters already keep",
            better="higher",
        )
    for task in ("binary", "semantic"):
        card.add(
            f"{task}-features-vs-pixels-sanity",
            f"the trained hypercolumns decode the {task} map better than a narrow raw-pixel window",
            metric="held-out mIoU normalised between chance and 1",
            ours=readouts["features", task].normalised,
            baseline="the same head on each pixel's 3×3 neighbourhood of raw pixels",
            baseline_value=readouts["pixels", task].normalised,
            why="a reference only: a 3×3 window cannot see what whole-image hypercolumns see",
            better="higher",
            kind="sanity",
        )
    card.add(
        "texture-bias",
        "the IN-like network classifies shape worse when texture no longer matches it",
        metric="shape accuracy on texture-randomised held-out images",
        ours=shortcut.accuracy,
        baseline="the SIN-like network on the same images",
        baseline_value=randomised.accuracy,
        why="the texture bias the paper starts from (Geirhos et al. 2019's cue conflict)",
        better="lower",
    )
    card.add(
        "above-chance",
        f"the SIN-like network classifies shape above chance (1/{num_classes})",
        metric="shape accuracy on texture-randomised held-out images",
        ours=randomised.accuracy,
        baseline="chance",
        baseline_value=1.0 / num_classes,
        why="a sanity check that the network learnt shape at all",
        better="higher",
        kind="sanity",
    )
