"""Chapter 18's claims (LADD, Sauer et al., SIGGRAPH Asia 2024; arXiv 2403.12015).

What the chapter measures and against what, in one place. Every student is trained the same way
(the same teacher, steps, batch, learning rates, data order and seed); only the setting named in
the claim differs:

* **few steps** (Sec. 4, SD3-Turbo: 4 unguided steps against its 50-step guided teacher): the
  student at 1 and 4 steps against the *teacher at the same steps* (guided as for the synthetic
  data, so it spends twice the calls): the FID-style score of decoded samples against held-out
  real images, the FID-style distance to the many-step guided teacher's samples ("how close to
  the teacher"), and attribute accuracy of the captions; wall time per sample is a sanity row;
* **the noise level t̂ of the discriminator** (Sec. 3.2: high-noise t̂ for global structure):
  students trained with t̂ ~ logit-normal(1, 1) against logit-normal(−1, 1): the layout
  distance (Fréchet distance of the 4×4 average-pooled decoded samples from the 4×4 pooled
  held-out real images: unpaired, so it does not reward a student for keeping the teacher's
  noise → image pairing, which LADD never trains) and the detail error |log r| of the
  high-frequency energy ratio r (energy of the image minus its pooled version, samples over
  held-out real images: 0 when the samples have as much detail as the data, larger for too
  smooth and for too noisy samples alike). The paired low-frequency error (RMS against the
  many-step teacher's sample for the same noise and caption) is kept as a displayed number;
* **synthetic data** (Sec. 3.3): the student trained on the teacher's guided samples against the
  same student trained on the real training latents: FID-style and attribute accuracy.

The teacher at many steps against itself at one step is a sanity row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.cards import Card
from esser_lab.sd3.claims import SampleScores

__all__ = [
    "LADDScores",
    "ScoreReference",
    "detail_error",
    "file_data_claims",
    "file_few_step_claims",
    "file_noise_level_claims",
    "high_frequency_ratio",
    "layout_distance",
    "low_frequency_error",
    "scores_of",
]


@dataclass(frozen=True)
class LADDScores:
    """A set of samples, scored: chapter 17's :class:`SampleScores` plus the distance to the
    many-step teacher's samples (FID-style ↓), the paired low-frequency error against them (↓,
    displayed only), the high-frequency energy ratio against real images (1: as much detail
    as the data) and the layout distance to real images (↓)."""

    scores: SampleScores
    to_teacher: float
    low_frequency: float
    high_frequency: float
    seconds_per_sample: float
    layout: float

    @property
    def detail(self) -> float:
        """:func:`detail_error` of the high-frequency ratio (↓, 0 at the data's detail)."""
        return detail_error(self.high_frequency)


def _check_images(images: Tensor, name: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor (b, c, h, w), got {got}")


def low_frequency_error(images: Tensor, reference: Tensor, grid: int = 4) -> float:
    """RMS difference of ``images`` and ``reference`` (paired, same shape) after average pooling
    to ``grid``×``grid``: what differs in the layout, the fine detail averaged away."""
    _check_images(images, "images")
    _check_images(reference, "reference")
    if images.shape != reference.shape:
        raise ValueError(
            f"images and reference are paired: one shape, got {tuple(images.shape)} and "
            f"{tuple(reference.shape)}"
        )
    if images.shape[-1] % grid or images.shape[-2] % grid:
        raise ValueError(f"grid {grid} must divide the image size {tuple(images.shape[-2:])}")
    pooled = F.adaptive_avg_pool2d(images.float(), grid)
    pooled_ref = F.adaptive_avg_pool2d(reference.float(), grid)
    return float((pooled - pooled_ref).pow(2).mean().sqrt())


def layout_distance(images: Tensor, reference: Tensor, grid: int = 4) -> float:
    """Fréchet distance of ``images`` and ``reference`` (unpaired, ≥ 2 each) after average
    pooling to ``grid``×``grid``: Gaussians fitted to the pooled pixels (c·grid² numbers per
    image), so it compares where and how bright the blobs are, not the fine detail and not which
    noise made which sample."""
    from esser_lab.metrics.fid import frechet_distance

    _check_images(images, "images")
    _check_images(reference, "reference")
    if images.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"images {tuple(images.shape[1:])} and reference {tuple(reference.shape[1:])} must "
            "have one image shape"
        )
    if images.shape[-1] % grid or images.shape[-2] % grid:
        raise ValueError(f"grid {grid} must divide the image size {tuple(images.shape[-2:])}")
    pooled = F.adaptive_avg_pool2d(images.float(), grid).flatten(1)
    pooled_ref = F.adaptive_avg_pool2d(reference.float(), grid).flatten(1)
    return frechet_distance(pooled, pooled_ref)


def detail_error(ratio: float) -> float:
    """|log ratio| of a high-frequency energy ratio (:func:`high_frequency_ratio`): 0 at the
    reference's detail, the same for half and for twice its energy; ``inf`` for no detail."""
    if not ratio >= 0:
        raise ValueError(f"an energy ratio is ≥ 0, got {ratio}")
    return abs(math.log(ratio)) if ratio > 0 else math.inf


def _high_energy(images: Tensor, grid: int) -> Tensor:
    low = F.adaptive_avg_pool2d(images.float(), grid)
    up = F.interpolate(low, size=images.shape[-2:], mode="nearest")
    return (images.float() - up).pow(2).flatten(1).sum(1).mean()


def high_frequency_ratio(images: Tensor, reference: Tensor, grid: int = 4) -> float:
    """Mean energy of ``images`` minus their ``grid``×``grid`` pooled version, over the same of
    ``reference`` (unpaired): below 1 the samples are smoother than the reference."""
    _check_images(images, "images")
    _check_images(reference, "reference")
    if images.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"images {tuple(images.shape[1:])} and reference {tuple(reference.shape[1:])} must "
            "have one image shape"
        )
    energy = _high_energy(reference, grid)
    if not energy > 0:
        raise ValueError("the reference has no high-frequency energy to compare with")
    return float(_high_energy(images, grid) / energy)


def _need(runs: Mapping[str, LADDScores], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in runs]
    if missing:
        raise ValueError(f"the claims need runs {missing}, have {sorted(runs)}")


def file_few_step_claims(
    card: Card,
    runs: Mapping[str, LADDScores],
    *,
    steps: tuple[int, ...],
    many: int,
    train_steps: int,
) -> None:
    """Student against the teacher at the same few steps; runs keyed ``"student@k"``,
    ``"teacher@k"`` for k in ``steps`` and ``"teacher@{many}"``."""
    _need(runs, (*(f"{w}@{k}" for w in ("student", "teacher") for k in steps), f"teacher@{many}"))
    same = (
        "the teacher with the same {k} Euler {steps}, guided (twice the calls); the student is "
        f"its copy after {train_steps} LADD steps"
    )
    why = (
        "the paper's comparison: a few-step sampler of the same model (SD3-Turbo's 4 steps "
        "against SD3 with few steps, Sec. 4); what distillation adds"
    )
    for k in steps:
        student, teacher = runs[f"student@{k}"], runs[f"teacher@{k}"]
        word = "step" if k == 1 else "steps"
        card.add(
            f"student-vs-teacher-fid-{k}",
            f"A {k}-step LADD student samples better than its teacher with {k} {word}",
            metric=f"FID-style ↓ of {k}-step samples against held-out real images",
            ours=student.scores.fid,
            baseline=same.format(k=k, steps=word),
            baseline_value=teacher.scores.fid,
            why=why,
            better="lower",
        )
        card.add(
            f"student-closer-to-teacher-{k}",
            f"A {k}-step student is closer to the {many}-step guided teacher than the teacher "
            f"with {k} {word} is",
            metric=f"FID-style ↓ against the teacher's {many}-step guided samples",
            ours=student.to_teacher,
            baseline=same.format(k=k, steps=word),
            baseline_value=teacher.to_teacher,
            why="the paper's claim: the student matches its many-step teacher (Sec. 4)",
            better="lower",
        )
        card.add(
            f"student-vs-teacher-attributes-{k}",
            f"A {k}-step student follows the captions better than its teacher with {k} {word}",
            metric=f"attribute accuracy ↑ of {k}-step samples (classifier on real images)",
            ours=student.scores.attributes,
            baseline=same.format(k=k, steps=word),
            baseline_value=teacher.scores.attributes,
            why=why,
            better="higher",
        )
    k = max(steps)
    card.add(
        "student-time-per-sample",
        f"The {k}-step student is faster than the {many}-step guided teacher",
        metric="wall seconds per sample (sampling and decoding)",
        ours=runs[f"student@{k}"].seconds_per_sample,
        baseline=f"the teacher with {many} guided Euler steps",
        baseline_value=runs[f"teacher@{many}"].seconds_per_sample,
        why="fewer calls and no guidance: a sanity row (the calls are counted, not measured)",
        better="lower",
        kind="sanity",
        timed=True,
    )
    card.add(
        "teacher-many-vs-one",
        f"The teacher with {many} steps samples better than with 1",
        metric="FID-style ↓ against held-out real images",
        ours=runs[f"teacher@{many}"].scores.fid,
        baseline="the same teacher with 1 guided Euler step",
        baseline_value=runs["teacher@1"].scores.fid,
        why="sanity: the teacher's few-step samples are the blur distillation removes",
        better="lower",
        kind="sanity",
    )


def file_noise_level_claims(
    card: Card, high: LADDScores, low: LADDScores, *, steps: int, high_label: str, low_label: str
) -> None:
    """High-noise against low-noise t̂ (Sec. 3.2): layout against detail, at ``steps``."""
    card.add(
        "t-hat-high-noise-layout",
        "Re-noising to high noise levels (t̂) gives a layout closer to the data's",
        metric=f"layout distance ↓ of {steps}-step samples (Fréchet, 4×4 pooled, vs real images)",
        ours=high.layout,
        baseline=f"the same student with t̂ ~ {low_label} (low noise)",
        baseline_value=low.layout,
        why=f"the paper's t̂ ablation (Sec. 3.2): ours is t̂ ~ {high_label}",
        better="lower",
    )
    card.add(
        "t-hat-low-noise-detail",
        "Re-noising to low noise levels (t̂) gives detail closer to the data's",
        metric=f"detail error ↓ |log r| of {steps}-step samples, r: high-frequency energy ratio "
        "against real images",
        ours=low.detail,
        baseline=f"the same student with t̂ ~ {high_label} (high noise)",
        baseline_value=high.detail,
        why="the other side of the same trade-off (Sec. 3.2); too much energy (noise) counts as "
        "much as too little",
        better="lower",
    )


def file_data_claims(card: Card, synthetic: LADDScores, real: LADDScores, *, steps: int) -> None:
    """The teacher's synthetic latents against the real training latents as LADD's data."""
    why = "the paper's data ablation (Sec. 3.3): the same student and loss, only the data differ"
    card.add(
        "synthetic-vs-real-fid",
        "Training the student on the teacher's synthetic data beats real data",
        metric=f"FID-style ↓ of {steps}-step samples against held-out real images",
        ours=synthetic.scores.fid,
        baseline="the same student trained on the real training latents",
        baseline_value=real.scores.fid,
        why=why,
        better="lower",
    )
    card.add(
        "synthetic-vs-real-attributes",
        "Synthetic data gives better caption alignment than real data",
        metric=f"attribute accuracy ↑ of {steps}-step samples",
        ours=synthetic.scores.attributes,
        baseline="the same student trained on the real training latents",
        baseline_value=real.scores.attributes,
        why=why,
        better="higher",
    )


@dataclass(frozen=True)
class ScoreReference:
    """What every set of samples is scored against, with its FID-style features computed once
    (:meth:`of`): the held-out ``real`` images and the many-step teacher's ``teacher_images``
    (the same noise and captions as every scored set), both (n, 3, h, w) in [−1, 1]."""

    real: Tensor
    teacher_images: Tensor
    feature_net: torch.nn.Module
    real_features: Tensor
    teacher_features: Tensor

    @classmethod
    def of(
        cls, real: Tensor, teacher_images: Tensor, feature_net: torch.nn.Module
    ) -> ScoreReference:
        _check_images(real, "real")
        _check_images(teacher_images, "teacher_images")
        real, teacher_images = real.float().cpu(), teacher_images.float().cpu()
        return cls(
            real=real,
            teacher_images=teacher_images,
            feature_net=feature_net,
            real_features=_features(feature_net, real),
            teacher_features=_features(feature_net, teacher_images),
        )


@torch.no_grad()
def _features(feature_net: torch.nn.Module, images: Tensor) -> Tensor:
    """The FID-style features of ``images``, in chunks of 512 (as ``fid_style``)."""
    return torch.cat([feature_net.features(chunk) for chunk in images.split(512)])


def scores_of(
    images: Tensor,
    labels: Mapping[str, Tensor],
    *,
    classifier: torch.nn.Module,
    reference: ScoreReference,
    seconds: float,
) -> LADDScores:
    """Score decoded ``images`` (b, 3, h, w) in [−1, 1] for their caption ``labels`` against
    ``reference``: the FID-style score against its real images and the FID-style distance to its
    teacher images (unpaired, as :func:`~esser_lab.metrics.fid_style`, on features computed once),
    caption and attribute accuracy as chapter 17's
    :func:`~esser_lab.sd3.claims.score_samples`, and the paired low-frequency error against the
    teacher images (same noise and captions)."""
    from esser_lab.metrics.fid import frechet_distance
    from esser_lab.sd3.adherence import attribute_accuracy, caption_accuracy
    from esser_lab.sd3.claims import SampleScores

    _check_images(images, "images")
    n = images.shape[0]
    wrong = {k: tuple(v.shape) for k, v in labels.items() if v.shape[0] != n}
    if wrong:
        raise ValueError(f"one label per image: {n} images, labels of shapes {wrong}")
    images = images.detach().float().cpu().clamp(-1, 1)
    labels = {k: v.cpu() for k, v in labels.items()}
    features = _features(reference.feature_net, images)
    # chapter 17's attribute accuracy: the mean over the captioned attributes that vary
    per_label = attribute_accuracy(classifier, images, labels)
    varying = [k for k, v in labels.items() if v[v >= 0].unique().numel() > 1 and k in per_label]
    base = SampleScores(
        fid=frechet_distance(features, reference.real_features),
        accuracy=caption_accuracy(classifier, images, labels),
        seconds=float(seconds),
        attributes=sum(per_label[k] for k in varying) / max(len(varying), 1),
    )
    return LADDScores(
        scores=base,
        to_teacher=frechet_distance(features, reference.teacher_features),
        low_frequency=low_frequency_error(images, reference.teacher_images),
        high_frequency=high_frequency_ratio(images, reference.real),
        seconds_per_sample=seconds / n,
        layout=layout_distance(images, reference.real),
    )
