"""Checkers for chapter 7's exercises (see :mod:`esser_lab.exercises`).

Exercise 2 has an answer the checker recomputes: the share of the cINN's samples whose foreground
colour (:func:`esser_lab.invariances.analysis.foreground_stats`) is nearest, among the 8 palette
colours, to the colour of the image the sample explains. Exercise 1 reads the probe accuracies
printed by the chapter and asks which classifier's logits know the shape; exercise 3 compares
three reconstructions with the exact swap target and asks for an explanation. Both are judgements
on this run's numbers and have no checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.invariances.analysis import foreground_stats
from esser_lab.invariances.data import palette_rgb

__all__ = ["check_colour_kept", "colour_kept"]


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
