"""Chapter 8's competitor: chapter 2's part-based model (Lorenz et al., CVPR 2019), its
landmarks turned into part segments the way Braun et al.'s official evaluation does it.

Braun, Esser & Ommer (GCPR 2020) compare their discovered parts with segments derived from the
landmarks of Lorenz'19, Zhang'18 and Jakab'18 (official code: ``evaluation/lorenz19``,
``segments_from_keypoints.npz``, made with ``supermariopy.crf.SegmentationFromKeypoints``). That
evaluation puts an isotropic Gaussian of variance 0.1 (in coordinates [-1, 1]) around each
landmark, scaled to peak 1; the background's probability is one minus the largest of them; the
negative log of these probabilities is the unary of a fully connected CRF (a smoothness kernel of
3 px, weight 3, and a colour kernel of 80 px and 13 grey levels, weight 10, both normalised
symmetrically; 5 mean-field steps), and each pixel takes its most probable label.

Here the CRF is computed exactly, every pair of pixels, instead of through the permutohedral
lattice of ``pydensecrf``; the kernel widths, given in pixels of the official 128 px evaluation,
are scaled to the image size. The mean field leaves out each pixel's message to itself
(Krähenbühl & Koltun, NeurIPS 2011). Two exact ways to pass the messages: the n × n kernels
(16×16 figures have 256 pixels), or, for an image of few distinct colours (the figures have 5),
the factorisation of the colour kernel into a spatial Gaussian — separable along rows and
columns — times a kernel between the m colours, which costs m · (h + w) per pixel instead of
h · w (at 64 px with 5 colours about 6 times fewer operations and no 4096 × 4096 kernel).

The competitor is trained on view 0 of chapter 8's training pairs (its own two views come from
its random warps and colour changes, as in chapter 2), with chapter 8's batch size and K − 1
landmarks, so that landmarks plus background give as many segments as chapter 8 has parts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from esser_lab.data.modules import TensorBatches
from esser_lab.part_based.model import PartBasedConfig, coordinate_grid
from esser_lab.part_discovery.config import PartDiscoveryConfig
from esser_lab.part_discovery.method import overlaps
from esser_lab.part_discovery.training import PartPairsDataModule

__all__ = [
    "ViewZeroDataModule",
    "competitor_config",
    "dense_crf",
    "landmark_probabilities",
    "remapped_miou",
    "segments_from_landmarks",
]

# ``SegmentationFromKeypoints`` and its two pairwise kernels (``crf.py``), widths in pixels of
# the official 128 px evaluation
LANDMARK_VARIANCE = 0.1
CRF_STEPS = 5
REFERENCE_SIZE = 128
SMOOTHNESS_WIDTH, SMOOTHNESS_WEIGHT = 3.0, 3.0
COLOUR_WIDTH, COLOUR_GREY_LEVELS, COLOUR_WEIGHT = 80.0, 13.0, 10.0


def competitor_config(config: PartDiscoveryConfig, num_steps: int) -> PartBasedConfig:
    """Chapter 2's configuration at chapter 8's image size, batch and K − 1 landmarks.

    16 px (tiny): ``PartBasedConfig.tiny()`` with its part maps at 8 px (the stem strides by 2,
    as the paper's 256 px images give 64 px maps). On one CPU thread a step at chapter 2's own
    16 px maps cost about twice one of chapter 8's model (at load ~1); at 8 px about as much
    (narrower layers barely helped: most of the cost is per-layer overhead). 64 px (small):
    ``PartBasedConfig.small()``. 128 px (full): ``paper()`` at 128 px, part maps at a quarter of
    the image as in the paper.
    """
    if config.image_size == 16:
        base = replace(PartBasedConfig.tiny(), part_map_size=8)
    elif config.image_size == 64:
        base = PartBasedConfig.small()
    elif config.image_size == 128:
        paper = PartBasedConfig.paper()
        base = replace(
            paper, image_size=128, part_map_size=32, shape_depth=4,
            decoder_channels=paper.decoder_channels[:-1],
        )  # fmt: skip
    else:
        raise ValueError(f"no part-based preset for {config.image_size} px (16, 64 or 128)")
    return replace(
        base, n_parts=config.num_parts - 1, batch_size=config.batch_size, total_steps=num_steps
    )


class ViewZeroDataModule(PartPairsDataModule):
    """Chapter 8's training pairs (same size, count and seed give the same figures), view 0 only,
    as ``{"image": (b, 3, h, w)}`` for ``LitPartBased``."""

    def _generate(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        return {"image": super()._generate(n, generator)["view0"]}

    @classmethod
    def of(cls, pairs: PartPairsDataModule) -> ViewZeroDataModule:
        """The view-0 module of ``pairs``, sharing its fixed sets where they are already made
        (tiny: generating the figures again would cost seconds of the chapter's minute)."""
        views = cls(
            pairs.size, pairs.batch_size, pairs.num_train, pairs.num_val, pairs.seed,
            pairs.on_the_fly,
        )  # fmt: skip
        for name in ("train_set", "val_set"):
            made = getattr(pairs, name)
            if isinstance(made, TensorBatches):
                setattr(views, name, TensorBatches({"image": made.fields["view0"]}))
        if (views.train_set is None) != (views.val_set is None):  # setup makes both or none
            views.train_set = views.val_set = None
        return views


def landmark_probabilities(
    mu: torch.Tensor, size: int, variance: float = LANDMARK_VARIANCE
) -> torch.Tensor:
    """``(b, K, 2)`` landmarks (x, y) in [-1, 1] → ``(b, K + 1, size, size)``: background first.

    Each landmark's Gaussian is scaled so that its largest value on the grid is 1; the
    background is ``1 − max_k``. Without the CRF, a pixel joins its nearest landmark when that
    landmark lies within √(2 · variance · ln 2) (0.37 for 0.1), else the background.
    """
    if mu.ndim != 3 or mu.shape[-1] != 2:
        raise ValueError(f"mu must be (b, K, 2), got {tuple(mu.shape)}")
    if not variance > 0:
        raise ValueError(f"variance must be > 0, got {variance}")
    grid = coordinate_grid(size, mu.device).to(mu.dtype)  # (h, w, 2)
    d2 = (grid[None, None] - mu[:, :, None, None, :]).pow(2).sum(-1)  # (b, K, h, w)
    heat = torch.exp(-d2 / (2 * variance))
    heat = heat / heat.amax((2, 3), keepdim=True)
    background = 1 - heat.amax(1, keepdim=True)
    return torch.cat([background, heat], 1)


def _pixel_positions(h: int, w: int, device: torch.device) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([xs, ys], -1).reshape(-1, 2).float()  # (n, 2) in pixels


def _normalised_kernel(features: torch.Tensor) -> torch.Tensor:
    """``(b, n, d)`` features → ``D^-½ K D^-½`` with ``K = exp(−½‖f_i − f_j‖²)``, ``K_ii = 0``."""
    kernel = torch.exp(-0.5 * torch.cdist(features, features).pow(2))
    kernel = kernel * (1 - torch.eye(kernel.shape[-1], device=kernel.device))
    scale = kernel.sum(-1).clamp_min(1e-20).rsqrt()  # (b, n)
    return scale[..., :, None] * kernel * scale[..., None, :]


def dense_crf(
    image: torch.Tensor,
    probabilities: torch.Tensor,
    *,
    steps: int = CRF_STEPS,
    pixel_scale: float = 1.0,
    method: str = "auto",
) -> torch.Tensor:
    """Mean-field marginals ``(b, L, h, w)`` of a fully connected CRF (Potts, two kernels).

    ``image`` (b, 3, h, w) in [-1, 1], ``probabilities`` (b, L, h, w) the unary's probabilities
    (unary = −log(p + 1e-6)). Kernels as ``SegmentationFromKeypoints``: positions over
    ``3 · pixel_scale`` px with weight 3; positions over ``80 · pixel_scale`` px and colours over
    13 grey levels (of 0–255) with weight 10. Each step: ``Q ← softmax(−U + Σ_m w_m K_m Q)``.
    ``method``: ``"dense"`` builds the n × n kernels, ``"factorised"`` passes the messages through
    the image's distinct colours and separable spatial Gaussians (exact too, cheaper for images
    of few colours); ``"auto"`` takes the cheaper one.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (b, 3, h, w), got {tuple(image.shape)}")
    b, labels, h, w = probabilities.shape
    if image.shape[0] != b or image.shape[2:] != (h, w):
        raise ValueError(
            f"image {tuple(image.shape)} and probabilities {tuple(probabilities.shape)} disagree"
        )
    if steps < 0 or not pixel_scale > 0:
        raise ValueError(f"need steps ≥ 0 and pixel_scale > 0, got {steps}, {pixel_scale}")
    n = h * w
    unary = -torch.log(probabilities.reshape(b, labels, n).float() + 1e-6)  # (b, L, n)
    q = torch.softmax(-unary, 1)
    if steps == 0:
        return q.view(b, labels, h, w)
    grey = (image.float() + 1) * 127.5  # the official code reads images in [0, 255]
    colours = grey.flatten(2).transpose(1, 2) / COLOUR_GREY_LEVELS  # (b, n, 3)
    if method not in ("auto", "dense", "factorised"):
        raise ValueError(f"method must be 'auto', 'dense' or 'factorised', got {method!r}")
    if method == "dense" or (method == "auto" and 2 * (h + w) * _most_colours(colours) >= n):
        position = _pixel_positions(h, w, image.device)
        smooth = _normalised_kernel((position / (SMOOTHNESS_WIDTH * pixel_scale))[None])[0]
        features = (position / (COLOUR_WIDTH * pixel_scale)).expand(b, n, 2)
        bilateral = _normalised_kernel(torch.cat([features, colours], -1))  # (b, n, n)
        for _ in range(steps):
            message = SMOOTHNESS_WEIGHT * q @ smooth + COLOUR_WEIGHT * torch.bmm(q, bilateral)
            q = torch.softmax(-unary + message, 1)
        return q.view(b, labels, h, w)
    smooth = _SeparableKernel(
        torch.zeros(n, 3, device=image.device), h, w, SMOOTHNESS_WIDTH * pixel_scale
    )
    out = []
    for qi, ui, ci in zip(q, unary, colours, strict=True):  # one image at a time
        bilateral = _SeparableKernel(ci, h, w, COLOUR_WIDTH * pixel_scale)
        for _ in range(steps):
            message = SMOOTHNESS_WEIGHT * smooth(qi) + COLOUR_WEIGHT * bilateral(qi)
            qi = torch.softmax(-ui + message, 0)
        out.append(qi)
    return torch.stack(out).view(b, labels, h, w)


def _most_colours(colours: torch.Tensor) -> int:
    """The largest number of distinct colours in one image of ``(b, n, 3)``."""
    return max(int(torch.unique(c, dim=0).shape[0]) for c in colours)


class _SeparableKernel:
    """``q ↦ D^-½ K D^-½ q`` for ``K_ij = g(p_i − p_j) · c(col_i − col_j)``, ``K_ii = 0``, without
    the n × n kernel: g is a Gaussian of width ``width`` px over the h × w grid (separable into
    rows and columns), c a Gaussian over the image's m distinct colours (``colours`` (n, 3),
    already divided by their width). Equal to ``_normalised_kernel`` of ``[p / width, colours]``.
    """

    def __init__(self, colours: torch.Tensor, h: int, w: int, width: float) -> None:
        self.h, self.w = h, w
        palette, index = torch.unique(colours, dim=0, return_inverse=True)  # (m, 3), (n,)
        self.members = index[None] == torch.arange(len(palette), device=index.device)[:, None]
        self.members = self.members.float().view(-1, 1, h, w)  # (m, 1, h, w)
        between = torch.exp(-0.5 * torch.cdist(palette, palette).pow(2))  # (m, m)
        self.weights = between[index]  # (n, m): c(col_i − colour m)
        self.rows, self.cols = (_grid_gaussian(s, width, colours.device) for s in (h, w))
        degree = self._unnormalised(torch.ones(1, h * w, device=colours.device))
        self.scale = degree.clamp_min(1e-20).rsqrt()  # (1, n)

    def _unnormalised(self, v: torch.Tensor) -> torch.Tensor:
        """``K v`` for ``v`` (L, n), the diagonal left out."""
        per_colour = self.members * v.view(1, -1, self.h, self.w)  # (m, L, h, w)
        blurred = (self.rows @ per_colour @ self.cols).flatten(2)  # (m, L, n)
        return torch.einsum("nm,mln->ln", self.weights, blurred) - v

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return self.scale * self._unnormalised(self.scale * q)


def _grid_gaussian(length: int, width: float, device: torch.device) -> torch.Tensor:
    steps = torch.arange(length, device=device, dtype=torch.float32)
    return torch.exp(-0.5 * ((steps[:, None] - steps[None]) / width).pow(2))


@torch.no_grad()
def segments_from_landmarks(
    image: torch.Tensor,
    mu: torch.Tensor,
    *,
    variance: float = LANDMARK_VARIANCE,
    crf_steps: int = CRF_STEPS,
) -> torch.Tensor:
    """``(b, h, w)`` labels from landmarks: 0 the background, ``k + 1`` landmark k.

    ``crf_steps=0`` gives the unary's own argmax (no CRF). Images go through the CRF a chunk
    at a time, so memory stays ~100 MB whatever the set's size.
    """
    size = image.shape[-1]
    probabilities = landmark_probabilities(mu, size, variance)
    chunk = max(1, 2**23 // (size**4))
    labels = [
        dense_crf(x, p, steps=crf_steps, pixel_scale=size / REFERENCE_SIZE).argmax(1)
        for x, p in zip(image.split(chunk), probabilities.split(chunk), strict=True)
    ]
    return torch.cat(labels)


def remapped_miou(
    pred: torch.Tensor, true: torch.Tensor, num_parts: int, num_classes: int
) -> float:
    """The official evaluation's score: each segment relabelled as its best true class, several
    segments to one class allowed (``denseposelib.compute_best_iou_remapping``), then IoU per
    image and class, averaged over the images that show the class, and over the classes but 0.

    "Best" is the highest mean per-image IoU over the images that show the class. Kinder than
    the chapter's one-to-one Hungarian matching to segmentations with more pieces than classes.
    """
    inter, area_pred, area_true = overlaps(pred, true, num_parts, num_classes)  # (b, K, C)
    union = area_pred[:, :, None] + area_true[:, None, :] - inter
    iou = inter / union.clamp_min(1)
    present = (area_true > 0).float()  # (b, C)
    best = ((iou * present[:, None]).sum(0) / present.sum(0).clamp_min(1)).argmax(1)  # (K,)
    remapped = best[pred]  # (b, h, w) in [0, C)
    inter, area_pred, area_true = overlaps(remapped, true, num_classes, num_classes)
    diagonal = torch.arange(num_classes)
    hit = inter[:, diagonal, diagonal]  # (b, C)
    per_image = hit / (area_pred + area_true - hit).clamp_min(1)
    per_class = (per_image * present).sum(0) / present.sum(0).clamp_min(1)
    return float(per_class[1:].mean())
