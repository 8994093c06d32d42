"""Checkers for chapter 7's exercises (see :mod:`esser_lab.exercises`).

Exercise 2 has an answer the checker recomputes: the share of the cINN's samples whose foreground
colour (:func:`esser_lab.invariances.analysis.foreground_stats`) is nearest, among the 8 palette
colours, to the colour of the image the sample explains. Exercise 3's swap score is recomputed
too: the per-pixel MSE between D(t(v_a | Φ(x_b))) (b's shape, everything else from a) and the exact
render ``swap_truth(a, b)``; the comparison with the naive answers is the student's. Exercise 1
reads the probe accuracies printed by the chapter and asks which classifier's logits know the
shape, a judgement: it has no checker.
"""

from __future__ import annotations

import torch

from esser_lab.data import sprites
from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.invariances.analysis import foreground_stats
from esser_lab.invariances.data import palette_rgb, swap_truth
from esser_lab.invariances.method import Explanation, reconstruct

__all__ = ["check_colour_kept", "check_swap_mse", "colour_kept", "swap_mse"]


def colour_kept(samples: torch.Tensor, colour: torch.Tensor) -> float:
    """Share of ``samples`` ``(n, S, 3, H, W)`` whose nearest palette colour is ``colour[i]``
    (``(n,)`` palette indices of the images they were drawn for)."""
    if samples.dim() != 5 or samples.shape[2] != 3:
        raise ValueError(f"samples must be (n, samples, 3, h, w), got {tuple(samples.shape)}")
    if colour.shape != samples.shape[:1]:
        raise ValueError(
            f"one colour per image: colour {tuple(colour.shape)}, {len(samples)} images"
        )
    worn = foreground_stats(samples.flatten(0, 1)).colour
    palette = palette_rgb(torch.arange(8)).to(worn)
    nearest = torch.cdist(worn, palette).argmin(1).view(samples.shape[:2])
    return float((nearest == colour.to(nearest.device)[:, None]).float().mean())


def check_colour_kept(samples: torch.Tensor, colour: torch.Tensor, answer: object) -> Verdict:
    """Exercise 2: the share of ``samples`` wearing the colour ``colour`` of their input."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    verdict = check_close(
        answer,
        colour_kept(samples, colour),
        what="the share of samples wearing the input's colour",
        rtol=0.0,
        atol=0.5 / samples.shape[:2].numel() + 1e-9,  # exact up to one sample's rounding
        too_low="Each image's S samples are consecutive after flatten(0, 1): repeat each "
        "image's colour S times in a row (repeat_interleave), not the whole list S times.",
        too_high="The nearest of the 8 palette colours to each sample's foreground colour, "
        "compared with the colour of the image that sample was drawn for; a share, not a count.",
    )
    if verdict:
        return Verdict(True, "the share of samples wearing the input's colour agrees.")
    return verdict


def swap_mse(
    transformer: torch.nn.Module,
    autoencoder: torch.nn.Module,
    explanation: Explanation,
    partner: torch.Tensor,
    images: sprites.Sprites,
) -> float:
    """Per-pixel MSE of the swaps ``D(t(v_a | Φ(x_b)))`` against ``swap_truth(a, b)``, with
    ``a = images[:n]``, ``b = images[partner]`` (``n = len(partner)``) and ``explanation`` the
    explanation of ``images``."""
    n = len(partner)
    truth = swap_truth(images[:n], images[partner]).image
    with torch.no_grad():
        swapped = reconstruct(transformer, autoencoder, explanation.phi[partner], explanation.v[:n])
    return float((swapped.to(truth.device) - truth).pow(2).mean())


def check_swap_mse(
    transformer: torch.nn.Module,
    autoencoder: torch.nn.Module,
    explanation: Explanation,
    partner: torch.Tensor,
    images: sprites.Sprites,
    answer: object,
) -> Verdict:
    """Exercise 3: the per-pixel MSE of the swaps to the exact target."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    return check_close(
        answer,
        swap_mse(transformer, autoencoder, explanation, partner, images),
        what="the swaps' MSE",
        rtol=0.01,
        atol=1e-6,
        too_low="Is it the swap (Φ of b, v of a) against swap_truth(a, b), averaged over every "
        "pixel and channel?",
        too_high="The swap takes Φ from b (its shape) and v from a (everything else), and the "
        "target is swap_truth(a, b), not an image of the test set.",
    )
