"""A translator with a residual but no flow: the conditional Gaussian, Net2Net's fair competitor.

Chapter 6 asks what the conditional INN τ adds. The deterministic regression translator
(:class:`~esser_lab.net2net.model.RegressionBaseline`) cannot answer it for diversity: it has no
residual, so its within-caption diversity is zero by construction. The competitor that *can*
produce diverse samples and *can* keep a residual under a caption edit is the simplest
conditional density model,

    p(z_Θ | z_Φ) = N(μ(z_Φ), Σ),

with μ the regression MLP (trained with MSE, i.e. the maximum-likelihood mean for a fixed Σ, on
the same codes, steps and optimiser as τ) and Σ the maximum-likelihood covariance of its training
residuals ``z_Θ − μ(z_Φ)`` (closed form). It is what a τ without non-linear couplings, with one
residual distribution for every caption, could do: sampling is ``μ(c) + L ε`` and the shift
(N4) keeps the additive residual, ``z' = z − μ(c) + μ(c')``. Not in the paper; our ablation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from esser_lab.nn import placement

__all__ = ["GaussianTranslator"]


@dataclass(frozen=True)
class GaussianTranslator:
    """``z_Θ | z_Φ ~ N(mean(z_Φ), L Lᵀ)``: a fitted regression mean and one residual covariance."""

    mean: nn.Module  # z_Φ (b, cond_in) → E[z_Θ | z_Φ] (b, dim), frozen
    scale_tril: Tensor  # (dim, dim) Cholesky factor of the residual covariance

    @classmethod
    @torch.no_grad()
    def fit(cls, mean: nn.Module, z_target: Tensor, z_cond: Tensor) -> GaussianTranslator:
        """Σ = the maximum-likelihood covariance (``1/n``) of ``z_Θ − mean(z_Φ)`` on the codes."""
        if z_target.dim() != 2 or z_target.shape[0] != z_cond.shape[0]:
            raise ValueError(
                f"need z_target (n, dim) and z_cond (n, cond_in) with the same n, got "
                f"{tuple(z_target.shape)} and {tuple(z_cond.shape)}"
            )
        if z_target.shape[0] <= z_target.shape[1]:
            raise ValueError(
                f"a {z_target.shape[1]}-d covariance needs more than {z_target.shape[1]} codes, "
                f"got {z_target.shape[0]}"
            )
        mean = mean.eval().requires_grad_(False)
        residual = z_target - mean(z_cond)
        covariance = torch.cov(residual.T, correction=0)
        return cls(mean, torch.linalg.cholesky(covariance))

    @property
    def dim(self) -> int:
        return self.scale_tril.shape[0]

    def to(self, device: torch.device | str) -> GaussianTranslator:
        """This translator on ``device`` (its mean module moved in place, like ``nn.Module.to``)."""
        return replace(self, mean=self.mean.to(device), scale_tril=self.scale_tril.to(device))

    @torch.no_grad()
    def sample(self, z_cond: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One ``z_Θ`` per condition row: ``mean(z_Φ) + L ε``, ``ε ~ N(0, I)``."""
        shape = (z_cond.shape[0], self.dim)
        eps = placement.randn(shape, generator=generator, device=z_cond.device, dtype=z_cond.dtype)
        return self.mean(z_cond) + eps @ self.scale_tril.T

    @torch.no_grad()
    def shift(self, z_target: Tensor, z_cond: Tensor, z_cond_new: Tensor) -> Tensor:
        """(N4) for this model: keep the residual ``z − mean(c)``, add ``mean(c')``."""
        if z_cond.shape != z_cond_new.shape:
            raise ValueError(
                f"z_cond and z_cond_new must have equal shapes, got {tuple(z_cond.shape)} and "
                f"{tuple(z_cond_new.shape)}"
            )
        return z_target - self.mean(z_cond) + self.mean(z_cond_new)

    @torch.no_grad()
    def nll_per_dim(self, z_target: Tensor, z_cond: Tensor) -> float:
        """``−log p(z_Θ | z_Φ)`` in nats per dimension, averaged over the rows."""
        residual = z_target - self.mean(z_cond)
        white = torch.linalg.solve_triangular(self.scale_tril, residual.T, upper=False)  # (d, b)
        half_logdet = self.scale_tril.diagonal().log().sum()
        nll = 0.5 * white.pow(2).sum(0) + half_logdet + 0.5 * self.dim * math.log(2 * math.pi)
        return float(nll.mean()) / self.dim
