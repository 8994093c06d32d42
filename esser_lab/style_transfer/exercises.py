"""Checkers for chapter 3's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 has an answer the checker recomputes: the fraction of rows where two photos stylised
with one style ``s_p`` re-encode to styles nearer to each other than to ``s_p`` (the FPD triplet
of the fix-point disentanglement loss, margin 0). Exercise 2 (a linear probe for the digit, trained
by the student for a few hundred steps) and exercise 3 (the deception rate with one mean style
vector per artist) measure this run's models and leave the conclusion to the student; they have no
checker.
"""

from __future__ import annotations

import torch

from esser_lab.exercises import Verdict, check_close, no_answer
from esser_lab.style_transfer.model import StyleTransferModel

__all__ = ["check_fpd_fraction", "fpd_fraction"]


def fpd_fraction(
    model: StyleTransferModel,
    photo_a: torch.Tensor,
    photo_b: torch.Tensor,
    paintings: torch.Tensor,
) -> float:
    """Share of rows with ``‖E_s(G(a, s_p)) − E_s(G(b, s_p))‖ < ‖E_s(G(a, s_p)) − s_p‖``,
    ``s_p = E_s(painting)`` (row i: photos ``a[i]``, ``b[i]`` and painting ``paintings[i]``)."""
    if not photo_a.shape[0] == photo_b.shape[0] == paintings.shape[0]:
        raise ValueError(
            f"one painting per pair of photos: got {photo_a.shape[0]}, {photo_b.shape[0]} photos "
            f"and {paintings.shape[0]} paintings"
        )
    with torch.no_grad():
        s_p = model.encode_style(paintings)
        back_a = model.encode_style(model(photo_a, s_p))
        back_b = model.encode_style(model(photo_b, s_p))
    return float(((back_a - back_b).norm(dim=1) < (back_a - s_p).norm(dim=1)).float().mean())


def check_fpd_fraction(
    model: StyleTransferModel,
    photo_a: torch.Tensor,
    photo_b: torch.Tensor,
    paintings: torch.Tensor,
    answer: object,
) -> Verdict:
    """Exercise 1: the fraction of rows where ``model`` satisfies the FPD triplet."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    verdict = check_close(
        answer,
        fpd_fraction(model, photo_a, photo_b, paintings),
        what="the fraction of rows satisfying the triplet",
        rtol=0.0,
        atol=1.0 / photo_a.shape[0] + 1e-9,  # one row's tie either way
        too_low="A row satisfies it when the two re-encoded styles are nearer to each other "
        "than the first is to s_p; is the inequality the right way round?",
        too_high="Compare E_s(G(a, s_p)) with E_s(G(b, s_p)) and with s_p = E_s(painting), "
        "each photo stylised with the same s_p; a fraction of the rows, not a count.",
    )
    if verdict:
        return Verdict(True, "the fraction of rows satisfying the triplet agrees (to a row).")
    return verdict
