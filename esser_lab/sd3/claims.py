"""Chapter 17's claims (Stable Diffusion 3, Esser et al., ICML 2024; arXiv 2403.03206).

What the chapter measures and against what, in one place. Every model is trained the same way
(the same steps, batch, learning rate, captioned sprites and seed); the comparison is always the
paper's own:

* **formulations** (Sec. 5.1, Tables 1–2: 61 formulations ranked on ImageNet and CC12M):
  rectified flow with logit-normal(0, 1) timesteps, ``rf/lognorm(0.00,1.00)``, against uniform
  rectified flow ``rf`` and against LDM's ``eps/linear``; the FID-style score of decoded samples
  against held-out real images and caption accuracy, at 5 and 25 sampling steps; and "rectified
  flow degrades least when the steps drop" (Sec. 5.1, Fig. 3: the relative loss of sample
  quality from 25 to 5 steps, lognorm-RF against eps/linear);
* **backbones** (Sec. 5.2.3, Fig. 4): MMDiT (two weight streams, one joint attention) against
  CrossDiT (cross-attention to the text) at matched parameters: caption accuracy of samples and
  the stratified validation loss of Sec. 5.3.3 (equidistant t, t = 1 excluded);
* **the resolution shift** (Sec. 5.3.2, Eq. 23): on an exact analytic posterior the log–log
  slope of the best α against the number of pixels (the √(m/n) law: 0.5; no growth: 0). The
  trained model is not a claim: at its training resolution the paper's α = √(m/n) is 1;
* **QK-norm** (Sec. 5.3.2, Fig. 5): the same MMDiT trained in bf16 autocast at a high learning
  rate with and without RMSNorm on queries and keys: the growth of the last block's largest
  attention logit over training (end / initialisation), its attention entropy, and the largest
  loss spike. The end value of the largest logit is a sanity row only: with QK-norm it is
  bounded by construction (≈ √head_dim × the norms' gains).

Chance-like references (unconditional samples judged against the captions) are sanity rows only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card, PaperPair
from esser_lab.metrics import fid_style
from esser_lab.sd3.shift import (  # the shift claims live with the shift; re-exported here
    best_on_grid,
    file_shift_claims,
    file_trained_shift_claim,
    log_slope,
)

__all__ = [
    "BackboneRun",
    "best_on_grid",
    "SampleScores",
    "StabilityRun",
    "file_backbone_claims",
    "file_formulation_claims",
    "file_qk_norm_claims",
    "file_shift_claims",
    "file_trained_shift_claim",
    "loss_spike",
    "relative_drop",
    "file_sanity",
    "log_slope",
    "sample_latents",
    "score_samples",
    "timed",
]

# Tables 1–2 and the sections cited here were checked against the paper's text (arXiv 2403.03206)
OURS = "rf/lognorm(0.00,1.00)"
# Table 1 (average rank over 24 settings, lower is better: all / 5 steps / 50 steps) and
# Table 2 (25 steps, ImageNet: CLIP score / FID) of the paper, for the three formulations compared
TABLE1 = {OURS: (1.54, 1.25, 1.50), "rf": (5.67, 6.50, 5.75), "eps/linear": (2.88, 4.25, 2.75)}
TABLE2 = {OURS: (0.250, 45.78), "rf": (0.247, 49.70), "eps/linear": (0.245, 48.42)}


@dataclass(frozen=True)
class SampleScores:
    """Captioned samples, scored: FID-style against held-out real images (↓); caption
    accuracy (↑, the fraction whose every captioned attribute a classifier recognises, GenEval's
    all-or-nothing) and attribute accuracy (↑, the classifier's accuracy on each captioned
    attribute that varies in the set, averaged: what the claims compare, as a short training
    rarely gets every attribute of a two-object caption right)."""

    fid: float
    accuracy: float
    seconds: float  # wall time of sampling and decoding, all samples
    attributes: float = float("nan")


@dataclass(frozen=True)
class BackboneRun:
    """One backbone trained with the chapter's formulation: its size and scores."""

    name: str  # "mmdit", "crossdit", "dit"
    parameters: int
    val_loss: float  # the stratified validation loss, Sec. 5.3.3 (mean over the levels)
    scores: SampleScores


@dataclass(frozen=True)
class StabilityRun:
    """One MMDiT trained in bf16 autocast at a high learning rate (the QK-norm study)."""

    qk_norm: bool
    max_logit: float  # largest attention logit q·k/√d of the last block, on a held-out batch
    entropy: float  # mean attention entropy (nats) of the last block, same batch
    spike: float  # loss_spike of the training losses
    final_loss: float  # mean loss of the last tenth of the steps
    start_logit: float = float("nan")  # max_logit of the same network at initialisation

    @property
    def logit_growth(self) -> float:
        """How much the largest logit grew over training: ``max_logit / start_logit``."""
        if not self.start_logit > 0:
            raise ValueError(f"start_logit must be > 0 to measure growth, got {self.start_logit}")
        return self.max_logit / self.start_logit


# ---- measuring --------------------------------------------------------------------------------


@torch.no_grad()
def sample_latents(
    model: torch.nn.Module,
    formulation,  # noqa: ANN001 (esser_lab.diffusion.formulations.Formulation)
    cond: dict[str, Tensor],
    null: dict[str, Tensor] | None,
    shape: tuple[int, ...],
    *,
    steps: int,
    guidance: float = 1.0,
    shift: float = 1.0,
    seed: int = 0,
) -> Tensor:
    """Latents ``(b, *shape)`` sampled by ``formulation.sample`` (its own deterministic sampler,
    ``steps`` model calls) from seeded noise, for the condition ``cond`` (b rows), guided with
    ``guidance`` against ``null`` (the unconditional input, one row: the chapter passes the
    zeroed condition caption dropout trains with) unless ``guidance == 1``."""
    from esser_lab.diffusion.guidance import classifier_free_guidance

    b = next(iter(cond.values())).shape[0]
    device = next(model.parameters()).device
    noise = torch.randn((b, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    denoiser = model
    if guidance != 1.0:
        if null is None:
            raise ValueError(f"guidance {guidance:g} needs the unconditional condition (null)")
        denoiser = classifier_free_guidance(model, guidance, null)
    was_training = model.training
    model.eval()
    try:
        return formulation.sample(denoiser, noise, steps, cond=cond, shift=shift)
    finally:
        model.train(was_training)


def score_samples(
    images: Tensor,
    labels: Mapping[str, Tensor],
    classifier: torch.nn.Module,
    reference: Tensor,
    feature_net: torch.nn.Module,
    seconds: float,
) -> SampleScores:
    """FID-style of ``images`` (b, 3, h, w) in [−1, 1] against ``reference`` and caption
    accuracy of ``classifier`` for their ``labels``
    (:func:`esser_lab.sd3.adherence.caption_accuracy`)."""
    from esser_lab.sd3.adherence import attribute_accuracy, caption_accuracy

    n = images.shape[0]
    wrong = {k: tuple(v.shape) for k, v in labels.items() if v.shape[0] != n}
    if wrong:
        raise ValueError(f"one label per image: {n} images, labels of shapes {wrong}")
    images = images.detach().float().cpu().clamp(-1, 1)
    labels = {k: v.cpu() for k, v in labels.items()}
    per_label = attribute_accuracy(classifier, images, labels)
    varying = [k for k, v in labels.items() if v[v >= 0].unique().numel() > 1 and k in per_label]
    return SampleScores(
        fid=fid_style(images, reference.float().cpu(), feature_net),
        accuracy=caption_accuracy(classifier, images, labels),
        seconds=float(seconds),
        attributes=sum(per_label[k] for k in varying) / max(len(varying), 1),
    )


def relative_drop(few: SampleScores, many: SampleScores) -> float:
    """How much worse the FID-style score gets when the steps drop: (FID_few − FID_many) /
    FID_many (0: no loss; the paper's Table 6 reports such relative drops, in CLIP score)."""
    if not many.fid > 0:
        raise ValueError(f"the many-step FID-style score must be > 0, got {many.fid}")
    return (few.fid - many.fid) / many.fid


def loss_spike(losses: Sequence[float], window: int = 20) -> float:
    """The largest loss spike of a run: max over steps of loss_s / median(loss over the
    ``window`` steps before s). 1 or less: no spike; a diverging run gives large values."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    values = torch.as_tensor(list(losses), dtype=torch.float64)
    if values.numel() <= window:
        raise ValueError(f"need more than window = {window} losses, got {values.numel()}")
    if not torch.isfinite(values).all():
        return float("inf")
    before = values.unfold(0, window, 1)[:-1].median(dim=1).values  # (n − window,)
    return float((values[window:] / before.clamp(min=1e-12)).max())


def timed(function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    """``(function(*args, **kwargs), seconds)``."""
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


# ---- filing -----------------------------------------------------------------------------------


def _check_runs(runs: Mapping[str, Mapping[int, SampleScores]], names, steps) -> None:  # noqa: ANN001
    for name in names:
        if name not in runs:
            raise ValueError(f"the formulation runs need {name!r}, have {sorted(runs)}")
        missing = [s for s in steps if s not in runs[name]]
        if missing:
            raise ValueError(f"{name!r} needs scores at {missing} steps, has {sorted(runs[name])}")


def file_formulation_claims(
    card: Card,
    runs: Mapping[str, Mapping[int, SampleScores]],
    *,
    train_steps: int,
    few: int = 5,
    many: int = 25,
    guidance: float = 1.0,
) -> None:
    """Files rf/lognorm(0.00,1.00) against ``rf`` and ``eps/linear`` (``runs``: formulation name →
    sampling steps → scores), in FID-style and attribute accuracy at ``few`` and ``many`` steps
    (keys end in ``-few`` / ``-many``: the same claims whatever a capped smoke run samples
    with), and the relative FID-style loss from ``many`` to ``few`` steps against eps/linear."""
    if not few < many:
        raise ValueError(f"few must be fewer steps than many, got {few} and {many}")
    _check_runs(runs, (OURS, "rf", "eps/linear"), (few, many))
    same = f"trained the same way ({train_steps} steps, same batch, learning rate, data, seed)"
    for base, short in (("rf", "rf"), ("eps/linear", "eps")):
        why = (
            "the paper's Table 1–2 comparison: uniform rectified flow, the density's ablation"
            if base == "rf"
            else "the paper's Table 1–2 comparison: LDM's established diffusion formulation"
        )
        for steps in (many, few):
            ours, theirs = runs[OURS][steps], runs[base][steps]
            baseline = f"{base}, {same}"
            if steps == many:
                fid_pair = PaperPair(
                    TABLE2[OURS][1], TABLE2[base][1], "FID, ImageNet, 25 steps",
                    "Table 2", "lower",
                )  # fmt: skip
                acc_pair = PaperPair(
                    TABLE2[OURS][0], TABLE2[base][0], "CLIP score, ImageNet, 25 steps",
                    "Table 2", "higher",
                )  # fmt: skip
            else:
                fid_pair = acc_pair = PaperPair(
                    TABLE1[OURS][1], TABLE1[base][1], "average rank at 5 steps",
                    "Table 1", "lower",
                )  # fmt: skip
            card.add(
                f"lognorm-vs-{short}-fid-{'many' if steps == many else 'few'}",
                f"rectified flow with logit-normal(0, 1) timesteps gives better samples than "
                f"{base} at {steps} sampling steps",
                metric=f"FID-style of decoded samples vs held-out images, {steps} steps, "
                f"guidance {guidance:g}",
                ours=ours.fid,
                baseline=baseline,
                baseline_value=theirs.fid,
                why=why,
                better="lower",
                paper=fid_pair,
            )
            card.add(
                f"lognorm-vs-{short}-accuracy-{'many' if steps == many else 'few'}",
                f"rectified flow with logit-normal(0, 1) timesteps follows the captions better "
                f"than {base} at {steps} sampling steps",
                metric=f"attribute accuracy of samples, {steps} steps, guidance {guidance:g}",
                ours=ours.attributes,
                baseline=baseline,
                baseline_value=theirs.attributes,
                why=why,
                better="higher",
                paper=acc_pair,
            )
    card.add(
        "rf-degrades-least",
        f"rectified flow (logit-normal) loses less sample quality than eps/linear when the "
        f"sampling steps drop from {many} to {few}",
        metric=f"relative FID-style increase, {many} → {few} steps",
        ours=relative_drop(runs[OURS][few], runs[OURS][many]),
        baseline=f"eps/linear, {same}",
        baseline_value=relative_drop(runs["eps/linear"][few], runs["eps/linear"][many]),
        why="the paper's Fig. 3 / Table 1: at few steps rectified flow keeps its rank, "
        "eps/linear falls behind",
        better="lower",
        paper=PaperPair(
            TABLE1[OURS][1],
            TABLE1["eps/linear"][1],
            "average rank at 5 steps",
            "Table 1",
            "lower",
        ),  # fmt: skip
    )


#: the backbones MMDiT is compared with (SD3 Fig. 4): label, how they read the text
BACKBONES = {
    "crossdit": ("CrossDiT", "a cross-attention DiT"),
    "dit": ("DiT (concat)", "a DiT that runs text and image tokens through one weight set"),
}


def file_backbone_claims(
    card: Card, mmdit: BackboneRun, other: BackboneRun, *, train_steps: int, steps: int
) -> None:
    """Files MMDiT against ``other`` (``"crossdit"`` or ``"dit"``, the concatenating DiT) at
    matched parameters: attribute accuracy of samples and validation loss, keys
    ``mmdit-vs-<other.name>-accuracy`` / ``-val-loss``."""
    if other.name not in BACKBONES:
        raise ValueError(f"other must be one of {sorted(BACKBONES)}, got {other.name!r}")
    label, description = BACKBONES[other.name]
    ratio = other.parameters / mmdit.parameters
    baseline = (
        f"{label} at matched parameters ({ratio:.2f}× MMDiT's), same formulation, "
        f"{train_steps} steps"
    )
    why = "the paper's Fig. 4: the text-to-image backbones compared at equal size"
    fig4 = PaperPair(
        None, None, "validation loss, CLIP score, FID over training (curves only)", "Fig. 4"
    )
    card.add(
        f"mmdit-vs-{other.name}-accuracy",
        "MMDiT (two weight streams, joint attention) follows the captions better than "
        f"{description} of the same size",
        metric=f"attribute accuracy of samples, {steps} steps",
        ours=mmdit.scores.attributes,
        baseline=baseline,
        baseline_value=other.scores.attributes,
        why=why,
        better="higher",
        paper=fig4,
    )
    card.add(
        f"mmdit-vs-{other.name}-val-loss",
        f"MMDiT reaches a lower validation loss than {description} of the same size",
        metric="stratified validation loss (Sec. 5.3.3: 8 equidistant t, t = 1 excluded), held-out",
        ours=mmdit.val_loss,
        baseline=baseline,
        baseline_value=other.val_loss,
        why=why,
        better="lower",
        paper=fig4,
    )


def file_qk_norm_claims(
    card: Card, with_norm: StabilityRun, without: StabilityRun, *, learning_rate: float
) -> None:
    """Files QK-norm against the same MMDiT without it, both in bf16 at ``learning_rate``."""
    if not with_norm.qk_norm or without.qk_norm:
        raise ValueError("with_norm must be the QK-norm run and without the run without it")
    baseline = f"the same MMDiT without QK-norm, bf16 autocast, learning rate {learning_rate:g}"
    why = "the paper's Fig. 5: attention logits grow and entropy collapses without QK-norm"
    fig5 = PaperPair(
        None, None, "attention logit growth, bf16, high resolution (curves only)", "Fig. 5"
    )
    card.add(
        "qk-norm-logit-growth",
        "with RMSNorm on queries and keys the last block's largest attention logit grows less "
        "over training",
        metric="largest attention logit q·k/√d of the last block, end of training / "
        "initialisation, held-out batch",
        ours=with_norm.logit_growth,
        baseline=baseline,
        baseline_value=without.logit_growth,
        why=why,
        better="lower",
        paper=fig5,
    )
    card.add(
        "qk-norm-max-logit",
        "with QK-norm the largest attention logit stays bounded (by construction: normalised "
        "queries and keys cap q·k/√d at about √head_dim times the norms' gains)",
        metric="largest attention logit q·k/√d of the last block, end of training",
        ours=with_norm.max_logit,
        baseline=baseline,
        baseline_value=without.max_logit,
        why="a sanity check that QK-norm is on: it holds whatever the training does",
        better="lower",
        kind="sanity",
    )
    card.add(
        "qk-norm-entropy",
        "with QK-norm the last block's attention does not collapse (higher entropy)",
        metric="mean attention entropy of the last block (nats), held-out batch",
        ours=with_norm.entropy,
        baseline=baseline,
        baseline_value=without.entropy,
        why=why,
        better="higher",
        paper=fig5,
    )
    card.add(
        "qk-norm-loss-spike",
        "with QK-norm training at a high learning rate in bf16 has smaller loss spikes",
        metric="largest loss / median of the 20 steps before it",
        ours=with_norm.spike,
        baseline=baseline,
        baseline_value=without.spike,
        why="the paper's Sec. 5.3.2: without QK-norm, high-resolution bf16 training diverges",
        better="lower",
        paper=fig5,
    )
    card.add(
        "qk-norm-final-loss",
        "with QK-norm training at a high learning rate in bf16 ends at a lower loss",
        metric="mean training loss of the last tenth of the steps",
        ours=with_norm.final_loss,
        baseline=baseline,
        baseline_value=without.final_loss,
        why="the paper's Fig. 5: without QK-norm the loss diverges at a high learning rate",
        better="lower",
        paper=fig5,
    )


def file_sanity(card: Card, conditional: SampleScores, unconditional: SampleScores) -> None:
    """The lognorm-RF model's samples follow their captions more often than its unconditional
    samples (the zeroed condition it was trained with) judged against the same captions: the
    condition is used."""
    card.add(
        "captions-used",
        "samples for a caption show it more often than unconditional samples (zeroed condition)",
        metric="attribute accuracy of samples, rf/lognorm(0.00,1.00)",
        ours=conditional.attributes,
        baseline="the same model and noise with the zeroed condition (caption dropout's input)",
        baseline_value=unconditional.attributes,
        why="a sanity check that the text condition reaches the image at all",
        better="higher",
        kind="sanity",
    )
