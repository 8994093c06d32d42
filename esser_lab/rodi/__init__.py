"""Chapter 4: RoDi, robust disentangling (Esser, Haux & Ommer, ICCV 2019, arXiv:1910.10223).

The networks (``model``), the method (``method``) and the data helpers (``data``) never import
Lightning; ``LitRoDi`` lives in ``esser_lab.rodi.training``.
"""

from esser_lab.rodi.data import (
    Pairs,
    Triplets,
    appearance_pairs,
    jitter_appearance,
    transfer_triplets,
)
from esser_lab.rodi.method import (
    CriticTerms,
    ElboTerms,
    constraint_penalty,
    critic_loss,
    dual_update,
    elbo_loss,
    ema_update,
    gamma_update,
    mi_logits,
    reconstruct,
    shuffle_pairs,
    transfer,
    transfer_scores,
)
from esser_lab.rodi.model import MIEstimator, Posterior, RoDi, RoDiConfig, RoDiOutput

__all__ = [
    "CriticTerms",
    "ElboTerms",
    "MIEstimator",
    "Pairs",
    "Posterior",
    "RoDi",
    "RoDiConfig",
    "RoDiOutput",
    "Triplets",
    "appearance_pairs",
    "constraint_penalty",
    "critic_loss",
    "dual_update",
    "elbo_loss",
    "ema_update",
    "gamma_update",
    "jitter_appearance",
    "mi_logits",
    "reconstruct",
    "shuffle_pairs",
    "transfer",
    "transfer_scores",
    "transfer_triplets",
]
