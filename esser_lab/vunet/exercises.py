"""Checkers for chapter 1's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 has an answer the checker recomputes: the KL ½‖μ_q − μ_p‖² of each latent scale
(the VUNet's KL term, official ``models.latent_kl``, split by scale), averaged over the figures,
from the forward pass's posterior and prior means. Exercise 3's measurement is recomputed too:
the spread (std over the figures, averaged over RGB) of the mean torso colour of the prior's samples
and of the real figures; whether the prior is "as colourful" stays the student's judgement.
Exercise 2 (how much each model's transfer changes with shuffled appearances) depends on the
student's shuffle and asks for a comparison; it has no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, no_answer
from esser_lab.losses.kl import unit_variance_kl
from esser_lab.vunet.model import VUNetOutput

__all__ = ["check_kl_per_scale", "check_torso_spread", "kl_per_scale", "torso_spread"]


def kl_per_scale(output: VUNetOutput) -> list[float]:
    """The KL of each latent scale (coarsest first), batch mean, from a forward pass's means."""
    if not output.posterior_means:
        raise ValueError("this output has no latent scales (the baseline has no appearance latent)")
    pairs = zip(output.posterior_means, output.prior_means, strict=True)
    return [float(unit_variance_kl([q.detach()], [p.detach()])) for q, p in pairs]


def check_kl_per_scale(output: VUNetOutput, answer: object, rtol: float = 0.01) -> Verdict:
    """Exercise 1: the KL per scale (one number a scale, coarsest first) of ``output``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    expected = kl_per_scale(output)
    try:
        values = [float(a) for a in answer]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the KL per scale should be a list of numbers, coarsest scale first.")
    if len(values) != len(expected):
        return Verdict(
            False, f"{len(expected)} latent scales, so {len(expected)} numbers; got {len(values)}."
        )
    pairs = enumerate(zip(values, expected, strict=True))
    off = [i for i, (a, e) in pairs if abs(a - e) > rtol * abs(e) + 1e-4]  # a floor near 0 nats
    if not off:
        return Verdict(True, f"the KL of all {len(values)} scales agrees (within {rtol:.0%}).")
    ratios = [values[i] / expected[i] for i in off if expected[i]]
    hint = ""
    if ratios and all(abs(r - 2) < 0.05 for r in ratios):
        hint = " Is the factor ½ there?"
    elif ratios and all(r > 2.5 for r in ratios):
        hint = " Sum over the latent's dimensions, then average over the figures (not sum)."
    elif ratios and all(r < 0.5 for r in ratios):
        hint = " Sum over channels and positions of a scale; average only over the figures."
    return Verdict(False, f"the KL of scale(s) {off} (0 = coarsest) is off.{hint}")


def torso_spread(images: torch.Tensor, torso: torch.Tensor) -> float:
    """Std over the figures of the mean colour on each figure's ``torso`` mask ``(b, h, w)``,
    averaged over the colour channels."""
    if torso.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"torso must be one (h, w) mask per image, got {tuple(torso.shape)} for images "
            f"{tuple(images.shape)}"
        )
    mask = torso[:, None].to(images)
    mean = (images * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)
    return float(mean.std(0).mean())


def check_torso_spread(
    samples: torch.Tensor, images: torch.Tensor, torso: torch.Tensor, answer: object
) -> Verdict:
    """Exercise 3: ``(prior samples, real figures)``, the spread of the mean torso colour."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    try:
        values = [float(a) for a in answer]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Verdict(False, "the answer should be two numbers: (prior samples, real figures).")
    if len(values) != 2:
        return Verdict(False, f"two numbers: (prior samples, real figures); got {len(values)}.")
    expected = [torso_spread(samples, torso), torso_spread(images, torso)]
    names = ("prior samples", "real figures")
    pairs = zip(names, values, expected, strict=True)
    off = [name for name, a, e in pairs if abs(a - e) > 0.01 * abs(e) + 1e-6]
    if not off:
        return Verdict(True, "both spreads agree (within 1%).")
    return Verdict(
        False,
        f"the spread of {' and of '.join(off)} is off. Average each figure's colour over its torso "
        "pixels (a mean per channel), take the std over the figures, then average over RGB.",
    )
