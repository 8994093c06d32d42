"""Chapter 4's measured claims: RoDi against its ablations on held-out transfer triplets.

Esser, Haux & Ommer (ICCV 2019, arXiv:1910.10223) compare RoDi on Sprites (triplet MSE of a
pose/appearance transfer against the ground truth) with two ablations: the "variational" one
(a fixed-weight KL bottleneck, the official ``Elbo`` loss: our VAE) and the "adversarial" one
(the MI constraint with a fixed γ, the official ``MIMin`` loss). RoDi's own contribution is the
adaptive γ (R6), so ``MIMin`` is the comparison that isolates it. In the official code RoDi starts
from the γ its ablations keep fixed (``RoDi``'s ``gamma_init`` defaults to ``Elbo``'s
``kl_weight``, 1.0; ``rodi/pt/losses.py``), and so does ours: the comparison is the paper's.
We add the plain autoencoder (γ = 0, no MI term), the model whose shortcut the paper sets out to
remove.

:func:`score_models` measures every model on the same triplets; :func:`file_claims` files the
comparisons on a :class:`esser_lab.cards.Card`. The paper's numbers are plotted, not tabulated:
we read them off the authors' Sprites plot, so they are approximate and marked unverified.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from esser_lab.cards import Card, PaperPair
from esser_lab.metrics import part_colour_error
from esser_lab.rodi.data import Triplets
from esser_lab.rodi.method import transfer, transfer_scores
from esser_lab.rodi.model import RoDi

__all__ = ["MODEL_NAMES", "PAPER_PLOT", "file_claims", "score_models"]

RODI, MIMIN, AE, VAE = "RoDi", "MIMin", "AE", "VAE"
MODEL_NAMES = (RODI, MIMIN, AE, VAE)
PAPER_PLOT = (
    "unverified (read off the Sprites violin plot, project page images/sprites_quantitative.png; "
    "means ≈, not a table)"
)
PAPER_METRIC = "triplet transfer MSE on Sprites"
# approximate means read off the plot (see PAPER_PLOT)
PAPER_RODI, PAPER_VARIATIONAL, PAPER_ADVERSARIAL = 0.0025, 0.007, 0.006
SCORE_KEYS = ("transfer", "reconstruction", "leak", "vs pose donor", "colour", "colour vs donor")


@torch.no_grad()
def score_models(models: Mapping[str, RoDi], test: Triplets) -> dict[str, dict[str, float]]:
    """Every model on the same held-out triplets (π from x, α from y', target x-pose in y-colours).

    Per model: transfer and reconstruction MSE and the leak (:func:`transfer_scores`), the MSE of
    the transfer to the pose donor x itself, and chapter 1's part-colour error against y's colours
    (the truth) and against the donor's colours.
    """
    scores = {}
    for name, model in models.items():
        out = transfer(model, test.x.image, test.y_view.image)
        masks = test.truth.part_masks
        scores[name] = transfer_scores(model, test) | {
            "vs pose donor": (out - test.x.image).pow(2).mean().item(),
            "colour": part_colour_error(out, masks, test.truth.colours).mean().item(),
            "colour vs donor": part_colour_error(out, masks, test.x.colours).mean().item(),
        }
    return scores


def file_claims(
    card: Card,
    scores: Mapping[str, Mapping[str, float]],
    num_test: int = 512,
    gamma0: float = 1.0,
) -> Card:
    """File chapter 4's five comparisons (``scores`` from :func:`score_models` on ``num_test``
    held-out triplets) on ``card``; ``gamma0`` is RoDi's initial γ, the γ that ``MIMin`` and the
    VAE keep fixed.

    Transfer MSE: RoDi against ``MIMin`` (the adaptive γ), the VAE (the bottleneck alone) and the
    autoencoder (the shortcut); the leak against the autoencoder; reconstruction against the VAE.
    """
    missing = [name for name in MODEL_NAMES if name not in scores]
    if missing:
        raise KeyError(f"scores lack the models {missing} (expected {list(MODEL_NAMES)})")
    rodi = scores[RODI]
    g = f"{gamma0:g}"
    metric = f"triplet transfer MSE, [-1, 1] pixels, {num_test} held-out triplets"
    card.add(
        "transfer-vs-mimin",
        "RoDi transfers better than the MI constraint with a fixed KL weight: the adaptive γ "
        "is what helps",
        metric=metric,
        ours=rodi["transfer"],
        baseline=f"MIMin: RoDi's MI constraint with γ fixed at {g}, the γ₀ RoDi starts from "
        "(as in the official code), trained the same way",
        baseline_value=scores[MIMIN]["transfer"],
        why="the paper's 'adversarial' ablation (official MIMin loss: the constraint with the "
        "ELBO's fixed kl_weight, from which the official RoDi starts γ); it lacks only the γ "
        "update (R6), RoDi's contribution",
        better="lower",
        paper=PaperPair(PAPER_RODI, PAPER_ADVERSARIAL, PAPER_METRIC, PAPER_PLOT, better="lower"),
    )
    card.add(
        "transfer-vs-vae",
        "RoDi transfers better than a fixed-weight KL bottleneck",
        metric=metric,
        ours=rodi["transfer"],
        baseline=f"VAE: the ELBO with γ fixed at {g}, the γ₀ RoDi starts from (as in the "
        "official code), and no MI term, trained the same way",
        baseline_value=scores[VAE]["transfer"],
        why="the paper's 'variational' ablation (official Elbo loss)",
        better="lower",
        paper=PaperPair(PAPER_RODI, PAPER_VARIATIONAL, PAPER_METRIC, PAPER_PLOT, better="lower"),
    )
    card.add(
        "transfer-vs-ae",
        "RoDi transfers better than the unconstrained autoencoder",
        metric=metric,
        ours=rodi["transfer"],
        baseline="AE: the ELBO with γ = 0 and no MI term, trained the same way",
        baseline_value=scores[AE]["transfer"],
        why="the model whose shortcut (π copying x's appearance) the paper sets out to remove",
        better="lower",
        paper=None,
    )
    card.add(
        "leak-vs-ae",
        "RoDi's π smuggles less appearance than the autoencoder's (a smaller leak)",
        metric="leak = transfer MSE − reconstruction MSE, same triplets",
        ours=rodi["leak"],
        baseline="AE (γ = 0, no MI term), trained the same way",
        baseline_value=scores[AE]["leak"],
        why="the shortcut the MI constraint targets; the AE has nothing against it",
        better="lower",
        paper=None,
    )
    card.add(
        "reconstruction-vs-vae",
        "RoDi does not over-regularise: it reconstructs better than the fixed-γ VAE",
        metric="reconstruction MSE, [-1, 1] pixels (α from the partner view x')",
        ours=rodi["reconstruction"],
        baseline=f"VAE (γ fixed at {g}, RoDi's γ₀; no MI term), trained the same way",
        baseline_value=scores[VAE]["reconstruction"],
        why="the abstract's argument that a strong bottleneck gives uninformative codes",
        better="lower",
        paper=None,
    )
    return card
