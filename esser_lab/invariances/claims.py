"""Chapter 7's reproduction card: what the run measured, filed against the paper's comparisons.

Rombach, Esser & Ommer, *Making Sense of CNNs* (ECCV 2020, arXiv:2008.01777). The paper's
claims, as this chapter tests them on sprites with known factors:

* the cINN splits an image into what a representation Φ sees and its invariances v: the colour
  the invariant classifier ignores is decodable from its v, and more so than from the v of its
  colour-biased twin, whose Φ holds the colour (``colour-r2``; baseline: the same probe on the
  twin's v, trained the same way — it can win if v keeps what Φ already holds). Against the probe
  on Φ itself (logits trained to ignore colour and position) the comparison can hardly fail, so
  those are sanity rows (``colour-r2-phi``, ``position-r2``);
* samples of the invariances keep the network's prediction (``consistency``; baseline: the
  same cINN given another image's Φ, the paper's swap (I4), which isolates that the prediction
  is carried by Φ and not by v);
* the cINN reveals a bias (the paper's texture bias): the invariances of a classifier trained
  on random colours vary in colour, those of its twin trained where colour = class do not
  (``colour-bias``; baseline: the biased twin, trained the same way).

That ``D(t(t⁻¹(E(x)|Φ)|Φ))`` equals ``D(E(x))`` holds for any weights (t is a bijection): it is
a unit test (``tests/invariances``) and a printed check in the chapter, not a claim.

The paper reports FIDs of samples per layer and class consistency for AlexNet/ResNet; its
numbers could not be checked (``papers/2018-2020.md`` §7 marks them [recall – verify]), and its
bias analysis is qualitative, so no claim carries a paper pair.
"""

from __future__ import annotations

from collections.abc import Mapping

from esser_lab.cards import Card

CHAPTER = "07_invariances"
KEYS = ("colour-r2", "colour-r2-phi", "position-r2", "consistency", "colour-bias")


def file_claims(card: Card, invariant: Mapping[str, float], biased: Mapping[str, float]) -> Card:
    """File chapter 7's claims on ``card`` from the scores of the two classifiers' cINNs.

    ``invariant`` and ``biased`` map score names (as the chapter computes them) to values:
    ``"colour R² v"``, ``"colour R² phi"``, ``"position R² v"``, ``"position R² phi"``,
    ``"consistency"``, ``"swap keeps a"`` and ``"colour spread"``. Returns ``card``.
    """
    needed = {
        "colour R² v",
        "colour R² phi",
        "position R² v",
        "position R² phi",
        "consistency",
        "swap keeps a",
        "colour spread",
    }
    for name, scores in (("invariant", invariant), ("biased", biased)):
        missing = sorted(needed - set(scores))
        if missing:
            raise KeyError(f"the {name} classifier's scores lack {missing}")
    inv, bia = invariant, biased
    probe = "linear probe (ridge) fit on 2048 training images, R² on 1024 held-out images"
    card.add(
        "colour-r2",
        "The invariances v of the invariant classifier carry the colour its logits ignore, more "
        "than the invariances of its colour-biased twin, whose logits hold the colour",
        metric=f"{probe}: the object's RGB colour from v",
        ours=inv["colour R² v"],
        baseline="the same probe on the biased twin's v (trained where colour = class, alike)",
        baseline_value=bia["colour R² v"],
        why="the paper's split: v holds what Φ discards, so what Φ holds must leave v",
        better="higher",
    )
    card.add(
        "colour-r2-phi",
        "The invariant classifier's v carries more colour than its logits Φ",
        metric=f"{probe}: the object's RGB colour",
        ours=inv["colour R² v"],
        baseline="the same probe on Φ (the invariant classifier's logits, trained to ignore it)",
        baseline_value=inv["colour R² phi"],
        why="a check: logits trained to ignore colour should not carry it",
        better="higher",
        kind="sanity",
    )
    card.add(
        "position-r2",
        "The invariances v carry the position that the invariant classifier's logits Φ ignore",
        metric=f"{probe}: the object's (x, y) centre",
        ours=inv["position R² v"],
        baseline="the same probe on Φ (the invariant classifier's logits)",
        baseline_value=inv["position R² phi"],
        why="a check: both classifiers ignore position, so no trained network is a fairer baseline",
        better="higher",
        kind="sanity",
    )
    card.add(
        "consistency",
        "Samples of the invariances keep the network's prediction",
        metric="fraction of samples D(t(v'|Φ(x))) that f gives the class of D(E(x)), "
        "256 held-out images × 8 samples",
        ours=inv["consistency"],
        baseline="swaps D(t(v|Φ(x_b))) with another image's Φ (I4), same cINN",
        baseline_value=inv["swap keeps a"],
        why="the paper's swap: if the prediction is carried by Φ, a foreign Φ changes it",
        better="higher",
    )
    card.add(
        "colour-bias",
        "The cINN reveals a colour bias: a colour-biased classifier's invariances keep the "
        "colour, the invariant classifier's vary it",
        metric="std of the samples' mean foreground colour over 8 samples, [-1, 1] units",
        ours=inv["colour spread"],
        baseline="the biased classifier (trained where colour = class), trained the same way",
        baseline_value=bia["colour spread"],
        why="the paper's texture-bias comparison: the same cINN explaining a biased network",
        better="higher",
    )
    return card
