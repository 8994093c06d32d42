"""Chapter 10's claims (Taming Transformers, Esser, Rombach & Ommer, CVPR 2021; arXiv:2012.09841).

What the chapter measures and how it is compared, in one place, so that the notebook only
calls :func:`file_claims` and the verdicts are unit-tested:

* **codebook size** (the README's first-stage table: rFID 7.94 with |Z| = 1024 against 4.98
  with 16,384 on ImageNet val): the VQGAN with the larger codebook against the same VQGAN with
  the smaller one, in PSNR and in the book's FID-style score of the reconstructions; and the
  same comparison without the GAN term (a control);
* **the adversarial term** (the README's VQGAN 4.98 against DALL-E's dVAE 32.01, a codebook
  model trained without a GAN): the VQGAN against the same model trained on L1 alone, in the
  FID-style score and in the high-frequency energy ratio;
* **the transformer**: its held-out NLL per code against the unigram model of the same codes
  (what the context and the class add), and the colour of its class-conditional samples against
  the same GPT trained with shuffled labels (so that its class token carries no information).
  The uniform log K and chance level 1/C are sanity rows only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.metrics import fid_style
from esser_lab.nn.placement import images_per_pass
from esser_lab.nn.quantize import codebook_usage
from esser_lab.taming.method import hf_ratio, psnr
from esser_lab.taming.model import VQModel

__all__ = [
    "FirstStageScores",
    "SecondStageScores",
    "evaluate_first_stage",
    "file_claims",
    "shuffled_labels",
    "unigram_nll",
]

README = "README of CompVis/taming-transformers"


@dataclass(frozen=True)
class FirstStageScores:
    """A first stage on held-out images: reconstructions, codes and their scores."""

    x_hat: Tensor  # (b, c, h, w) reconstructions in [-1, 1]
    indices: Tensor  # (b, h', w') codes
    psnr: float  # dB, mean over images
    fid: float  # the book's FID-style score of x̂ against x
    hf: float  # Sobel energy of x̂ / of x (1 = as sharp as the data)
    used: int  # distinct codes used
    perplexity: float  # e^H of the code histogram

    @property
    def sharpness_error(self) -> float:
        """|1 − hf_ratio|: how far the high-frequency energy is from the data's."""
        return abs(1.0 - self.hf)


@torch.no_grad()
def evaluate_first_stage(model: VQModel, images: Tensor, feature_net) -> FirstStageScores:
    """Reconstruct ``images`` (b, c, h, w) in [-1, 1] and score them (PSNR, FID-style, hf).

    The model runs where its weights are (e.g. on the GPU it trained on), in batches of 512
    images of 16×16 or as many pixels (32 at 64 px: the activations of 512 images at 64 px are
    gigabytes); reconstructions and codes come back on the CPU, next to ``images``.
    """
    device = next(model.parameters()).device
    chunk = images_per_pass(images.shape[-2], images.shape[-1], pixels=512 * 16 * 16)
    outputs = [model(part.to(device)) for part in images.split(chunk)]
    x_hat = torch.cat([x.cpu() for x, _ in outputs])
    indices = torch.cat([q.indices.cpu() for _, q in outputs])
    images = images.cpu()
    perplexity, used = codebook_usage(indices, model.config.n_embed)
    return FirstStageScores(
        x_hat=x_hat,
        indices=indices,
        psnr=psnr(x_hat, images).mean().item(),
        fid=fid_style(x_hat, images, feature_net),
        hf=hf_ratio(x_hat, images).item(),
        used=used,
        perplexity=float(perplexity),
    )


def unigram_nll(train_codes: Tensor, test_codes: Tensor, vocab_size: int) -> float:
    """NLL (nats per code) of ``test_codes`` under the code frequencies of ``train_codes``.

    Add-one (Laplace) smoothing, so that a code unseen in training has a finite cost. This is
    the best model of the codes that ignores both the context and the class.
    """
    for name, codes in (("train_codes", train_codes), ("test_codes", test_codes)):
        if codes.numel() == 0 or codes.min() < 0 or codes.max() >= vocab_size:
            raise ValueError(f"{name} must be non-empty codes in [0, {vocab_size})")
    counts = torch.bincount(train_codes.flatten(), minlength=vocab_size).double() + 1.0
    return float(-(counts / counts.sum()).log()[test_codes.flatten()].mean())


def shuffled_labels(labels: Tensor, generator: torch.Generator) -> Tensor:
    """``labels`` in a random order: the baseline GPT's class token, unrelated to its image."""
    return labels[torch.randperm(len(labels), generator=generator)]


@dataclass(frozen=True)
class SecondStageScores:
    """The transformer's held-out NLL, its baselines, and the colour of its samples."""

    nll: float  # nats per code, held-out codes, with their classes
    unigram_nll: float  # the same codes under the training codes' frequencies
    vocab_size: int
    sample_accuracy: float  # classifier names the conditioning colour of the GPT's samples
    shuffled_accuracy: float  # the same for the GPT trained with shuffled labels
    num_classes: int
    num_samples: int


def file_claims(
    card: Card,
    first_stages: Mapping[str, FirstStageScores],
    small_k: int,
    large_k: int,
    second_stage: SecondStageScores,
) -> Card:
    """File chapter 10's claims on ``card`` and return it.

    ``first_stages`` holds the four first stages under ``"VQGAN K={k}"`` and
    ``"L1 VQ-VAE K={k}"`` for ``k`` in ``(small_k, large_k)``.
    """
    if not small_k < large_k:
        raise ValueError(f"need small_k < large_k, got {small_k} and {large_k}")
    names = [f"{m} K={k}" for k in (small_k, large_k) for m in ("VQGAN", "L1 VQ-VAE")]
    missing = [n for n in names if n not in first_stages]
    if missing:
        raise KeyError(f"first_stages lacks {missing}; it has {sorted(first_stages)}")
    gan_small, gan_large = first_stages[names[0]], first_stages[names[2]]
    l1_small, l1_large = first_stages[names[1]], first_stages[names[3]]
    s = second_stage

    codebook_paper = PaperPair(
        4.98,
        7.94,
        "rFID on ImageNet val, VQGAN f16 with |Z| = 16384 vs 1024 (the real FID on ImageNet, "
        "not our metric)",
        README,
        better="lower",
    )
    smaller = f"the same VQGAN with K = {small_k}, trained the same way"
    why_size = "the paper's own comparison of codebook sizes (README: |Z| = 1024 vs 16384)"
    card.add(
        "codebook-psnr",
        f"A larger codebook reconstructs better: the VQGAN with K = {large_k} has a higher "
        f"PSNR than with K = {small_k}",
        metric="reconstruction PSNR (dB), 512 held-out sprites",
        ours=gan_large.psnr,
        baseline=smaller,
        baseline_value=gan_small.psnr,
        why=why_size,
        better="higher",
        paper=codebook_paper,
    )
    card.add(
        "codebook-fid",
        f"A larger codebook reconstructs better: the VQGAN with K = {large_k} has a lower "
        f"FID-style score of its reconstructions than with K = {small_k}",
        metric="the book's FID-style score of 512 reconstructions against their originals",
        ours=gan_large.fid,
        baseline=smaller,
        baseline_value=gan_small.fid,
        why=why_size,
        better="lower",
        paper=codebook_paper,
    )
    card.add(
        "codebook-psnr-l1",
        f"Control without the GAN term: the L1 VQ-VAE with K = {large_k} has a higher PSNR "
        f"than with K = {small_k}",
        metric="reconstruction PSNR (dB), 512 held-out sprites",
        ours=l1_large.psnr,
        baseline=f"the same L1 VQ-VAE with K = {small_k}, trained the same way",
        baseline_value=l1_small.psnr,
        why="the codebook-size comparison with the GAN term removed: is the effect the "
        "codebook's or the discriminator's?",
        better="higher",
    )
    l1_baseline = f"the same model with K = {large_k} trained without the GAN term (L1 only)"
    why_gan = (
        "the paper's VQGAN-vs-dVAE comparison isolated: ours differs from the VQGAN only in "
        "the adversarial term (the dVAE of DALL-E also differs in architecture and data)"
    )
    card.add(
        "gan-sharpness",
        "The adversarial term sharpens reconstructions: the VQGAN's high-frequency energy is "
        "closer to the data's than the L1-only model's",
        metric=f"|1 − hf_ratio| (Sobel energy of x̂ / of x), K = {large_k}",
        ours=gan_large.sharpness_error,
        baseline=l1_baseline,
        baseline_value=l1_large.sharpness_error,
        why=why_gan,
        better="lower",
    )
    card.add(
        "gan-fid",
        "The adversarial term gives more realistic reconstructions: a lower FID-style score "
        "than the L1-only model",
        metric=f"the book's FID-style score of 512 reconstructions, K = {large_k}",
        ours=gan_large.fid,
        baseline=l1_baseline,
        baseline_value=l1_large.fid,
        why=why_gan,
        better="lower",
        paper=PaperPair(
            4.98,
            32.01,
            "rFID on ImageNet val, VQGAN f16-16384 vs DALL-E dVAE f8-8192 (other models, the "
            "real FID, not our metric)",
            README,
            better="lower",
        ),
    )
    card.add(
        "gpt-nll",
        "The transformer learns a prior over the codes that uses the context and the class: "
        "its held-out NLL per code is below that of the codes' own frequencies",
        metric=f"held-out NLL, nats per code ({large_k} codes, 512 test sprites)",
        ours=s.nll,
        baseline="the unigram model of the same codes (training-set frequencies, add-one)",
        baseline_value=s.unigram_nll,
        why="the best model that ignores context and class: the gap is what the transformer "
        "adds (the paper compares with PixelSNAIL on the same codes; no number we could check)",
        better="lower",
    )
    card.add(
        "gpt-nll-uniform",
        "The held-out NLL is below the uniform distribution over the codebook",
        metric="held-out NLL, nats per code",
        ours=s.nll,
        baseline=f"log K, the uniform distribution over {s.vocab_size} codes",
        baseline_value=math.log(s.vocab_size),
        why="a closed form: any trained model should beat it (sanity check)",
        better="lower",
        kind="sanity",
    )
    card.add(
        "class-samples",
        "Class-conditional samples show their class: a classifier trained on real sprites "
        "names their conditioning colour more often than for the same GPT trained without "
        "usable labels",
        metric=f"classifier accuracy on {s.num_samples} samples, {s.num_classes} colours",
        ours=s.sample_accuracy,
        baseline="the same GPT trained the same way with shuffled labels",
        baseline_value=s.shuffled_accuracy,
        why="isolates the class token: same data, codes, steps and sampler, but the label "
        "carries no information about the image",
        better="higher",
    )
    card.add(
        "class-samples-chance",
        "Class-conditional samples are named with their colour more often than chance",
        metric=f"classifier accuracy on {s.num_samples} samples",
        ours=s.sample_accuracy,
        baseline=f"chance, 1/{s.num_classes}",
        baseline_value=1 / s.num_classes,
        why="a constant (sanity check)",
        better="higher",
        kind="sanity",
    )
    return card
