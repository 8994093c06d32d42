"""Chapter 16's claims (Gen-1, Esser et al., ICCV 2023; arXiv 2302.03011), measured on clips whose
structure, content and motion are known exactly (:mod:`esser_lab.data.video`).

One network is trained (joint image/video, Eq. 6); every comparison is the paper's own and runs
the *same* weights, so "trained the same way" holds by construction:

* **structure fidelity** (Sec. 3.3, Fig. 7's t_s grid): samples for the same clips at growing
  t_s. Structure adherence = IoU between the conditioning clip's exact object mask and the
  object pixels of the generated frames (saturated pixels, whatever their colour: structure is
  measured apart from content; white objects, which have no chroma, are left out).
  The claim: adherence falls as t_s grows; decided by the least-squares slope of IoU against
  t_s (< 0) and, as the baseline, t_s = 0 against the largest t_s;
* **content** (Sec. 3.3, Figs. 1 and 8): the content vector swapped (each object another colour)
  with the structure and the noise fixed. Content changes: the colour accuracy of the generated
  objects to the *new* colour, against the same samples under the original content (how often
  the new colour appears without the swap); structure kept: the IoU under the swap against the
  IoU under the original content, within a tolerance of 0.05;
* **temporal guidance** (Sec. 3.4, Eq. 8, Fig. 9): ω_t swept with everything else fixed. Frame
  consistency error = the mean squared difference between consecutive generated frames after the
  exact motion is compensated (the later frame warped onto the earlier one with the data's flow,
  on pixels visible in both), the counterpart of the paper's CLIP frame consistency. The claims:
  the video model (ω_t = 1) is more consistent than the per-frame model (ω_t = 0), the largest
  ω_t more than ω_t = 1, and the content accuracy at the largest ω_t within 0.1 of ω_t = 0's.

The paper's user study (about 75 % preference for Gen-1) reaches us through a secondary summary:
it is marked unverified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.data.sprites import COLOURS
from esser_lab.data.video import Clips, flow_between, warp

__all__ = [
    "CHROMA",
    "STRUCTURE_TOLERANCE",
    "Samples",
    "colour_accuracy",
    "content_code",
    "file_content_claims",
    "file_structure_claims",
    "file_temporal_claims",
    "frame_consistency_error",
    "object_pixels",
    "slope",
    "structure_iou",
    "swap_colours",
]

#: a generated pixel counts as an object's when its chroma (max − min of R, G, B in [−1, 1])
#: exceeds this: every colour but white has chroma ≥ 1 (its half too); the background ≤ 0.2
CHROMA = 0.5
#: the index of white in ``sprites.COLOURS`` (no chroma: left out of the structure IoU)
WHITE = list(COLOURS).index("white")
#: the IoU a content swap may lose and still "keep the structure"
STRUCTURE_TOLERANCE = 0.05
#: the content accuracy the largest ω_t may lose against ω_t = 0 ("little cost")
CONTENT_COST = 0.1

_PALETTE = torch.tensor(list(COLOURS.values()))  # (8, 3)


@dataclass(frozen=True)
class Samples:
    """Generated clips ``video`` (b, f, 3, H, W) in [−1, 1] for the ``clips`` whose structure
    conditioned them, with the object ``colour`` (b, K) the content asked for."""

    video: Tensor
    clips: Clips
    colour: Tensor


def content_code(colour: Tensor, texture: Tensor, object_depth: Tensor) -> Tensor:
    """The clip's content code (b, K·(colours + textures)): each object's one-hot colour and
    texture, the objects ordered **nearest first**, so that the code's k-th slot names the k-th
    nearest blob of the depth map (the data's own code is in drawing order, which the structure
    cannot tell apart)."""
    order = object_depth.argsort(dim=1)
    colour, texture = colour.gather(1, order), texture.gather(1, order)
    from esser_lab.data.sprites import TEXTURES

    eye_c, eye_t = torch.eye(len(COLOURS)), torch.eye(len(TEXTURES))
    return torch.cat([eye_c[colour], eye_t[texture]], dim=-1).flatten(1).to(object_depth.device)


def swap_colours(colour: Tensor, generator: torch.Generator) -> Tensor:
    """Each object's colour replaced by another one, never white (which has no chroma for the
    structure IoU): uniform over the other non-white colours."""
    choices = torch.tensor([c for c in range(len(COLOURS)) if c != WHITE])
    draw = torch.rand(*colour.shape, len(choices), generator=generator)
    draw = draw.masked_fill(choices.view(*([1] * colour.dim()), -1) == colour[..., None].cpu(), -1)
    return choices[draw.argmax(-1)].to(colour.device)


def object_pixels(video: Tensor) -> Tensor:
    """(b, f, H, W) bool: the pixels with chroma (max − min over R, G, B) above
    :data:`CHROMA`: the objects' saturated colours (and their halves) against the near-grey
    background, whatever colour the object has (structure is measured apart from content)."""
    chroma = video.amax(dim=2) - video.amin(dim=2)
    return (chroma > CHROMA).cpu()


def structure_iou(samples: Samples) -> float:
    """Mean IoU (over clips and frames) of the conditioning clip's object mask and the generated
    object pixels (:func:`object_pixels`); a frame with neither counts as 1. Clips whose object
    is, or is asked to be, white (no chroma against the grey background) are left out."""
    colours = torch.cat([samples.colour.cpu(), samples.clips.colour.cpu()], dim=1)
    coloured = (colours != WHITE).all(dim=1)
    if not coloured.any():
        raise ValueError("every clip's object is white: the structure IoU needs a coloured one")
    truth = samples.clips.mask.any(dim=2).cpu()[coloured]
    found = object_pixels(samples.video)[coloured]
    inter = (truth & found).flatten(2).sum(-1).float()
    union = (truth | found).flatten(2).sum(-1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return float(iou.mean())


def colour_accuracy(samples: Samples, target: Tensor | None = None) -> float:
    """The fraction of each object's visible pixels (the exact mask) whose nearest palette entry
    (the 8 colours and their halves) is the ``target`` colour (b, K) (default: the colour asked
    for); averaged over objects and clips."""
    target = samples.colour if target is None else target
    palette = torch.cat([_PALETTE, 0.5 * _PALETTE]).to(samples.video)  # (16, 3)
    pixels = samples.video.permute(0, 1, 3, 4, 2)  # (b, f, H, W, 3)
    nearest = torch.cdist(pixels.reshape(-1, 3), palette).argmin(-1) % len(COLOURS)
    nearest = nearest.view(pixels.shape[:-1]).cpu()
    scores = []
    for k in range(target.shape[1]):
        mask = samples.clips.mask[:, :, k].cpu()
        hit = (nearest == target[:, k].cpu().view(-1, 1, 1, 1)) & mask
        visible = mask.flatten(1).sum(-1)
        keep = visible > 0
        scores.append((hit.flatten(1).sum(-1)[keep] / visible[keep]).float())
    return float(torch.cat(scores).mean())


def frame_consistency_error(video: Tensor, clips: Clips) -> float:
    """Motion-compensated flicker: mean over consecutive frames (k, k + 1) of the squared
    difference between frame k and frame k + 1 warped back by the exact flow, on the pixels
    visible in both (per pixel and channel). The real clips score ≈ 0 (bilinear warping only)."""
    errors, weights = [], []
    for k in range(video.shape[1] - 1):
        flow, valid = flow_between(clips, k, k + 1)
        back = warp(video[:, k + 1], flow.to(video))
        diff = (back - video[:, k]).pow(2).mean(1, keepdim=True) * valid.to(video)
        errors.append(diff.sum())
        weights.append(valid.sum())
    return float(torch.stack(errors).sum() / torch.stack(weights).sum().clamp(min=1))


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` against ``x``."""
    xs, ys = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    xc = xs - xs.mean()
    return float((xc * (ys - ys.mean())).sum() / xc.pow(2).sum())


# ---- the card -----------------------------------------------------------------------------------

USER_STUDY = PaperPair(
    0.75, None, "user preference for Gen-1 over the baselines", "unverified", better="higher"
)


def file_structure_claims(card: Card, iou_by_t_s: Mapping[int, float]) -> None:
    """Structure adherence falls with t_s: the slope (< 0, against a flat 0) and t_s = 0
    against the largest t_s."""
    levels = sorted(iou_by_t_s)
    ious = [iou_by_t_s[t] for t in levels]
    why = "the paper's own control: the same model and clips with less structure detail"
    card.add(
        "structure-slope",
        "structure adherence falls as t_s grows (Sec. 3.3, Fig. 7)",
        metric=f"slope of structure IoU over t_s = {levels[0]}..{levels[-1]} (per step)",
        ours=slope(levels, ious),
        baseline="0 (no dependence on t_s)",
        baseline_value=0.0,
        why=why,
        better="lower",
    )
    card.add(
        "structure-ends",
        f"t_s = {levels[0]} keeps more structure than t_s = {levels[-1]}",
        metric="structure IoU (conditioning mask vs generated object pixels)",
        ours=iou_by_t_s[levels[0]],
        baseline=f"t_s = {levels[-1]}, the same model",
        baseline_value=iou_by_t_s[levels[-1]],
        why=why,
        better="higher",
    )


def file_content_claims(
    card: Card, original: Samples, swapped: Samples, new_colour: Tensor
) -> None:
    """The swapped content shows (accuracy to the new colour, against the original content's
    samples) and the structure stays (IoU under the swap within the tolerance of the
    original's)."""
    card.add(
        "content-swap",
        "swapping the content vector changes the content (Sec. 3.3, Figs. 1, 8)",
        metric="colour accuracy of the object pixels to the new colour",
        ours=colour_accuracy(swapped, new_colour),
        baseline="the same clips and noise under the original content",
        baseline_value=colour_accuracy(original, new_colour),
        why="the paper edits a video by changing c alone; the original content is the unedited run",
        better="higher",
    )
    card.add(
        "content-above-chance",
        "the content is followed at all (sanity: the original colour against chance)",
        metric="colour accuracy of the object pixels to the clip's own colour",
        ours=colour_accuracy(original),
        baseline=f"chance, 1/{len(COLOURS)}",
        baseline_value=1 / len(COLOURS),
        why="a model that ignores c scores chance on both sides of the swap",
        better="higher",
        kind="sanity",
    )
    card.add(
        "content-keeps-structure",
        "… and keeps the structure",
        metric=f"structure IoU (the original's minus {STRUCTURE_TOLERANCE} as the bar)",
        ours=structure_iou(swapped),
        baseline=f"the original content's IoU − {STRUCTURE_TOLERANCE}",
        baseline_value=structure_iou(original) - STRUCTURE_TOLERANCE,
        why="structure and content are separate inputs: changing c should not move the shapes",
        better="higher",
    )


def file_temporal_claims(
    card: Card, error_by_scale: Mapping[float, float], accuracy_by_scale: Mapping[float, float]
) -> None:
    """Frame consistency rises with ω_t: the video model (ω_t = 1) against the per-frame model
    (ω_t = 0), the largest ω_t against ω_t = 1; content accuracy at the largest ω_t against
    ω_t = 0's minus :data:`CONTENT_COST`."""
    top = max(error_by_scale)
    trend = PaperPair(
        None, None, "CLIP frame consistency rises with ω_t (Fig. 9)", "Fig. 9", better="higher"
    )
    card.add(
        "temporal-video-vs-frame",
        "the video model is more temporally consistent than the per-frame model (Sec. 3.4)",
        metric="motion-compensated frame error (MSE, ↓)",
        ours=error_by_scale[1.0],
        baseline="ω_t = 0: the same weights, temporal layers off (μ_π)",
        baseline_value=error_by_scale[0.0],
        why="the paper's Eq. 8 baseline: its image model applied frame by frame",
        better="lower",
        paper=trend,
    )
    card.add(
        "temporal-guidance",
        f"temporal guidance ω_t = {top:g} adds consistency over ω_t = 1 (Eq. 8)",
        metric="motion-compensated frame error (MSE, ↓)",
        ours=error_by_scale[top],
        baseline="ω_t = 1 (the video model unguided)",
        baseline_value=error_by_scale[1.0],
        why="Eq. 8 extrapolates beyond the video model; ω_t = 1 is the model itself",
        better="lower",
        paper=USER_STUDY,
    )
    card.add(
        "temporal-content-cost",
        f"… at little cost in content (ω_t = {top:g} vs 0)",
        metric=f"colour accuracy (ω_t = 0's minus {CONTENT_COST} as the bar)",
        ours=accuracy_by_scale[top],
        baseline=f"ω_t = 0's accuracy − {CONTENT_COST}",
        baseline_value=accuracy_by_scale[0.0] - CONTENT_COST,
        why="the paper trades a little prompt consistency for frame consistency (Fig. 9)",
        better="higher",
    )
