"""Chapter 16's claims (Gen-1, Esser et al., ICCV 2023; arXiv 2302.03011), measured on clips whose
structure, content and motion are known exactly (:mod:`esser_lab.data.video`).

One network is trained (joint image/video, Eq. 6); every comparison is the paper's own and runs
the *same* weights on the *same* held-out clips and noise, so each is paired: the claims are
decided on the 5 % lower bound of a bootstrap over clips of the per-clip gain
(:func:`add_paired`), not on the difference of two means, which noise alone can make positive.
A claim that rests on a sanity row is gated on it (it cannot hold when the row fails).

* **structure fidelity** (Sec. 3.3; the paper's t_s grid): samples for the same clips at growing
  t_s. Structure adherence = IoU between an object mask and the object pixels of the generated
  frames (saturated pixels, whatever their colour: structure is measured apart from content;
  white objects, which have no chroma, are left out). Sanity: the samples match their own
  clip's masks better than another clip's (the structure is followed at all). Claims: the IoU
  falls with t_s faster than the same samples' IoU against another clip's masks (per-clip
  slopes), and t_s = 0 keeps more than the largest t_s;
* **content** (Sec. 3.3): the content vector swapped (each object another colour) with the
  structure and the noise fixed. Colour accuracy reads the *generated* object pixels (the
  sample's saturated pixels), and chance is measured, not assumed: the accuracy of a
  content-free run (null content) to the same colours. Sanity: the original colour above
  chance. Claims: the accuracy to the *new* colour above the original content's (gated on the
  sanity row); the IoU under the swap within 0.05 of the original's (gated on the swap);
* **temporal guidance** (Sec. 3.4): ω_t swept with everything else fixed. Frame consistency
  error = the mean squared difference between consecutive generated frames after the exact
  motion is compensated (the later frame warped onto the earlier one with the data's flow, on
  pixels visible in both) over the clip's variance (a low-contrast output cannot win), our
  counterpart of the paper's CLIP frame consistency. Claims: the video model (ω_t = 1) more
  consistent than the per-frame model (ω_t = 0), the largest ω_t more than ω_t = 1, and the
  content accuracy at the largest ω_t within 0.1 of ω_t = 0's (gated on the content sanity row).

The paper's user study compares Gen-1 with *other methods*, not ω_t settings: the chapter
quotes it in its prose only (through a secondary summary, unverified).
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
    "PAIRED",
    "STRUCTURE_TOLERANCE",
    "Samples",
    "add_paired",
    "clip_slopes",
    "colour_accuracy",
    "content_code",
    "file_content_claims",
    "file_structure_claims",
    "file_temporal_claims",
    "frame_consistency_error",
    "object_pixels",
    "paired_bootstrap",
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


def structure_iou(
    samples: Samples, mask: Tensor | None = None, *, per_clip: bool = False
) -> float | Tensor:
    """Mean IoU (over frames) of an object mask and the generated object pixels
    (:func:`object_pixels`); a frame with neither counts as 1. ``mask`` (b, f, K, H, W):
    the conditioning clip's own masks by default; another clip's masks give the IoU that a
    model ignoring the structure would score (the mismatched baseline). Clips whose object is,
    or is asked to be, white (no chroma against the grey background) are NaN. ``per_clip``:
    the (b,) values, else their mean over the clips that count."""
    colours = torch.cat([samples.colour.cpu(), samples.clips.colour.cpu()], dim=1)
    coloured = (colours != WHITE).all(dim=1)
    if not coloured.any():
        raise ValueError("every clip's object is white: the structure IoU needs a coloured one")
    mask = samples.clips.mask if mask is None else mask
    if mask.shape != samples.clips.mask.shape:
        raise ValueError(
            f"mask must be (b, f, K, H, W) = {tuple(samples.clips.mask.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    truth = mask.any(dim=2).cpu()
    found = object_pixels(samples.video)
    inter = (truth & found).flatten(2).sum(-1).float()
    union = (truth | found).flatten(2).sum(-1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean(1)
    iou = iou.masked_fill(~coloured, float("nan"))
    return iou if per_clip else float(iou.nanmean())


def colour_accuracy(
    samples: Samples, target: Tensor | None = None, *, per_clip: bool = False
) -> float | Tensor:
    """The share of the *generated* object pixels (:func:`object_pixels`: the sample's
    saturated pixels, in the whole frame when a clip has one object, inside object k's mask
    when it has several) whose nearest palette entry (the 8 colours and their halves) is the
    ``target`` colour (b, K) (default: the colour asked for), over the clip's frames, averaged
    over objects. A clip that generates no saturated pixel scores 0 (nothing of the colour was
    drawn); a white target (no chroma) is NaN. ``per_clip``: (b,) values, else their mean.

    Reading the colour inside the *conditioning* mask would score mostly background wherever
    the generated object sits elsewhere; its chance level is not 1/8 either (grey is nearest to
    one palette entry): the chapter measures chance on a content-free model's samples."""
    target = samples.colour if target is None else target
    palette = torch.cat([_PALETTE, 0.5 * _PALETTE]).to(samples.video)  # (16, 3)
    pixels = samples.video.permute(0, 1, 3, 4, 2)  # (b, f, H, W, 3)
    nearest = torch.cdist(pixels.reshape(-1, 3), palette).argmin(-1) % len(COLOURS)
    nearest = nearest.view(pixels.shape[:-1]).cpu()
    saturated = object_pixels(samples.video)
    objects = target.shape[1]
    scores = []
    for k in range(objects):
        where = saturated & samples.clips.mask[:, :, k].cpu() if objects > 1 else saturated
        wanted = target[:, k].cpu()
        hit = (nearest == wanted.view(-1, 1, 1, 1)) & where
        count = where.flatten(1).sum(-1)
        score = hit.flatten(1).sum(-1).float() / count.clamp(min=1)
        scores.append(score.masked_fill(wanted == WHITE, float("nan")))
    per = torch.stack(scores, 1).nanmean(1)
    return per if per_clip else float(per.nanmean())


def frame_consistency_error(
    video: Tensor, clips: Clips, *, per_clip: bool = False
) -> float | Tensor:
    """Motion-compensated flicker, relative to the clip's contrast: per clip, the mean over
    consecutive frames (k, k + 1) of the squared difference between frame k and frame k + 1
    warped back by the exact flow, on the pixels visible in both, divided by the variance of
    the generated clip (over frames, pixels and channels), so that shrinking the contrast
    cannot lower it. The real clips score ≈ 0 (bilinear warping only); a still video (the
    first frame repeated) scores high on moving clips. ``per_clip``: (b,), else their mean."""
    errors = torch.zeros(video.shape[0])
    weights = torch.zeros(video.shape[0])
    for k in range(video.shape[1] - 1):
        flow, valid = flow_between(clips, k, k + 1)
        back = warp(video[:, k + 1], flow.to(video))
        diff = (back - video[:, k]).pow(2).mean(1, keepdim=True) * valid.to(video)
        errors += diff.flatten(1).sum(-1).cpu()
        weights += valid.flatten(1).sum(-1).cpu()
    spread = video.flatten(1).var(dim=1).cpu().clamp(min=1e-6)
    per = errors / weights.clamp(min=1) / spread
    return per if per_clip else float(per.mean())


def paired_bootstrap(
    ours: Tensor, baseline: Tensor, better: str, *, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Per-clip values of two arms on the *same* clips and noise: (mean ours, mean baseline,
    the 5 % lower bound of the mean per-clip gain in the ``better`` direction), the clips
    resampled with replacement ``draws`` times. Pairs with a NaN are left out."""
    if ours.shape != baseline.shape or ours.dim() != 1:
        raise ValueError(f"need two (b,) tensors, got {tuple(ours.shape)}, {tuple(baseline.shape)}")
    keep = ours.isfinite() & baseline.isfinite()
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    a, b = ours[keep].double(), baseline[keep].double()
    gain = a - b if better == "higher" else b - a
    pick = torch.randint(
        len(gain), (draws, len(gain)), generator=torch.Generator().manual_seed(seed)
    )
    lower = float(gain[pick].mean(1).quantile(0.05))
    return float(a.mean()), float(b.mean()), lower


def clip_slopes(x: Sequence[float], ys: Sequence[Tensor]) -> Tensor:
    """Per-clip least-squares slopes (b,) of the values ``ys[i]`` (b,) against ``x[i]``."""
    xs = torch.tensor(x, dtype=torch.float64)
    xc = xs - xs.mean()
    y = torch.stack([v.double() for v in ys], 1)  # (b, len(x))
    return ((y - y.mean(1, keepdim=True)) * xc).sum(1) / xc.pow(2).sum()


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` against ``x``."""
    xs, ys = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    xc = xs - xs.mean()
    return float((xc * (ys - ys.mean())).sum() / xc.pow(2).sum())


# ---- the card -----------------------------------------------------------------------------------

#: what a paired claim's baseline adds: the criterion is on the bootstrap's lower bound
PAIRED = "the bootstrap allowance added: holds when the 5 % lower bound of the per-clip gain is > 0"


def add_paired(
    card: Card,
    key: str,
    claim: str,
    *,
    ours: Tensor,
    baseline: Tensor,
    baseline_name: str,
    better: str,
    gate: str | None = None,
    **fields: object,
) -> dict[str, float]:
    """File a comparison of two arms measured per clip on the same clips and noise: ``ours``
    is the mean, the baseline value is the baseline's mean moved by the bootstrap allowance
    (mean gain − its 5 % lower bound), so the claim holds exactly when the lower bound of the
    paired gain is positive (:func:`paired_bootstrap`). ``gate``: a reason the claim cannot be
    read in this run (a sanity row it rests on failed): then the baseline equals ours and the
    claim does not hold. Returns the raw means and the lower bound for the prose."""
    mean_ours, mean_base, lower = paired_bootstrap(ours, baseline, better)
    allowance = (mean_ours - mean_base if better == "higher" else mean_base - mean_ours) - lower
    value = mean_base + allowance if better == "higher" else mean_base - allowance
    name = f"{baseline_name}; {PAIRED}"
    if gate is not None:
        value, name = mean_ours, f"{baseline_name}; gated off: {gate}"
    card.add(
        key, claim, ours=mean_ours, baseline=name, baseline_value=value, better=better, **fields
    )
    return {"ours": mean_ours, "baseline": mean_base, "lower": lower}


def file_structure_claims(
    card: Card, iou_by_t_s: Mapping[int, Tensor], mismatched_by_t_s: Mapping[int, Tensor]
) -> dict[str, dict[str, float]]:
    """Per-clip structure IoUs of the same samples against their own clip's masks
    (``iou_by_t_s``) and against another clip's masks (``mismatched_by_t_s``, what ignoring
    the structure scores). Sanity: t_s = 0 follows its own structure. Claims: the IoU falls
    with t_s faster than the mismatched IoU of the same samples (per-clip slopes, paired), and
    t_s = 0 keeps more than the largest t_s (paired)."""
    levels = sorted(iou_by_t_s)
    first, last = levels[0], levels[-1]
    why = "the paper's own control: the same model and clips with less structure detail"
    out = {}
    out["structure-followed"] = add_paired(
        card,
        "structure-followed",
        "the samples follow their own clip's structure (sanity)",
        metric=f"structure IoU at t_s = {first}: own clip's masks vs another clip's",
        ours=iou_by_t_s[first],
        baseline=mismatched_by_t_s[first],
        baseline_name="the same samples against another held-out clip's masks",
        why="a model that ignores the depth scores the same against any clip's masks",
        better="higher",
        kind="sanity",
    )
    followed = card["structure-followed"].holds
    gate = None if followed else "the samples do not follow their structure (sanity row)"
    out["structure-slope"] = add_paired(
        card,
        "structure-slope",
        "structure adherence falls as t_s grows (Sec. 3.3)",
        metric=f"slope of structure IoU over t_s = {first}..{last} (per step, per clip)",
        ours=clip_slopes(levels, [iou_by_t_s[t] for t in levels]),
        baseline=clip_slopes(levels, [mismatched_by_t_s[t] for t in levels]),
        baseline_name="the same samples' slope against another clip's masks",
        why="separates losing the clip's shapes from merely drawing more or fewer object pixels",
        better="lower",
        gate=gate,
    )
    out["structure-ends"] = add_paired(
        card,
        "structure-ends",
        f"t_s = {first} keeps more structure than t_s = {last}",
        metric="structure IoU (conditioning mask vs generated object pixels)",
        ours=iou_by_t_s[first],
        baseline=iou_by_t_s[last],
        baseline_name=f"t_s = {last}, the same model, clips and noise",
        why=why,
        better="higher",
        gate=gate,
    )
    return out


def file_content_claims(
    card: Card, original: Samples, swapped: Samples, new_colour: Tensor, content_free: Samples
) -> dict[str, dict[str, float]]:
    """Sanity: the original colour above a content-free model's (null content: the chance
    level of the colour reading). Claims, each gated on the one before: the swapped content
    shows (accuracy to the new colour against the original content's samples, paired), and
    the structure stays (IoU under the swap within the tolerance of the original's)."""
    out = {}
    out["content-above-chance"] = add_paired(
        card,
        "content-above-chance",
        "the content is followed at all (sanity: the original colour against chance)",
        metric="colour accuracy of the generated object pixels to the clip's own colour",
        ours=colour_accuracy(original, per_clip=True),
        baseline=colour_accuracy(content_free, original.colour, per_clip=True),
        baseline_name="chance: the same clips and noise with the null content (c = ∅)",
        why="the content-free model's samples show how often a colour appears without c",
        better="higher",
        kind="sanity",
    )
    learned = card["content-above-chance"].holds
    out["content-swap"] = add_paired(
        card,
        "content-swap",
        "swapping the content vector changes the content (Sec. 3.3)",
        metric="colour accuracy of the generated object pixels to the new colour",
        ours=colour_accuracy(swapped, new_colour, per_clip=True),
        baseline=colour_accuracy(original, new_colour, per_clip=True),
        baseline_name="the same clips and noise under the original content",
        why="the paper edits a video by changing c alone; the original content is the unedited run",
        better="higher",
        gate=None if learned else "the original colour is not above chance (sanity row)",
    )
    swap_works = card["content-swap"].holds
    iou_swapped, iou_original = structure_iou(swapped), structure_iou(original)
    card.add(
        "content-keeps-structure",
        "… and keeps the structure",
        metric=f"structure IoU (the original's minus {STRUCTURE_TOLERANCE} as the bar)",
        ours=iou_swapped,
        baseline=f"the original content's IoU − {STRUCTURE_TOLERANCE}"
        + ("" if swap_works else "; gated off: the swap did not change the content"),
        baseline_value=(iou_original - STRUCTURE_TOLERANCE) if swap_works else iou_swapped,
        why="structure and content are separate inputs: changing c should not move the shapes",
        better="higher",
    )
    return out


def file_temporal_claims(
    card: Card,
    error_by_scale: Mapping[float, Tensor],
    accuracy_by_scale: Mapping[float, Tensor],
    *,
    content_learned: bool,
) -> dict[str, dict[str, float]]:
    """Per-clip frame errors and colour accuracies of the same clips and noise at each ω_t.
    Claims (paired): the video model (ω_t = 1) more consistent than the per-frame model
    (ω_t = 0), the largest ω_t more than ω_t = 1; the content accuracy at the largest ω_t
    against ω_t = 0's minus :data:`CONTENT_COST`, gated on the content being learned at all
    (at chance both sides are chance and the bar cannot fail)."""
    top = max(error_by_scale)
    trend = PaperPair(
        None, None, "frame consistency rises with ω_t", "Sec. 3.4 [recall]", better="higher"
    )
    metric = "motion-compensated frame error over the clip's variance (↓)"
    out = {}
    out["temporal-video-vs-frame"] = add_paired(
        card,
        "temporal-video-vs-frame",
        "the video model is more temporally consistent than the per-frame model (Sec. 3.4)",
        metric=metric,
        ours=error_by_scale[1.0],
        baseline=error_by_scale[0.0],
        baseline_name="ω_t = 0: the same weights, clips and noise, temporal layers off (μ_π)",
        why="the paper's temporal-guidance baseline: its image model applied frame by frame",
        better="lower",
        paper=trend,
    )
    out["temporal-guidance"] = add_paired(
        card,
        "temporal-guidance",
        f"temporal guidance ω_t = {top:g} adds consistency over ω_t = 1 (Sec. 3.4)",
        metric=metric,
        ours=error_by_scale[top],
        baseline=error_by_scale[1.0],
        baseline_name="ω_t = 1 (the video model unguided), the same clips and noise",
        why="the temporal guidance extrapolates beyond the video model; ω_t = 1 is the model",
        better="lower",
    )
    ours = float(accuracy_by_scale[top].nanmean())
    bar = float(accuracy_by_scale[0.0].nanmean()) - CONTENT_COST
    card.add(
        "temporal-content-cost",
        f"… at little cost in content (ω_t = {top:g} vs 0)",
        metric=f"colour accuracy (ω_t = 0's minus {CONTENT_COST} as the bar)",
        ours=ours,
        baseline=f"ω_t = 0's accuracy − {CONTENT_COST}"
        + ("" if content_learned else "; gated off: the content is not above chance"),
        baseline_value=bar if content_learned else ours,
        why="the paper trades a little prompt consistency for frame consistency",
        better="higher",
    )
    return out
