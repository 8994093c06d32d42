"""Chapter 14's claims (latent diffusion, Rombach et al., CVPR 2022; arXiv:2112.10752).

What the chapter measures and how each claim is compared, in one place:

* **the f-sweep** (the paper's Sec. 4.1, Figs. 6–7: class-conditional ImageNet LDMs with
  downsampling factors f ∈ {1, 2, 4, 8, 16, 32}, trained with the same budget; pixel-space LDM-1
  trains far slower, LDM-4…16 give the best trade-off, and latent models sample faster): the
  latent model of moderate f against the *same* UNet trained the same number of steps in pixel
  space (f = 1), in the book's FID-style score of its samples (s = 1), a classifier's accuracy
  on its guided samples (guidance amplifies what the model has learnt of the class), and the
  wall time per sample;
* **classifier-free guidance** (Table 3: LDM-4 FID 10.56 → 3.60 with guidance s = 1.5): the
  guided samples of the latent model against its plain conditional samples (s = 1), same model,
  same noise, in accuracy and FID-style;
* **the scale factor** (the ``scale_by_std`` option, Stable Diffusion's 0.18215: latents rescaled
  to unit variance so one noise schedule suits every autoencoder): the latent model on rescaled
  latents against the same autoencoder's latents multiplied to Stable Diffusion's spread (std
  ≈ 5.5) and diffused without rescaling, same steps and seed.

Chance level (1/C) is a sanity row only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.metrics import fid_style
from esser_lab.metrics.classifiers import accuracy

__all__ = ["SampleScores", "SweepRow", "file_claims", "score_samples"]

UNVERIFIED = "unverified"


@dataclass(frozen=True)
class SampleScores:
    """Class-conditional samples, scored: classifier accuracy (↑) and FID-style against real
    held-out images (↓)."""

    accuracy: float
    fid: float
    seconds_per_sample: float  # wall time of sampling and decoding, per image


@dataclass(frozen=True)
class SweepRow:
    """One model of the f-sweep: its first stage and its denoiser, timed and scored."""

    factor: int  # 1 = pixel space
    latent_shape: tuple[int, int, int]  # (c, h, w) the denoiser works on
    autoencoder_seconds: float  # 0 in pixel space
    denoiser_seconds: float
    steps: int
    scores: SampleScores  # the conditional model (s = 1)
    guided: SampleScores  # the same model guided (s = the accuracy scale)


def _rgb(x: Tensor) -> Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def score_samples(
    samples: Tensor,
    labels: Tensor,
    classifier: torch.nn.Module,
    reference: Tensor,
    feature_net: torch.nn.Module,
    seconds: float,
) -> SampleScores:
    """Accuracy of ``classifier`` on ``samples`` for their ``labels``; FID-style of the samples
    against ``reference`` (grey images are repeated to RGB for the feature network)."""
    if samples.shape[0] != labels.shape[0]:
        raise ValueError(
            f"one label per sample: {samples.shape[0]} samples, {labels.shape[0]} labels"
        )
    samples = samples.detach().cpu().clamp(-1, 1)
    return SampleScores(
        accuracy=accuracy(classifier, samples, labels.cpu()),
        fid=fid_style(_rgb(samples), _rgb(reference.cpu()), feature_net),
        seconds_per_sample=seconds / samples.shape[0],
    )


def file_claims(
    card: Card,
    sweep: Mapping[int, SweepRow],
    latent_factor: int,
    guidance: Mapping[float, SampleScores],
    fid_scale: float,
    accuracy_scale: float,
    unscaled: SampleScores,
    latent_std: float,
    num_classes: int,
) -> None:
    """Files the chapter's claims on ``card`` (the f-sweep, guidance, the scale factor)."""
    if 1 not in sweep or latent_factor not in sweep:
        raise ValueError(f"the sweep needs f = 1 and f = {latent_factor}, has {sorted(sweep)}")
    for s in (1.0, fid_scale, accuracy_scale):
        if s not in guidance:
            raise ValueError(f"guidance needs s = {s:g}, has {sorted(guidance)}")
    pixel, latent = sweep[1].scores, sweep[latent_factor].scores
    f = latent_factor
    same = f"the same UNet in pixel space (f = 1), trained {sweep[1].steps} steps the same way"
    why = "the paper's LDM-1: the same denoiser on pixels, the comparison of its f-sweep"
    sweep_pair = PaperPair(
        None, None, "f-sweep, FID over training on ImageNet (Fig. 6): LDM-4…16 best", UNVERIFIED
    )
    card.add(
        "latent-fid",
        f"diffusion in a latent space of moderate f gives better samples than in pixel space "
        f"for the same number of denoiser steps (f = {f})",
        metric="FID-style of class-conditional samples vs held-out images (s = 1)",
        ours=latent.fid,
        baseline=same,
        baseline_value=pixel.fid,
        why=why,
        better="lower",
        paper=sweep_pair,
    )
    card.add(
        "latent-accuracy",
        f"class-conditional samples of the latent model (f = {f}) show their class more often "
        "than the pixel model's",
        metric=f"classifier accuracy on guided samples (s = {accuracy_scale:g})",
        ours=sweep[latent_factor].guided.accuracy,
        baseline=same,
        baseline_value=sweep[1].guided.accuracy,
        why=why,
        better="higher",
        paper=sweep_pair,
    )
    card.add(
        "latent-sampling-time",
        f"sampling in the latent space (f = {f}, decoder included) is faster than in pixel space",
        metric="wall time per sample, seconds (DDIM, same steps, decoding included)",
        ours=latent.seconds_per_sample,
        baseline="the pixel-space model, same sampler and steps",
        baseline_value=pixel.seconds_per_sample,
        why="the paper's Fig. 7 (throughput against FID, CelebA-HQ and ImageNet)",
        better="lower",
        timed=True,
        paper=PaperPair(None, None, "samples/s against FID (Fig. 7)", UNVERIFIED),
    )
    plain = guidance[1.0]
    table3 = PaperPair(3.60, 10.56, "FID, ImageNet 256, LDM-4-G s = 1.5 vs LDM-4", UNVERIFIED)
    card.add(
        "guidance-fid",
        f"classifier-free guidance (s = {fid_scale:g}, the paper's) improves the samples over the "
        "plain conditional model",
        metric=f"FID-style of samples, f = {f}",
        ours=guidance[fid_scale].fid,
        baseline="the same model and noise at s = 1 (the conditional model alone)",
        baseline_value=plain.fid,
        why="the paper's Table 3: LDM-4 with and without guidance",
        better="lower",
        paper=table3,
    )
    card.add(
        "guidance-accuracy",
        f"guided samples (s = {accuracy_scale:g}) show their class more often than unguided ones",
        metric=f"classifier accuracy on samples, f = {f}",
        ours=guidance[accuracy_scale].accuracy,
        baseline="the same model and noise at s = 1",
        baseline_value=plain.accuracy,
        why="guidance trades diversity for fidelity to the condition (Table 3: IS 103.5 → 247.7)",
        better="higher",
        paper=PaperPair(247.67, 103.49, "IS, ImageNet 256, LDM-4-G vs LDM-4", UNVERIFIED),
    )
    card.add(
        "scale-factor",
        f"with latents of std {latent_std:.2f} (Stable Diffusion's spread), rescaling them to unit "
        "variance gives better samples than diffusing them as they are",
        metric=f"FID-style of samples (s = 1), f = {f}",
        ours=latent.fid,
        baseline="the same autoencoder and model on latents at that spread, σ = 1",
        baseline_value=unscaled.fid,
        why="what scale_by_std removes: the noise schedule assumes unit-variance data",
        better="lower",
    )
    card.add(
        "above-chance",
        f"the latent model's guided samples are named with their class above chance "
        f"(1/{num_classes})",
        metric=f"classifier accuracy on samples (s = {accuracy_scale:g})",
        ours=guidance[accuracy_scale].accuracy,
        baseline="chance",
        baseline_value=1.0 / num_classes,
        why="a sanity check that the condition is used at all",
        better="higher",
        kind="sanity",
    )
