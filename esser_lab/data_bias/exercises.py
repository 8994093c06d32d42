"""Checkers for chapter 9's exercises (see :mod:`esser_lab.exercises`).

Exercise 2 has an answer the checker recomputes: for each of the palette's source colours, the
fraction of the A → B translations of test objects of that colour that the colour judge calls
red. Exercise 1 (a mean latent shift instead of the flow) compares two translations on several
measures and asks why they differ, and exercise 3 asks whether A → C leaves the fraction red at
the control's level, a judgement on this run's numbers; neither has a checker.
"""

from __future__ import annotations

import torch
from torch import nn

from esser_lab.data import sprites
from esser_lab.data_bias.data import RED
from esser_lab.exercises import Verdict, check_all_close, no_answer
from esser_lab.metrics.classifiers import predict

__all__ = ["check_red_by_colour", "red_by_colour"]


def red_by_colour(judge: nn.Module, images: torch.Tensor, source: torch.Tensor) -> list[float]:
    """Per palette colour (``sprites.COLOURS`` order): the fraction of ``images`` whose source
    object had that colour (``source``, ``(n,)`` indices) that ``judge`` calls red (0 where the
    colour does not occur)."""
    if source.shape != images.shape[:1]:
        raise ValueError(
            f"one source colour per image: {tuple(source.shape)}, {len(images)} images"
        )
    red = (predict(judge, images) == RED).cpu()
    source = source.cpu()
    colours = len(sprites.COLOURS)
    called = torch.bincount(source[red], minlength=colours).double()
    totals = torch.bincount(source, minlength=colours).double()
    return (called / totals.clamp_min(1)).tolist()


def check_red_by_colour(
    judge: nn.Module, images: torch.Tensor, source: torch.Tensor, answer: object
) -> Verdict:
    """Exercise 2: per source colour, the fraction of its translations ``images`` called red."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    verdict = check_all_close(
        answer,  # type: ignore[arg-type]
        red_by_colour(judge, images, source),
        what="the fractions called red",
        atol=1e-3,
    )
    if verdict:
        return verdict
    return Verdict(
        False,
        verdict.message + f" One fraction per colour of the palette ({len(sprites.COLOURS)}, in "
        "sprites.COLOURS order): the objects of that source colour called red, over all objects "
        "of that source colour (not over all objects called red).",
    )
