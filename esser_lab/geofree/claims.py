"""Chapter 12's claims (geometry-free view synthesis, Rombach, Esser & Ommer, ICCV 2021).

What the chapter measures and how each claim is compared, in one place; every threshold and
choice below is fixed before any result:

* **large camera motion** (the paper's comparison with explicit, depth-warping methods on
  RealEstate10K and ACID, in FID and PSIM): the geometry-free transformer's sampled target views
  against the explicit baseline (:mod:`esser_lab.geofree.baseline`: warp with an estimated depth,
  fill the holes with a CNN trained the same steps on the same pairs), in the book's FID-style
  score against the true target views, on the test pairs whose camera moved more than
  ``LARGE_MOTION`` (|t| in world units);
* **disoccluded pixels**: the same two models, judged only where the source shows nothing:
  each prediction is pasted into the true target on the disoccluded pixels
  (:func:`composite`), and the composites are scored with the FID-style score against the
  true targets; what differs is only what each model invents where it cannot see;
* **a linear probe finds depth** (the paper's probing of ``impl_nodepth``: depth can be read
  from the transformer's middle layers although depth was never an input): the R² of a ridge
  regression from the residual stream at the source positions of the middle layer
  (``n_layer // 2``) to each patch's mean log-depth, against the same probe on the raw pixels
  of the patch (the input the transformer starts from); and, stricter, against the same probe on
  the transformer's own input (layer 0: the code embeddings plus positions), which isolates what
  its blocks computed from what the VQGAN's codes already tell (the codes of a wall patch and of
  a box patch differ, and so do their depths);
* **uncertain where unseen** (the paper's samples vary where the source says nothing): the
  per-pixel variance across ``SAMPLES_PER_PAIR`` samples of one pair, averaged over disoccluded
  pixels, against the same average over visible pixels.

PSNR is printed beside as information: it rewards blur and does not decide a claim (the paper
leads with FID and PSIM for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.metrics import fid_style

__all__ = [
    "LARGE_MOTION",
    "SAMPLES_PER_PAIR",
    "DepthProbe",
    "ViewScores",
    "composite",
    "depth_probe",
    "file_claims",
    "patch_log_depth",
    "psnr",
    "sample_variance",
    "score_views",
]

UNVERIFIED = "unverified"
LARGE_MOTION = 0.6  # |t| above which a pair counts as a large camera motion (world units)
SAMPLES_PER_PAIR = 4


def psnr(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """PSNR (dB) of images in [−1, 1] over all pixels, or over ``mask`` (b, 1, H, W) bool."""
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    error = (prediction.clamp(-1, 1) - target).pow(2).mean(1, keepdim=True)  # (b, 1, H, W)
    if mask is not None:
        if mask.shape != error.shape:
            raise ValueError(f"mask must be {tuple(error.shape)}, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("the mask selects no pixel")
        error = error[mask]
    return float(10 * torch.log10(4.0 / error.mean()))


def composite(prediction: Tensor, target: Tensor, disoccluded: Tensor) -> Tensor:
    """The true ``target`` with the ``prediction`` pasted where the source shows nothing."""
    return torch.where(disoccluded, prediction, target)


@dataclass(frozen=True)
class ViewScores:
    """One model's predicted target views, scored (FID-style ↓, PSNR ↑)."""

    fid_large: float  # FID-style vs true targets, pairs with |t| > LARGE_MOTION
    fid_disoccluded: float  # FID-style of composites (prediction on disoccluded pixels only)
    psnr_large: float  # information only
    psnr_disoccluded: float  # information only


def score_views(
    prediction: Tensor,
    target: Tensor,
    disoccluded: Tensor,
    motion: Tensor,
    feature_net: torch.nn.Module,
) -> ViewScores:
    """Scores of ``prediction`` (b, 3, H, W) against ``target`` (module doc)."""
    large = motion > LARGE_MOTION
    if int(large.sum()) < 2:
        raise ValueError(f"need ≥ 2 test pairs with |t| > {LARGE_MOTION}, got {int(large.sum())}")
    prediction = prediction.detach().cpu().clamp(-1, 1)
    target, disoccluded, large = target.cpu(), disoccluded.cpu(), large.cpu()
    pasted = composite(prediction, target, disoccluded)
    return ViewScores(
        fid_large=fid_style(prediction[large], target[large], feature_net),
        fid_disoccluded=fid_style(pasted, target, feature_net),
        psnr_large=psnr(prediction[large], target[large]),
        psnr_disoccluded=psnr(prediction, target, disoccluded),
    )


def patch_log_depth(depth: Tensor, latent_shape: tuple[int, int]) -> Tensor:
    """Mean log-depth of each code's patch, (b, h·w) row-major, from depth (b, 1, H, W)."""
    pooled = torch.nn.functional.adaptive_avg_pool2d(depth.log(), latent_shape)
    return pooled.flatten(1)


def raw_patches(images: Tensor, latent_shape: tuple[int, int]) -> Tensor:
    """The pixels of each code's patch, (b, h·w, 3·ph·pw), row-major."""
    b, c, height, width = images.shape
    h, w = latent_shape
    patches = images.reshape(b, c, h, height // h, w, width // w)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, -1)


@dataclass(frozen=True)
class DepthProbe:
    """R² of a linear read-out of patch log-depth: per layer of the transformer, and raw pixels."""

    layers: tuple[float, ...]  # input embedding, then after each block
    raw: float
    middle: int  # the layer the claim reads (n_layer // 2)

    @property
    def middle_r2(self) -> float:
        return self.layers[self.middle]


def depth_probe(
    train_features: list[Tensor],
    train_patches: Tensor,
    train_depth: Tensor,
    test_features: list[Tensor],
    test_patches: Tensor,
    test_depth: Tensor,
    ridge: float = 1e-3,
) -> DepthProbe:
    """Probe every layer's features (b, N, d) and the raw patches (b, N, p) for depth (b, N)."""
    from esser_lab.iin.method import linear_r2

    def flat(x: Tensor) -> Tensor:
        return x.reshape(-1, x.shape[-1])

    layers = tuple(
        linear_r2(flat(a), train_depth.reshape(-1), flat(b), test_depth.reshape(-1), ridge)
        for a, b in zip(train_features, test_features, strict=True)
    )
    raw = linear_r2(
        flat(train_patches), train_depth.reshape(-1), flat(test_patches),
        test_depth.reshape(-1), ridge,
    )  # fmt: skip
    return DepthProbe(layers, raw, (len(layers) - 1) // 2)


def sample_variance(samples: Tensor, disoccluded: Tensor) -> tuple[float, float]:
    """Mean per-pixel variance across samples (k, b, 3, H, W): on disoccluded, on visible pixels."""
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (k ≥ 2, b, 3, H, W), got {tuple(samples.shape)}")
    variance = samples.var(0).mean(1, keepdim=True)  # (b, 1, H, W)
    return float(variance[disoccluded].mean()), float(variance[~disoccluded].mean())


def file_claims(
    card: Card,
    implicit: ViewScores,
    explicit: ViewScores,
    steps: int,
    probe: DepthProbe,
    variance: tuple[float, float],
) -> None:
    """Files chapter 12's five claims on ``card`` (module doc)."""
    same = f"warp with estimated depth + a hole-filling CNN, trained {steps} steps the same way"
    why = (
        "the paper's explicit competitors (depth-based warping, then inpainting: SynSin, 3D "
        "photography, its own expl_img) on the same pairs"
    )
    paper_pair = PaperPair(
        None, None, "FID and PSIM, RealEstate10K and ACID, implicit vs explicit (Tables 1-2)",
        UNVERIFIED,
    )  # fmt: skip
    card.add(
        "large-motion",
        f"on large camera motion (|t| > {LARGE_MOTION}) the geometry-free transformer's views "
        "are better than the explicit warp-and-fill baseline's",
        metric="FID-style of predicted vs true target views, large-motion test pairs",
        ours=implicit.fid_large,
        baseline=same,
        baseline_value=explicit.fid_large,
        why=why,
        better="lower",
        paper=paper_pair,
    )
    card.add(
        "disoccluded",
        "where the source shows nothing, the transformer invents more plausible content than "
        "the explicit baseline",
        metric="FID-style of true targets with the prediction pasted on disoccluded pixels",
        ours=implicit.fid_disoccluded,
        baseline=same,
        baseline_value=explicit.fid_disoccluded,
        why=why,
        better="lower",
        paper=paper_pair,
    )
    card.add(
        "depth-probe",
        f"a linear probe reads depth from the transformer's middle layer (layer {probe.middle}) "
        "although depth was never an input",
        metric="R² of a ridge regression to patch log-depth, held-out source views",
        ours=probe.middle_r2,
        baseline="the same probe on the raw pixels of each patch (the transformer's input)",
        baseline_value=probe.raw,
        why="isolates what the transformer computed: the same read-out of what it was given",
        better="higher",
        paper=PaperPair(None, None, "depth probe on impl_nodepth layers (Sec. 4)", UNVERIFIED),
    )
    card.add(
        "depth-probe-blocks",
        f"the transformer's blocks add depth information: the probe on layer {probe.middle} "
        "reads depth better than on the transformer's input",
        metric="R² of a ridge regression to patch log-depth, held-out source views",
        ours=probe.middle_r2,
        baseline="the same probe on layer 0 (code embeddings + positions, before any block)",
        baseline_value=probe.layers[0],
        why="separates what attention over the source and camera computed from what the VQGAN "
        "codes carry by themselves",
        better="higher",
        paper=PaperPair(None, None, "depth probe across impl_nodepth layers (Sec. 4)", UNVERIFIED),
    )
    card.add(
        "sample-variance",
        "samples differ more where the source is disoccluded than where it is visible",
        metric=f"mean per-pixel variance across {SAMPLES_PER_PAIR} samples of a pair",
        ours=variance[0],
        baseline="the same samples' variance on visible pixels",
        baseline_value=variance[1],
        why="the paper's claim of probabilistic synthesis: certainty where seen, diversity "
        "where not",
        better="higher",
        paper=PaperPair(None, None, "qualitative (samples in the paper's figures)", UNVERIFIED),
    )
