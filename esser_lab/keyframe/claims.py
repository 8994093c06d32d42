"""Chapter 15's claims (Esser, Michael & Sengupta 2022, arXiv 2205.09731).

What the chapter measures and against what, in one place. Four generators are trained the same
way (architecture, data, steps, batch, learning rate, seed); only the config's ``streams``
differ: ``none`` (no keyframe: single-image inpainting), ``global`` (cross-frame attention of
the latents only; the paper's transformer baseline), ``local`` (flow-guided deformable writes
only) and ``both`` (the paper's model). Each is scored on the same held-out fill problems twice,
with clean flow (exact motion + small smooth noise), with one keyframe's flow wrong and with
every keyframe's flow wrong (a large, unflagged wrong translation over the hole, standing in for
RAFT's failures):

* **hole PSNR** (dB, ↑): of the composited fill over the hole pixels;
* **hole high-frequency error** (↓): mean |Δ fill − Δ truth| over the hole, Δ the Laplacian;
  a blurry fill scores high even when its colours are right.

The paper's statements (abstract, README; Table 2's image-level ablation): global attention
propagates coarse content robustly but loses texture; local deformable aggregation propagates
detail but depends on the flow; the two together are best. The claims below test each of these
on the toy.
The paper's headline 44 % FID / 26 % LPIPS improvement compares the full model with *other
video-inpainting methods* on DAVIS (DEVIL benchmark), not with its own ablations: it is quoted
beside, not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.data.video import Clips
from esser_lab.keyframe.method import (
    KeyframeSamples,
    composite,
    hole_highfreq_error,
    hole_psnr,
    keyframe_samples,
)

__all__ = [
    "ARMS",
    "ArmScores",
    "distance_psnr",
    "file_keyframe_claims",
    "fill",
    "score_arm",
]

#: The four arms: name → the generator's ``streams``.
ARMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "global": ("global",),
    "local": ("local",),
    "both": ("global", "local"),
}

TABLE2 = PaperPair(
    value=None,
    baseline=None,
    metric="FID / LPIPS of guided inpainting on Places365 with 2 and 4 references (Table 2: "
    "LaMa, the global-attention transformer, the two-stream model)",
    source="unverified",
)
HEADLINE = PaperPair(
    value=44.0,
    baseline=None,
    metric="% lower FID than other video-inpainting methods on DAVIS (DEVIL); not an ablation",
    source="README / abstract",
)


@dataclass(frozen=True)
class ArmScores:
    """One arm on the three test sets: clean flow, one keyframe's flow wrong, all wrong."""

    psnr_clean: float
    psnr_one_wrong: float
    psnr_all_wrong: float
    highfreq_clean: float
    highfreq_one_wrong: float
    highfreq_all_wrong: float


@torch.no_grad()
def fill(generator: torch.nn.Module, samples: KeyframeSamples, batch: int = 256) -> Tensor:
    """The composited fills (n, 3, H, W) of ``generator`` (eval mode) on ``samples``."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, len(samples), batch):
        part = KeyframeSamples(
            **{k: v[start : start + batch] for k, v in samples.as_dict().items()}
        )
        image, keys = (t.to(device) for t in part.inputs())
        prediction = generator(
            image, keys, part.flows.to(device), part.flow_errors.to(device)
        ).cpu()
        out.append(composite(prediction, part.image, part.mask))
    return torch.cat(out)


def score_arm(
    generator: torch.nn.Module,
    clean: KeyframeSamples,
    one_wrong: KeyframeSamples,
    all_wrong: KeyframeSamples,
) -> ArmScores:
    """Hole PSNR and high-frequency error on the three test sets (checked: ``clean`` has no
    wrong flow, ``one_wrong`` exactly one per sample, ``all_wrong`` only wrong flows)."""
    wrong = [s.corrupted.sum(dim=1) for s in (clean, one_wrong, all_wrong)]
    if bool(wrong[0].any()) or not bool((wrong[1] == 1).all()):
        raise ValueError("clean must hold no wrong flow and one_wrong exactly one per sample")
    if not bool(all_wrong.corrupted.all()):
        raise ValueError("all_wrong must hold only wrong flows")
    scores = {}
    for name, samples in (("clean", clean), ("one_wrong", one_wrong), ("all_wrong", all_wrong)):
        filled = fill(generator, samples)
        scores[f"psnr_{name}"] = hole_psnr(filled, samples.image, samples.mask)
        scores[f"highfreq_{name}"] = hole_highfreq_error(filled, samples.image, samples.mask)
    return ArmScores(**scores)


def distance_psnr(
    generator: torch.nn.Module, clips: Clips, *, seed: int, noise: float = 0.3
) -> dict[int, float]:
    """Hole PSNR (clean flow) of ``generator`` propagating from the first frame alone to the
    target frame d = 1 … T−1 of each clip (the same holes at every d): error against distance."""
    out = {}
    for d in range(1, clips.frames):
        samples = keyframe_samples(
            clips, torch.Generator().manual_seed(seed), keys=(0,), target=d, noise=noise
        )
        out[d] = hole_psnr(fill(generator, samples), samples.image, samples.mask)
    return out


def _need(arms: Mapping[str, ArmScores]) -> None:
    missing = sorted(set(ARMS) - set(arms))
    if missing:
        raise KeyError(f"the claims need the arms {sorted(ARMS)}; missing {missing}")


def file_keyframe_claims(
    card: Card, arms: Mapping[str, ArmScores], distances: Mapping[int, float], *, steps: int
) -> None:
    """File the chapter's claims from the four arms' scores and the two-stream model's hole
    PSNR by distance from a single keyframe (:func:`distance_psnr`)."""
    _need(arms)
    same = f"trained the same way ({steps} steps, same data, batches and seed)"
    card.add(
        "keyframes-help",
        "Propagating from keyframes beats single-image inpainting",
        metric="hole PSNR ↑ (dB), clean flow",
        ours=arms["both"].psnr_clean,
        baseline=f"the same generator without keyframes, {same}",
        baseline_value=arms["none"].psnr_clean,
        why="the paper's LaMa row: the encoder/decoder with no keyframe",
        better="higher",
        paper=HEADLINE,
    )
    card.add(
        "global-vs-none",
        "Global attention across frames beats single-image inpainting",
        metric="hole PSNR ↑ (dB), clean flow",
        ours=arms["global"].psnr_clean,
        baseline=f"the same generator without keyframes, {same}",
        baseline_value=arms["none"].psnr_clean,
        why="the paper's transformer baseline against LaMa (Table 2): what the global stream "
        "brings on its own (content, chiefly colours, from the keyframes)",
        better="higher",
        paper=TABLE2,
    )
    card.add(
        "both-vs-global",
        "Both streams beat global attention alone",
        metric="hole PSNR ↑ (dB), clean flow",
        ours=arms["both"].psnr_clean,
        baseline=f"the global stream only, {same}",
        baseline_value=arms["global"].psnr_clean,
        why="the paper's transformer baseline (Table 2): what the local stream adds",
        better="higher",
        paper=TABLE2,
    )
    card.add(
        "both-vs-local-corrupt",
        "Both streams beat the local stream alone when the flow is wrong",
        metric="hole PSNR ↑ (dB), one keyframe's flow wrong (unflagged)",
        ours=arms["both"].psnr_one_wrong,
        baseline=f"the local stream only, {same}",
        baseline_value=arms["local"].psnr_one_wrong,
        why="what the global stream adds: a second opinion against which the deformable gate "
        "can tell the keyframe with the wrong flow from the right one (README: the local stream, "
        "informed by the global one, learns to detect and correct errors of the flow)",
        better="higher",
    )
    card.add(
        "local-sharper",
        "The local stream propagates high frequencies that global attention loses",
        metric="hole high-frequency error ↓ (L1 of Laplacians), clean flow",
        ours=arms["local"].highfreq_clean,
        baseline=f"the global stream only, {same}",
        baseline_value=arms["global"].highfreq_clean,
        why="the paper's hypothesis: global attention is biased towards low frequencies",
        better="lower",
    )
    card.add(
        "global-robust",
        "Global attention is robust where the flow fails; the local stream breaks",
        metric="hole PSNR ↑ (dB), every keyframe's flow wrong",
        ours=arms["global"].psnr_all_wrong,
        baseline=f"the local stream only, {same}",
        baseline_value=arms["local"].psnr_all_wrong,
        why="the local stream's failure mode: it trusts a wrong deformation field",
        better="higher",
    )
    card.add(
        "both-sharper-than-global",
        "Adding the local stream to global attention sharpens the fill",
        metric="hole high-frequency error ↓ (L1 of Laplacians), clean flow",
        ours=arms["both"].highfreq_clean,
        baseline=f"the global stream only, {same}",
        baseline_value=arms["global"].highfreq_clean,
        why="global alone is blurry; the two-stream model should not be",
        better="lower",
    )
    near, far = min(distances), max(distances)
    card.add(
        "distance",
        "Propagation is harder the farther the target is from its keyframe",
        metric=f"hole PSNR ↑ (dB) of the two-stream model from one keyframe {near} frame away, "
        "clean flow",
        ours=distances[near],
        baseline=f"the same model and holes, the keyframe {far} frames away",
        baseline_value=distances[far],
        why="more motion means more occlusion and more of the hole unseen in the keyframes",
        better="higher",
    )
