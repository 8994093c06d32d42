"""Chapter 12's claims (geometry-free view synthesis, Rombach, Esser & Ommer, ICCV 2021).

What the chapter measures and how each claim is compared, in one place; every threshold and
choice below is fixed before any result:

* **large camera motion** (the paper's comparison with explicit, depth-warping methods on
  RealEstate10K and ACID, in FID and PSIM): the geometry-free transformer's sampled target views
  against the explicit baseline (:mod:`esser_lab.geofree.baseline`: warp with an estimated depth,
  fill the holes with a CNN trained the same steps on the same pairs), in a *paired* perceptual
  distance to the true target view (:func:`psim_style`, the role PSIM = LPIPS plays in the
  paper), on the test pairs whose camera moved more than ``LARGE_MOTION`` (|t| in world units);
* **disoccluded pixels**: the same two models, judged only where the source shows nothing:
  each prediction is pasted into the true target on the disoccluded pixels
  (:func:`composite`), and each composite's :func:`psim_style` distance to its own true target is
  averaged; what differs is only what each model invents where it cannot see;
* the two view claims each get two *sanity* rows scored the same way: the source copied as the
  prediction, and another test scene's true target (the targets rolled by one pair). A measure
  that cannot tell a right view from a wrong one shows itself there: an unpaired FID-style score
  ranks another scene's sharp target above an honest blurry guess, a paired distance does not.
  The FID-style score (unpaired, :func:`~esser_lab.metrics.fid.fid_style`) and PSNR are printed
  beside and decide nothing;
* **a linear probe finds depth** (the paper's probing of ``impl_nodepth``: depth can be read
  from the transformer's middle layers although depth was never an input): the R² of a ridge
  regression from the residual stream at the source positions of the middle layer
  (``n_layer // 2``) to each patch's mean log-depth, against the same probe on the raw pixels
  of the patch (the input the transformer starts from);
* **the blocks compute depth**, stricter: the same probe on *box patches only* (at least half of
  the patch's pixels on a box, :func:`box_patches`), middle layer against layer 0 (the code
  embeddings plus positions). A box's colour says nothing of its depth (boxes are flat-coloured,
  at random depths), so what a probe reads there must come from context (the box's apparent
  size, its neighbours) — which only the blocks can gather; on all patches, the codes alone
  already tell a wall patch (far) from a box patch (near);
* **uncertain where unseen** (the paper's samples vary where the source says nothing): the
  variance across ``SAMPLES_PER_PAIR`` samples of one pair, per code (a 4×4-pixel patch, the
  area one VQ code decodes to; a code counts as disoccluded when at least half its pixels are),
  averaged over disoccluded codes, against the same average over visible codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.data.scenes import WALL_DEPTH
from esser_lab.metrics import fid_style
from esser_lab.metrics.fid import SIZE, FeatureNet
from esser_lab.metrics.transfer import psnr

__all__ = [
    "CONTROLS",
    "LARGE_MOTION",
    "SAMPLES_PER_PAIR",
    "DepthProbe",
    "ViewScores",
    "box_patches",
    "composite",
    "feature_distance",
    "depth_probe",
    "file_claims",
    "patch_log_depth",
    "psim_style",
    "psnr",
    "sample_variance",
    "score_views",
]

UNVERIFIED = "unverified"
LARGE_MOTION = 0.6  # |t| above which a pair counts as a large camera motion (world units)
SAMPLES_PER_PAIR = 4


def composite(prediction: Tensor, target: Tensor, disoccluded: Tensor) -> Tensor:
    """The true ``target`` with the ``prediction`` pasted where the source shows nothing."""
    return torch.where(disoccluded, prediction, target)


@torch.no_grad()
def feature_distance(prediction: Tensor, target: Tensor, net: FeatureNet) -> Tensor:
    """Per-pair perceptual distance (b,) of images (b, 3, H, W) in [−1, 1], LPIPS-style.

    Both images go through the book's FID-style feature network (resized to its 32×32 input, as
    :meth:`~esser_lab.metrics.fid.FeatureNet.features` does); after each of its four stages the
    activations are unit-normalised over channels at every position, and the squared difference
    between prediction and target is summed over channels, averaged over positions, and summed
    over stages (LPIPS with unit weights on a small network). 0 for identical images; it compares
    the two images *of one pair*, position by position, so a sharp but wrong view scores badly.
    """
    if prediction.shape != target.shape or prediction.dim() != 4 or prediction.shape[1] != 3:
        raise ValueError(
            "need two image batches (b, 3, H, W) of the same shape, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if not isinstance(net, FeatureNet):
        raise TypeError(f"net must be the FID-style FeatureNet, got {type(net).__name__}")
    device = next(net.parameters()).device
    x = torch.cat([prediction, target]).to(device).clamp(-1, 1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = torch.nn.functional.interpolate(
            x, size=(SIZE, SIZE), mode="bilinear", align_corners=False
        )
    total = torch.zeros(len(prediction), device=device)
    for layer in net.body:
        x = layer(x)
        if isinstance(layer, torch.nn.SiLU):  # the end of a stage
            unit = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            a, b = unit.chunk(2)
            total += (a - b).pow(2).sum(1).mean((1, 2))
    return total.cpu()


def psim_style(prediction: Tensor, target: Tensor, net: FeatureNet) -> float:
    """Mean over pairs of :func:`feature_distance` (lower is better), in chunks of 512."""
    distances = [
        feature_distance(p, t, net)
        for p, t in zip(prediction.split(512), target.split(512), strict=True)
    ]
    return float(torch.cat(distances).mean())


@dataclass(frozen=True)
class ViewScores:
    """One set of predicted target views, scored: paired PSIM-style ↓ (deciding), FID-style ↓
    and PSNR ↑ (information)."""

    psim_large: float  # mean paired distance to the true target, pairs with |t| > LARGE_MOTION
    psim_disoccluded: float  # the same, of composites (prediction on disoccluded pixels only)
    fid_large: float  # FID-style vs true targets, pairs with |t| > LARGE_MOTION
    fid_disoccluded: float  # FID-style of composites
    psnr_large: float
    psnr_disoccluded: float


def score_views(
    prediction: Tensor,
    target: Tensor,
    disoccluded: Tensor,
    motion: Tensor,
    feature_net: FeatureNet,
) -> ViewScores:
    """Scores of ``prediction`` (b, 3, H, W) against ``target`` (module doc)."""
    large = motion > LARGE_MOTION
    if int(large.sum()) < 2:
        raise ValueError(f"need ≥ 2 test pairs with |t| > {LARGE_MOTION}, got {int(large.sum())}")
    prediction = prediction.detach().cpu().clamp(-1, 1)
    target, disoccluded, large = target.cpu(), disoccluded.cpu(), large.cpu()
    pasted = composite(prediction, target, disoccluded)
    return ViewScores(
        psim_large=psim_style(prediction[large], target[large], feature_net),
        psim_disoccluded=psim_style(pasted, target, feature_net),
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


def box_patches(source_depth: Tensor, latent_shape: tuple[int, int]) -> Tensor:
    """Which codes' patches (b, h·w) are at least half covered by a box, from the source depth.

    The source camera of every toy pair sits at the origin facing the wall, so a pixel is on a
    box exactly when its depth is below ``WALL_DEPTH`` (boxes lie at depths 1.5–3).
    """
    if source_depth.dim() != 4 or source_depth.shape[1] != 1:
        raise ValueError(f"source_depth must be (b, 1, H, W), got {tuple(source_depth.shape)}")
    on_box = (source_depth < WALL_DEPTH * (1 - 1e-3)).float()
    return torch.nn.functional.adaptive_avg_pool2d(on_box, latent_shape).flatten(1) >= 0.5


@dataclass(frozen=True)
class DepthProbe:
    """R² of a linear read-out of patch log-depth: per layer of the transformer (all patches and
    box patches only) and on raw pixels."""

    layers: tuple[float, ...]  # input embedding, then after each block; all patches
    raw: float
    middle: int  # the layer the claim reads (n_layer // 2)
    box_layers: tuple[float, ...] = ()  # the same probes on box patches only

    @property
    def middle_r2(self) -> float:
        return self.layers[self.middle]

    @property
    def box_middle_r2(self) -> float:
        return self.box_layers[self.middle]


def depth_probe(
    train_features: list[Tensor],
    train_patches: Tensor,
    train_depth: Tensor,
    test_features: list[Tensor],
    test_patches: Tensor,
    test_depth: Tensor,
    ridge: float = 1e-3,
    train_boxes: Tensor | None = None,
    test_boxes: Tensor | None = None,
) -> DepthProbe:
    """Probe every layer's features (b, N, d) and the raw patches (b, N, p) for depth (b, N).

    With ``train_boxes`` / ``test_boxes`` (b, N) bool (:func:`box_patches`), every layer is
    probed a second time on those patches only (trained and tested on box patches).
    """
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
    box_layers: tuple[float, ...] = ()
    if (train_boxes is None) != (test_boxes is None):
        raise ValueError("pass both train_boxes and test_boxes, or neither")
    if train_boxes is not None:
        keep_train, keep_test = train_boxes.reshape(-1), test_boxes.reshape(-1)
        if min(int(keep_train.sum()), int(keep_test.sum())) < 2:
            raise ValueError("the box probe needs ≥ 2 box patches in train and in test")
        box_layers = tuple(
            linear_r2(
                flat(a)[keep_train],
                train_depth.reshape(-1)[keep_train],
                flat(b)[keep_test],
                test_depth.reshape(-1)[keep_test],
                ridge,
            )  # fmt: skip
            for a, b in zip(train_features, test_features, strict=True)
        )
    return DepthProbe(layers, raw, (len(layers) - 1) // 2, box_layers)


def sample_variance(
    samples: Tensor, disoccluded: Tensor, latent_shape: tuple[int, int]
) -> tuple[float, float]:
    """Mean variance across samples (k, b, 3, H, W) per code: on disoccluded, on visible codes.

    The per-pixel variance across the k samples (averaged over colour) is averaged over each
    code's patch (``latent_shape`` codes per view); a code counts as disoccluded when at least
    half of its pixels are (``disoccluded`` (b, 1, H, W) bool), as visible otherwise.
    """
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (k ≥ 2, b, 3, H, W), got {tuple(samples.shape)}")
    pool = torch.nn.functional.adaptive_avg_pool2d
    variance = pool(samples.var(0).mean(1, keepdim=True), latent_shape).flatten()  # b·h·w codes
    hidden = pool(disoccluded.float(), latent_shape).flatten() >= 0.5
    if not bool(hidden.any()) or bool(hidden.all()):
        raise ValueError("need both disoccluded and visible codes to compare their variance")
    return float(variance[hidden].mean()), float(variance[~hidden].mean())


CONTROLS = {  # sanity predictions of the view claims: key suffix → what is scored
    "source": "the source view copied as the prediction",
    "other-scene": "another test scene's true target as the prediction",
}


def file_claims(
    card: Card,
    implicit: ViewScores,
    explicit: ViewScores,
    steps: int,
    probe: DepthProbe,
    variance: tuple[float, float],
    controls: dict[str, ViewScores],
) -> None:
    """Files chapter 12's five claims and the view claims' sanity rows on ``card`` (module doc).

    ``controls``: the scores of the :data:`CONTROLS` predictions, by key.
    """
    if set(controls) != set(CONTROLS):
        raise ValueError(f"controls must have the keys {sorted(CONTROLS)}, got {sorted(controls)}")
    if not probe.box_layers:
        raise ValueError("the probe needs its box-patch layers (depth_probe(..., train_boxes=...))")
    same = (
        f"warp with estimated depth + an L1 hole-filling CNN, trained {steps} steps the same way "
        "(a weaker-capacity stand-in for the paper's transformer on the warped source)"
    )
    why = (
        "the paper's explicit competitors (depth-based warping, then inpainting: SynSin, 3D "
        "photography, its own expl_img) on the same pairs"
    )
    paper_pair = PaperPair(
        None, None, "FID and PSIM, RealEstate10K and ACID, implicit vs explicit (Tables 1-2)",
        UNVERIFIED,
    )  # fmt: skip
    psim = "mean paired PSIM-style distance (LPIPS-style on the FID-style feature net)"
    views = {
        "large-motion": (
            f"on large camera motion (|t| > {LARGE_MOTION}) the geometry-free transformer's views "
            "are closer to the true views than the explicit warp-and-fill baseline's",
            f"{psim} of predicted vs true target views, large-motion test pairs",
            "psim_large",
        ),
        "disoccluded": (
            "where the source shows nothing, the transformer's inventions are closer to the "
            "true content than the explicit baseline's",
            f"{psim} of true targets with the prediction pasted on disoccluded pixels",
            "psim_disoccluded",
        ),
    }
    for key, (claim, metric, field) in views.items():
        card.add(
            key, claim, metric=metric, ours=getattr(implicit, field), baseline=same,
            baseline_value=getattr(explicit, field), why=why, better="lower", paper=paper_pair,
        )  # fmt: skip
        for suffix, what in CONTROLS.items():
            card.add(
                f"{key}-vs-{suffix}",
                f"{claim.split(' the explicit')[0]} {what} (a control of the measure)",
                metric=metric,
                ours=getattr(implicit, field),
                baseline=f"{what}, scored the same way",
                baseline_value=getattr(controls[suffix], field),
                why="shows whether the measure tells a right view from a wrong one (sanity check)",
                better="lower",
                kind="sanity",
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
        f"the transformer's blocks compute depth: on box patches, the probe on layer "
        f"{probe.middle} reads depth better than on the transformer's input",
        metric="R² of a ridge regression to patch log-depth, box patches of held-out source views",
        ours=probe.box_middle_r2,
        baseline="the same probe on layer 0 (code embeddings + positions, before any block), "
        "box patches",
        baseline_value=probe.box_layers[0],
        why="a flat-coloured box's code says nothing of its depth: what the probe reads there "
        "comes from context, which only attention gathers",
        better="higher",
        paper=PaperPair(None, None, "depth probe across impl_nodepth layers (Sec. 4)", UNVERIFIED),
    )
    card.add(
        "sample-variance",
        "samples differ more where the source is disoccluded than where it is visible",
        metric=f"mean variance across {SAMPLES_PER_PAIR} samples of a pair, per code "
        "(disoccluded: ≥ half its pixels)",
        ours=variance[0],
        baseline="the same samples' variance on visible codes",
        baseline_value=variance[1],
        why="the paper's claim of probabilistic synthesis: certainty where seen, diversity "
        "where not",
        better="higher",
        paper=PaperPair(None, None, "qualitative (samples in the paper's figures)", UNVERIFIED),
    )
