"""Chapter 9's measured claims: judges, the bias read-out of translations, and the card.

The data-bias note (Esser, Rombach & Ommer, 2020, arXiv:2012.02516) shows translations between
data sets and lets the reader look: it reports no numbers. Our data sets' biases are designed
(:mod:`esser_lab.data_bias.data`), so a translation can be read factor by factor:

* two judges (:func:`fit_judges`), a shape and a colour classifier trained on fresh *unbiased*
  renders (data set A's priors), never on translations;
* :func:`bias_readout`: for translations of held-out A images, the fraction called red, the
  fraction of B-common shapes, the shape flip rates of rare-in-B and common shapes, the colour
  kept, the centroid's distance to the true centre and the foreground area;
* :func:`file_claims`: every claim compares a translation with the **A → A control**, the same
  model re-encoding without a change of label (the note's own reference: whatever the
  translation changes beyond it is what the model ties to the target data set). Random pairing
  appears only as a sanity row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.cards import Card
from esser_lab.data import sprites
from esser_lab.data_bias.data import (
    COMMON_SHAPES,
    RED,
    BiasedSprites,
    foreground_readout,
    sample_domains,
)
from esser_lab.metrics.classifiers import fit_classifier, predict

__all__ = ["Judges", "bias_readout", "file_claims", "fit_judges", "random_pairing_error"]

SCORE_KEYS = (
    "red",
    "common shape",
    "flip, rare in B",
    "flip, common",
    "colour kept",
    "position error (px)",
    "area",
)
CONTROL_WHY = (
    "the note's control: A → A re-encodes through the same autoencoder and flow without a change "
    "of label, so it shows what the pipeline alone changes; the translation's extra change is "
    "what the model ties to the target data set"
)
NO_NUMBERS = None  # the note is qualitative: translations shown, no numbers


@dataclass(frozen=True)
class Judges:
    """A shape and a colour classifier, trained on unbiased renders (data set A's priors)."""

    shape: torch.nn.Module
    colour: torch.nn.Module


def fit_judges(
    size: int, *, num: int = 4096, shape_steps: int = 400, colour_steps: int = 150
) -> Judges:
    """Train both judges on ``num`` fresh renders of data set A (seeded: the same in every run)."""
    data = sample_domains(
        torch.zeros(num, dtype=torch.long), size, generator=torch.Generator().manual_seed(3)
    )
    generator = torch.Generator().manual_seed(7)
    shape = fit_classifier(
        data.image, data.shape, len(sprites.SHAPES), steps=shape_steps, generator=generator
    )
    colour = fit_classifier(
        data.image, data.colour, len(sprites.COLOURS), steps=colour_steps, generator=generator
    )
    return Judges(shape, colour)


def bias_readout(images: Tensor, source: BiasedSprites, judges: Judges) -> dict[str, float]:
    """The factors of ``images`` (translations of ``source``) as the judges and pixels read them.

    Flip rates compare the shape judge's answer with the *source* shape; "colour kept" the colour
    judge's answer with the source colour; the position error is the foreground centroid's
    distance to the source centre, in pixels.
    """
    if images.shape != source.image.shape:
        raise ValueError(f"images {tuple(images.shape)} and source {tuple(source.image.shape)}")
    images = images.to(source.image.device)  # read out where the source's factors are
    shape, colour = predict(judges.shape, images), predict(judges.colour, images)
    area, centre = foreground_readout(images)
    common = torch.tensor([sprites.SHAPES.index(s) for s in COMMON_SHAPES])
    rare_in_b = ~torch.isin(source.shape, common)
    flip = shape != source.shape
    size = images.shape[-1]
    return {
        "red": (colour == RED).float().mean().item(),
        "common shape": torch.isin(shape, common).float().mean().item(),
        "flip, rare in B": flip[rare_in_b].float().mean().item(),
        "flip, common": flip[~rare_in_b].float().mean().item(),
        "colour kept": (colour == source.colour).float().mean().item(),
        "position error (px)": ((centre - source.position).norm(dim=1) * size).mean().item(),
        "area": area.mean().item(),
    }


def random_pairing_error(source: BiasedSprites) -> float:
    """Mean distance (px) between the centres of two different held-out objects: what a
    translation that forgot the position entirely would score (a sanity level only)."""
    offset = source.position - source.position.roll(1, 0)
    return offset.norm(dim=1).mean().item() * source.image.shape[-1]


def file_claims(
    card: Card,
    control: dict[str, float],
    to_b: dict[str, float],
    to_c: dict[str, float],
    chance_position: float,
) -> Card:
    """File chapter 9's claims on ``card``: read-outs of A → A (control), A → B and A → C.

    Four claims against the control and one sanity row. The "position kept" claim compares the
    position error the translation *adds* over the control with the control's own error: a
    translation keeps the shared factor when it moves objects by less than re-encoding alone
    already does.
    """
    for name, scores in (("control", control), ("to_b", to_b), ("to_c", to_c)):
        missing = set(SCORE_KEYS) - set(scores)
        if missing:
            raise KeyError(f"{name} lacks {sorted(missing)} (use bias_readout)")
    control_text = "the A → A control (same model, re-encoding only)"
    card.add(
        "b-red",
        "Translating A → B takes on B's colour bias: more objects come out red",
        metric="fraction of held-out A images the colour judge calls red after the translation",
        ours=to_b["red"],
        baseline=control_text,
        baseline_value=control["red"],
        why=CONTROL_WHY,
        better="higher",
        paper=NO_NUMBERS,
    )
    card.add(
        "b-rare-shapes",
        "A → B changes the shapes that are rare in B more than the shapes common in B",
        metric="shape flip rate, A → B minus A → A: shapes rare in B (ours) vs common in B",
        ours=to_b["flip, rare in B"] - control["flip, rare in B"],
        baseline="the same gain over the control for shapes common in B",
        baseline_value=to_b["flip, common"] - control["flip, common"],
        why="the note's claim that a translation moves mass where the data sets' priors differ; "
        "both rates are gains over the A → A control, so the autoencoder's own blur cancels",
        better="higher",
        paper=NO_NUMBERS,
    )
    card.add(
        "b-position-kept",
        "A → B keeps the factor no data set biases: objects stay where they were",
        metric="centroid error added by the translation, A → B minus A → A (px)",
        ours=to_b["position error (px)"] - control["position error (px)"],
        baseline="the A → A control's own centroid error (px)",
        baseline_value=control["position error (px)"],
        why="the note's control as the yardstick: the translation keeps position when it moves "
        "objects by less than re-encoding alone already does",
        better="lower",
        paper=NO_NUMBERS,
    )
    card.add(
        "c-size",
        "Translating A → C takes on C's size bias: objects grow",
        metric="foreground area fraction after the translation",
        ours=to_c["area"],
        baseline=control_text,
        baseline_value=control["area"],
        why=CONTROL_WHY,
        better="higher",
        paper=NO_NUMBERS,
    )
    card.add(
        "b-position-chance",
        "A → B places objects far closer to their true centre than a random pairing would",
        metric="centroid error after A → B (px)",
        ours=to_b["position error (px)"],
        baseline="another held-out object's centre (random pairing)",
        baseline_value=chance_position,
        why="sanity only: a translation that forgot the position would score this",
        better="lower",
        kind="sanity",
    )
    return card
