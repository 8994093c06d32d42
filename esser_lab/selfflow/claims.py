"""Chapter 19's measurements and claims: probes, samples, alignment, on the relation sprites.

Chefer, Esser et al. 2026 (arXiv 2603.06507) claim that Self-Flow's representation is better
(linear probes on intermediate features, following REPA's protocol, without class labels in the
model) and that generation improves at equal compute, against vanilla flow matching; the
counter-paper (Jiang et al., arXiv 2607.02508) attributes most of the gain to dual-timestep
scheduling alone ("noise augmentation"). Each arm here is trained the same way for the same
number of steps (equal steps; the wall time of each arm is reported beside, since Self-Flow's
teacher forward makes a step dearer).

* :func:`probe_table`: for each block and each probe time t, inputs noised homogeneously to t
  (fixed noise), the block's tokens mean-pooled, a linear probe (``esser_lab.iin.method.
  linear_probe``: logistic regression) trained on one set and tested on another; the label is
  the image's class (the glyph both halves share, as REPA probes ImageNet's class) or the colour
  relation of :mod:`esser_lab.data.relations`. The best (block, t) per arm is its number, as
  REPA reports the best layer.
* :func:`sample_scores`: Euler samples of the unconditional model: the share obeying the shape
  rule (both halves judged the same glyph) and the book's FID-style score to held-out data.
* :func:`alignment_curve`: the running mean of the student–teacher cosine over training;
  :func:`plateau_change` turns its two half-rises into the plateau claim's number (a rise, then
  a second half that neither keeps rising as fast nor falls by more than ``PLATEAU_FALL`` of the
  first rise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.data.relations import RelationBatch, judge_shapes
from esser_lab.diffusion.flow import euler_solve
from esser_lab.iin.method import linear_probe
from esser_lab.selfflow.model import SelfFlowDiT

__all__ = [
    "ArmResult",
    "SampleScores",
    "PLATEAU_FALL",
    "alignment_curve",
    "file_selfflow_claims",
    "half_rises",
    "plateau_change",
    "probe_table",
    "sample_scores",
]


@torch.no_grad()
def pooled_features(
    model: SelfFlowDiT, images: Tensor, t: float, noise: Tensor
) -> dict[int, Tensor]:
    """Mean-pooled tokens (n, d) of every block for ``images`` noised to ``t`` with ``noise``,
    computed on the model's device (the features come back on the CPU)."""
    device = next(model.parameters()).device
    x = (1 - t) * images + t * noise
    times = torch.full((len(x),), float(t), device=device)
    layers = list(range(1, model.config.depth + 1))
    chunks = [model(c.to(device), times[: len(c)], return_features=layers)[1] for c in x.split(512)]
    return {k: torch.cat([c[k] for c in chunks]).mean(dim=1).cpu() for k in layers}


def probe_table(
    model: SelfFlowDiT,
    train: RelationBatch,
    test: RelationBatch,
    times: Sequence[float] = (0.25, 0.5),
    seed: int = 0,
    label: str = "shape",
) -> dict[tuple[int, float], float]:
    """Linear-probe accuracy per (block, t) (module docstring) of ``label``: ``"shape"`` (the
    images' class: the glyph both halves share, 4 ways) or ``"same_colour"`` (the relation)."""
    if label not in ("shape", "same_colour"):
        raise ValueError(f"label must be 'shape' or 'same_colour', got {label!r}")
    y_train, y_test = getattr(train, label), getattr(test, label)
    classes = int(max(y_train.max(), y_test.max())) + 1
    was_training = model.training
    model.eval()
    table = {}
    generator = torch.Generator().manual_seed(seed)
    noise_train = torch.randn(train.image.shape, generator=generator)
    noise_test = torch.randn(test.image.shape, generator=generator)
    for t in times:
        features_train = pooled_features(model, train.image, t, noise_train)
        features_test = pooled_features(model, test.image, t, noise_test)
        for layer in features_train:
            table[(layer, float(t))] = linear_probe(
                features_train[layer], y_train, features_test[layer], y_test, classes,
            )  # fmt: skip
    model.train(was_training)
    return table


@dataclass(frozen=True)
class SampleScores:
    rule: float  # share of samples whose halves are judged one and the same glyph
    fid: float  # FID-style score to held-out data (lower is better)
    images: Tensor


@torch.no_grad()
def sample_scores(
    model: SelfFlowDiT, reference: Tensor, num: int, steps: int, seed: int = 0
) -> SampleScores:
    """Euler samples (``steps``) from fixed noise, scored against ``reference`` images; sampled
    on the model's device (the same noise on any device: drawn on the CPU)."""
    from esser_lab.metrics.fid import fid_style

    was_training = model.training
    model.eval()
    config = model.config
    shape = (num, config.in_channels, config.input_size, config.input_size)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    noise = noise.to(next(model.parameters()).device)
    images = euler_solve(model, noise, steps).clamp(-1, 1).cpu()
    model.train(was_training)
    left, right = judge_shapes(images)
    return SampleScores(
        rule=((left == right) & (left >= 0)).float().mean().item(),
        fid=fid_style(images, reference),
        images=images,
    )


def alignment_curve(cosines: Sequence[float], window: int = 20) -> Tensor:
    """Running mean of the per-step alignment cosine (NaN-free input)."""
    values = torch.tensor(list(cosines), dtype=torch.float64)
    if len(values) < window:
        return values
    return values.unfold(0, window, 1).mean(1)


@dataclass(frozen=True)
class ArmResult:
    """One trained arm's numbers."""

    probe: Mapping[tuple[int, float], float]  # the class (shared glyph), per (block, t)
    relation: Mapping[tuple[int, float], float]  # the colour relation, per (block, t)
    samples: SampleScores
    seconds: float
    cosines: Sequence[float] = ()

    @property
    def best_relation(self) -> float:
        return max(self.relation.values())

    @property
    def best_probe(self) -> float:
        return max(self.probe.values())

    @property
    def best_at(self) -> tuple[int, float]:
        return max(self.probe, key=self.probe.get)


PLATEAU_FALL = 0.1  # a plateau may sag by at most 10 % of the first half's rise


def plateau_change(first: float, second: float, fall: float = PLATEAU_FALL) -> float:
    """The 2nd-half change of the alignment curve, a fall weighted by 1/``fall``: below the
    1st-half rise ``first`` exactly when the curve plateaus, i.e. second < first and
    second > −``fall``·first (a cosine that falls back after its rise is no plateau)."""
    return second if second >= 0 else -second / fall


def half_rises(curve: Tensor) -> tuple[float, float]:
    """(rise over the first half, rise over the second half) of a curve."""
    half = len(curve) // 2
    return float(curve[half] - curve[0]), float(curve[-1] - curve[half])


def file_selfflow_claims(card: Card, arms: Mapping[str, ArmResult], *, steps: int) -> None:
    """File chapter 19's claims from arms named ``vanilla``, ``dts`` and ``selfflow``."""
    ours, vanilla, dts = arms["selfflow"], arms["vanilla"], arms["dts"]
    same = f"the same per-token DiT trained {steps:,} steps the same way"
    probe_metric = "best linear-probe accuracy of the class (the shared glyph; over blocks and t)"
    card.add(
        "probe-vs-vanilla", "Self-Flow's features are more linearly informative than vanilla FM's",
        metric=probe_metric, ours=ours.best_probe, baseline="vanilla flow matching",
        baseline_value=vanilla.best_probe, better="higher",
        why=f"the paper's baseline: {same}, without DTS or the teacher",
    )  # fmt: skip
    card.add(
        "probe-vs-dts", "the feature loss adds to what dual-timestep scheduling alone gives",
        metric=probe_metric, ours=ours.best_probe, baseline="DTS alone",
        baseline_value=dts.best_probe, better="higher",
        why=f"the counter-paper's question: {same}, DTS without the teacher",
    )  # fmt: skip
    card.add(
        "relation-probe-vs-vanilla", "the features tell a relation between the parts better",
        metric="best linear-probe accuracy of the colour relation (same or other colour)",
        ours=ours.best_relation, baseline="vanilla flow matching",
        baseline_value=vanilla.best_relation, better="higher", why=f"the paper's baseline: {same}",
    )  # fmt: skip
    card.add(
        "rule-vs-vanilla", "Self-Flow's samples keep the relation between the parts better",
        metric="share of samples whose two glyphs are judged the same shape",
        ours=ours.samples.rule, baseline="vanilla flow matching",
        baseline_value=vanilla.samples.rule, better="higher", why=f"the paper's baseline: {same}",
    )  # fmt: skip
    card.add(
        "fid-vs-vanilla", "Self-Flow generates better than vanilla FM at equal compute",
        metric="FID-style score of samples to held-out data (lower is better)",
        ours=ours.samples.fid, baseline="vanilla flow matching",
        baseline_value=vanilla.samples.fid, better="lower", why=f"the paper's baseline: {same}",
        paper=PaperPair(5.7, None, "ImageNet-256 FID, no guidance (released checkpoint)",
                        "README / model card (Hila/Self-Flow)", "lower"),
    )  # fmt: skip
    card.add(
        "dts-vs-vanilla", "DTS alone improves the features (the counter-paper's reading)",
        metric=probe_metric, ours=dts.best_probe, baseline="vanilla flow matching",
        baseline_value=vanilla.best_probe, better="higher",
        why="isolates the noise-augmentation share of any gain (Jiang et al., arXiv 2607.02508)",
    )  # fmt: skip
    curve = alignment_curve([c for c in ours.cosines if math.isfinite(c)])
    first, second = half_rises(curve) if len(curve) > 2 else (math.nan, math.nan)
    card.add(
        "alignment-plateaus", "the alignment cosine rises fast, then plateaus",
        metric="change of the running-mean student–teacher cosine over the 2nd half of training "
        f"(a fall counted {1 / PLATEAU_FALL:g}×, so a fall of more than "
        f"{PLATEAU_FALL:.0%} of the 1st-half rise fails)",
        ours=plateau_change(first, second), baseline="its rise over the 1st half",
        baseline_value=first, better="lower",
        why="the shape the maintainers report (issues #7, #16): early rise, long plateau",
    )  # fmt: skip
    card.add(
        "teacher-cost", "Self-Flow's step costs more than vanilla FM's (the teacher's forward)",
        metric="training wall time of the arm (s)", ours=ours.seconds,
        baseline="vanilla flow matching", baseline_value=vanilla.seconds, better="higher",
        why="equal steps are not equal wall time: the price of the teacher", kind="sanity",
        timed=True,
    )  # fmt: skip
