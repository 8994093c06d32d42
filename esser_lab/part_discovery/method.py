"""The part-discovery objective as plain functions, and the part-IoU evaluation.

Braun, Esser & Ommer, GCPR 2020, as the official code writes it (``SB_model48c/model.py``,
``Trainer.make_loss_ops``; the priors in ``deepfashion/code/nn.py``). We could not check the
paper's equation numbers; this chapter numbers the terms (P1)–(P8):

* (P1) reconstruction: ½ Σ (x₀ − x̂₀)² (stand-in) or 1e-3 · ½ · dim · VGG(x₀, x̂₀) (official)
* (P2) GMRF smoothness of the mask logits: ½ Σ |∇ℓ|²  (forward differences)
* (P3) Mumford–Shah: Σ min(α |∇ℓ|², λ)
* (P4) KL of each pixel's part distribution to uniform: mean Σ_k p_k log(K p_k)
* (P5) soft–hard cross-entropy: mean −Σ_k onehot(argmax p)_k log p_k
* (P6) compactness: Σ_k (Σ_k,yy² + Σ_k,xx²), the covariances of the parts' spatial spread
* (P7) RoDi's MI constraint on π(x₀) vs α(x₁) (``esser_lab.rodi.constraint_penalty``)
* (P8) the adaptive KL weight exp(lor) on q(π | x₀): lor ← clip(lor + l·(Î_indep − target))

Sums run over pixels and parts and are averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from esser_lab.nn import placement
from esser_lab.part_discovery.model import (
    Layout,
    PartDiscoveryConfig,
    PartDiscoveryOutput,
    hard_one_hot,
)


def reconstruction_loss(
    x: torch.Tensor, x_hat: torch.Tensor, perceptual: torch.nn.Module | None = None
) -> torch.Tensor:
    """(P1): the Gaussian stand-in ½ Σ (x − x̂)², or the official 1e-3 · ½ · dim · VGG(x, x̂)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} differ")
    if perceptual is None:
        return 0.5 * (x - x_hat).pow(2).flatten(1).sum(1).mean()
    return 1e-3 * 0.5 * x[0].numel() * perceptual(x, x_hat)


def _forward_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``tf.image.image_gradients``: forward differences, zero in the last row / column."""
    dy = F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 0, 1))
    dx = F.pad(x[:, :, :, 1:] - x[:, :, :, :-1], (0, 1))
    return dy, dx


def gmrf_prior(logits: torch.Tensor) -> torch.Tensor:
    """(P2) ½ Σ |∇ℓ|² of the mask logits' mean (``kl_improper_gmrf``), batch mean."""
    dy, dx = _forward_differences(logits)
    return 0.5 * (dy.pow(2) + dx.pow(2)).flatten(1).sum(1).mean()


def mumford_shah_prior(logits: torch.Tensor, alpha: float, lambda_: float) -> torch.Tensor:
    """(P3) Σ min(α |∇ℓ|², λ): smooth inside parts, a capped cost per edge pixel.

    # official code: a central stencil scaled by ¼ (``tf_grad``); we use ¼ of forward differences.
    """
    dy, dx = _forward_differences(logits)
    squared = 0.0625 * (dy.pow(2) + dx.pow(2))
    return torch.clamp(alpha * squared, max=lambda_).flatten(1).sum(1).mean()


def kl_to_uniform(probabilities: torch.Tensor) -> torch.Tensor:
    """(P4) KL(p ‖ uniform over K parts) per pixel, averaged (official ``categorical_kl``)."""
    k = probabilities.shape[1]
    return (probabilities * torch.log(k * probabilities + 1e-20)).sum(1).mean()


def hard_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(P5) −Σ_k onehot(argmax p)_k log p_k, pixel mean (``weakly_superv_loss_p``).

    The labels are the straight-through one-hot of p itself, so the gradient also reaches p
    through them (``softmax_cross_entropy_with_logits_v2`` back-propagates into its labels).
    """
    labels = hard_one_hot(logits.softmax(dim=1))
    return -(labels * logits.log_softmax(dim=1)).sum(1).mean()


def part_spread(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(b, K, 2)`` and covariance ``(b, K, 2, 2)`` of each part on a [-1, 1] grid (y, x).

    # official code: the spatial weights are softmax_space(softmax_parts(ℓ)), a softmax of
    # probabilities (so weights ∝ exp(p)); we follow it.
    """
    b, k, h, w = logits.shape
    weights = logits.softmax(dim=1).flatten(2).softmax(dim=2).view(b, k, h, w)
    ys = torch.linspace(-1, 1, h, device=logits.device, dtype=logits.dtype)
    xs = torch.linspace(-1, 1, w, device=logits.device, dtype=logits.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1)  # (h, w, 2)
    mean = torch.einsum("bkhw,hwc->bkc", weights, grid)
    second = torch.einsum("bkhw,hwc,hwd->bkcd", weights, grid, grid)
    return mean, second - mean[..., :, None] * mean[..., None, :]


def compactness_loss(logits: torch.Tensor) -> torch.Tensor:
    """(P6) Σ_k (Σ_yy² + Σ_xx²), batch mean (official ``variances``, on view 1's logits)."""
    _, covariance = part_spread(logits)
    return (covariance[..., 0, 0].pow(2) + covariance[..., 1, 1].pow(2)).sum(1).mean()


@dataclass
class PartDiscoveryLoss:
    """The model's loss for one batch (without the MI terms) and its parts, detached."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    gmrf: torch.Tensor
    mumford_shah: torch.Tensor
    mask_kl: torch.Tensor
    hard_ce: torch.Tensor
    compactness: torch.Tensor


def part_discovery_loss(
    x0: torch.Tensor,
    output: PartDiscoveryOutput,
    config: PartDiscoveryConfig,
    step: int,
    perceptual: torch.nn.Module | None = None,
) -> PartDiscoveryLoss:
    """(P1) + the mask priors (P2)–(P6) with the scheduled weights of ``config`` at ``step``.

    (P1) is weighted by ``config.reconstruction_weight``; the returned ``reconstruction`` is
    the unweighted term, comparable across weights.

    Which view each prior sees follows the code: (P2), (P3), (P5) on view 0's logits, (P4) on
    both views' part probabilities, (P6) on view 1's logits.
    # official code: the priors update the mask decoder only (per-module losses); here they also
    # reach the π-encoder through π, which keeps one optimiser and one backward pass.
    """
    c = config
    if c.likelihood == "vgg19" and perceptual is None:
        raise ValueError("config.likelihood='vgg19' needs a VGG19FeatureLoss as `perceptual`")
    l0: Layout = output.layout0
    rec = reconstruction_loss(x0, output.image, perceptual if c.likelihood == "vgg19" else None)
    gmrf = gmrf_prior(l0.logits_mean)
    ms = mumford_shah_prior(l0.logits_mean, c.mumford_shah_alpha(step), c.mumford_shah_lambda(step))
    kl = kl_to_uniform(l0.soft) + kl_to_uniform(output.layout1.soft)
    ce = hard_cross_entropy(l0.logits)
    compact = compactness_loss(output.layout1.logits)
    loss = (
        c.reconstruction_weight * rec
        + c.gmrf_weight(step) * gmrf
        + c.mumford_shah_weight(step) * ms
        + c.mask_kl_weight(step) * kl
        + c.hard_ce_weight(step) * ce
        + c.variance_weight(step) * compact
    )
    parts = (rec, gmrf, ms, kl, ce, compact)
    return PartDiscoveryLoss(loss, *(t.detach() for t in parts))


def lor_update(
    lor: float | torch.Tensor, mi_independent: float | torch.Tensor, config: PartDiscoveryConfig
) -> float | torch.Tensor:
    """(P8) ``lor ← clip(lor + lor_lr·(Î_indep − mi_target), lor_min, lor_max)``; weight e^lor.

    Python floats, or float64 tensors (a training step keeps them on the device): the clip is
    then the two ``torch.where`` that Python's ``max`` and ``min`` are, so the numbers agree.
    """
    value = lor + config.lor_lr * (mi_independent - config.mi_target)
    if isinstance(value, torch.Tensor):  # no host sync
        value = torch.where(value < config.lor_min, config.lor_min, value)
        return torch.where(value > config.lor_max, config.lor_max, value)
    return min(max(value, config.lor_min), config.lor_max)


# ------------------------------------------------------------------------------------ evaluation


def figure_labels(part_masks: torch.Tensor) -> torch.Tensor:
    """``(b, C, h, w)`` exclusive bool part masks → ``(b, h, w)`` labels, 0 = background."""
    if part_masks.dtype != torch.bool or part_masks.ndim != 4:
        raise ValueError(f"part_masks must be (b, C, h, w) bool, got {part_masks.dtype} "
                         f"{tuple(part_masks.shape)}")  # fmt: skip
    index = torch.arange(1, part_masks.shape[1] + 1, device=part_masks.device)
    return (part_masks.long() * index[None, :, None, None]).sum(1)


def overlaps(pred: torch.Tensor, true: torch.Tensor, num_parts: int, num_classes: int):
    """Per-image intersections ``(b, K, C)`` and areas ``(b, K)``, ``(b, C)`` of two labelings."""
    if pred.shape != true.shape or pred.ndim != 3:
        raise ValueError(f"need two (b, h, w) label maps, got {tuple(pred.shape)}, "
                         f"{tuple(true.shape)}")  # fmt: skip
    if pred.min() < 0 or pred.max() >= num_parts or true.min() < 0 or true.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_parts}) and [0, {num_classes})")
    b = pred.shape[0]
    code = (pred * num_classes + true).flatten(1)  # (b, h·w)
    offset = torch.arange(b, device=pred.device)[:, None] * num_parts * num_classes
    counts = torch.bincount((code + offset).flatten(), minlength=b * num_parts * num_classes)
    inter = counts.view(b, num_parts, num_classes).float()
    return inter, inter.sum(2), inter.sum(1)


@dataclass
class PartIoU:
    """IoU per true class after matching discovered parts to classes one-to-one."""

    iou: torch.Tensor  # (C,) global matching; (b, C) per-image matching
    assignment: torch.Tensor  # (C,) or (b, C): the discovered part matched to each class

    def mean(self, classes: slice = slice(1, None)) -> float:
        """Mean IoU over ``classes`` (default: all but class 0, the background)."""
        return float(self.iou[..., classes].mean())


def _match(iou: torch.Tensor) -> torch.Tensor:
    from scipy.optimize import linear_sum_assignment  # scipy comes with scikit-learn

    rows, cols = linear_sum_assignment(iou.T.cpu().numpy(), maximize=True)  # (C, K)
    assignment = torch.full((iou.shape[1],), -1, dtype=torch.long)
    assignment[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return assignment


def part_iou(
    pred: torch.Tensor,
    true: torch.Tensor,
    num_parts: int,
    num_classes: int,
    per_image: bool = False,
) -> PartIoU:
    """IoU of discovered parts ``pred`` and true parts ``true`` (``(b, h, w)`` labels each).

    ``per_image=False``: one Hungarian matching for the whole set, on IoUs pooled over every
    image — a part must mean the same body part in every figure and pose to score (the
    *consistent* segmentation the paper asks for). ``per_image=True``: a matching per image, an
    upper bound that forgives inconsistent labels. Classes left unmatched (K < C) score 0.
    """
    inter, area_pred, area_true = overlaps(pred, true, num_parts, num_classes)
    if not per_image:
        inter, area_pred, area_true = inter.sum(0), area_pred.sum(0), area_true.sum(0)
    union = area_pred[..., :, None] + area_true[..., None, :] - inter
    iou = inter / union.clamp_min(1)  # (…, K, C)
    if per_image:
        assignment = torch.stack([_match(m) for m in iou])  # a few hundred small problems
    else:
        assignment = _match(iou)
    matched = torch.gather(iou, -2, assignment.clamp_min(0)[..., None, :]).squeeze(-2)
    return PartIoU(torch.where(assignment >= 0, matched, 0.0), assignment)


def colour_kmeans(
    pixels: torch.Tensor, k: int, *, iterations: int = 20, generator: torch.Generator
) -> torch.Tensor:
    """Lloyd's k-means on ``(n, 3)`` colours; returns the centroids ``(k, 3)`` (k-means++ init)."""
    if pixels.ndim != 2 or pixels.shape[0] < k:
        raise ValueError(f"pixels must be (n ≥ {k}, d), got {tuple(pixels.shape)}")
    first = placement.randint(len(pixels), (1,), generator=generator, device=pixels.device)
    centroids = pixels[first]
    for _ in range(k - 1):  # k-means++: the next centre ∝ squared distance to the nearest
        d2 = torch.cdist(pixels, centroids).amin(1).pow(2)
        pick = placement.multinomial(d2 / d2.sum(), 1, generator=generator)
        centroids = torch.cat([centroids, pixels[pick]])
    for _ in range(iterations):
        labels = torch.cdist(pixels, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, pixels)
        counts = torch.bincount(labels, minlength=k).clamp_min(1)[:, None]
        centroids = torch.where(counts > 0, sums / counts, centroids)
    return centroids


def colour_segments(images: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Each pixel of ``(b, 3, h, w)`` images labelled by its nearest centroid: ``(b, h, w)``."""
    b, _, h, w = images.shape
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
    return torch.cdist(pixels, centroids).argmin(1).view(b, h, w)


@torch.no_grad()
def transfer(model, x_shape: torch.Tensor, x_appearance: torch.Tensor) -> torch.Tensor:
    """Parts of ``x_shape`` painted with the per-part appearance of ``x_appearance`` (eval mode)."""
    features = model.encode_parts(x_appearance, model.layout(x_appearance).hard)
    return model.render(features, model.layout(x_shape).hard)
