"""The RoDi method as plain functions: the ELBO, the MI estimate, the constraint, the updates.

Esser, Haux & Ommer, ICCV 2019 (arXiv:1910.10223), as the official PyTorch port writes it
(``CompVis/robust-disentangling``, ``rodi/pt/losses.py``: ``Elbo``, ``MI``, ``MIMin``, ``RoDi``).
We could not check the paper's own equation numbers, so the equations are numbered (R1)–(R6) in
the order chapter 4 derives them:

* (R1) ELBO:  L = Σ(x − D(π, α))² + γ·KL(q(π|x) ‖ N(0, I)) + ½Σ[(x − D_π(sg π))² + (x − D_α(α))²]
* (R2) critic loss:  ½ E[softplus(−T(π, α)) + softplus(T(π, α̃))],  α̃ = α of another pair
* (R3) MI estimate:  Î = E[T(π, α)], the mean logit on joint pairs
* (R4) augmented Lagrangian of Î₁ ≤ ε:  1[μc + λ ≥ 0]·(λc + ½μc²),  c = Î₁ − ε
* (R5) dual ascent:  λ ← max(0, λ + μc)
* (R6) γ update:  γ ← max(0, γ + l_γ·(Ī₂ − Ī₁ − b_γ)),  Ī = bias-corrected running means

Î₁ comes from the estimator the π-encoder is trained against (its gradient flows into π);
Î₂ from an independent estimator that only ever sees detached codes. (R4)–(R6) act only after
the warm-up. Sums run over pixels (or latent entries) and are averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from esser_lab.rodi.data import Triplets
from esser_lab.rodi.model import MIEstimator, RoDi, RoDiOutput

Number = float | torch.Tensor  # a Python float, or a 0-dim float64 tensor on the model's device


def at_least(floor: float, value: Number) -> Number:
    """``max(floor, value)``, for a tensor without reading it back to the host.

    ``torch.where(value > floor, value, floor)`` is what Python's ``max`` does, NaN included
    (``max(0.0, nan)`` is 0.0), so float64 tensors give bitwise the floats of the float code.
    """
    if isinstance(value, torch.Tensor):
        return torch.where(value > floor, value, floor)
    return max(floor, value)


@dataclass
class ElboTerms:
    """(R1) for one batch; every term is a batch mean of a per-image sum."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    auxiliary: torch.Tensor


def elbo_loss(x: torch.Tensor, output: RoDiOutput, gamma: float | torch.Tensor) -> ElboTerms:
    """(R1), official ``Elbo``: summed squared error + γ·KL + the two auxiliary decoders.

    The auxiliary α-decoder trains the α-encoder to explain x on its own (its gradient flows);
    the auxiliary π-decoder sees a detached π and only shows what π carries.
    """
    if output.image.shape != x.shape:
        raise ValueError(f"x {tuple(x.shape)} and output {tuple(output.image.shape)} differ")
    b = x.shape[0]
    reconstruction = (x - output.image).pow(2).sum() / b
    auxiliary = 0.5 * ((x - output.aux_pi).pow(2) + (x - output.aux_alpha).pow(2)).sum() / b
    kl = output.posterior.kl().mean()
    loss = reconstruction + gamma * kl + auxiliary
    return ElboTerms(loss, reconstruction.detach(), kl.detach(), auxiliary.detach())


def shuffle_pairs(alpha: torch.Tensor) -> torch.Tensor:
    """α of *other* pairs: the batch reversed (official: ``torch.flip(z_al, dims=(0,))``)."""
    return torch.flip(alpha, dims=(0,))


def mi_logits(
    estimator: MIEstimator, pi: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic logits on joint pairs T(π_i, α_i) and on shuffled pairs T(π_i, α_{b−1−i}).

    The same as ``estimator(pi, alpha), estimator(pi, shuffle_pairs(alpha))``, at half the cost.
    """
    return estimator.pair_logits(pi, alpha)


@dataclass
class CriticTerms:
    """(R2) and (R3) for one batch."""

    loss: torch.Tensor  # the classifier's logistic loss
    mi: torch.Tensor  # Î = mean joint logit (detached: a reading, not a loss)
    accuracy: torch.Tensor  # fraction of pairs classified right (joint > 0, shuffled < 0)


def critic_loss(joint: torch.Tensor, marginal: torch.Tensor) -> CriticTerms:
    """(R2) the logistic loss of joint vs shuffled pairs, and (R3) the MI estimate.

    At the optimum the logit is log p(π, α) / (p(π) p(α)), whose mean over joint pairs is the
    mutual information; a critic that cannot tell the pairs apart has logits ≈ 0.
    """
    loss = 0.5 * (F.softplus(-joint) + F.softplus(marginal)).mean()
    accuracy = 0.5 * ((joint > 0).float().mean() + (marginal < 0).float().mean())
    return CriticTerms(loss, joint.mean().detach(), accuracy.detach())


def constraint_penalty(
    mi: torch.Tensor, epsilon: float, lambda_: float | torch.Tensor, mu: float, warm: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(R4) the augmented-Lagrangian term for MI ≤ ε; returns ``(penalty, c)``.

    ``c = mi − ε``. The term is ``λc + ½μc²`` where ``μc + λ ≥ 0`` and 0 elsewhere (the inactive
    branch of the inequality constraint), and 0 during the warm-up (official ``MIMin``).
    """
    constraint = mi - epsilon
    if not warm:
        return torch.zeros_like(constraint), constraint.detach()
    active = (mu * constraint + lambda_ >= 0).detach().to(constraint.dtype)
    penalty = active * (lambda_ * constraint + 0.5 * mu * constraint**2)
    return penalty, constraint.detach()


def dual_update(lambda_: Number, constraint: Number, mu: float, warm: bool) -> Number:
    """(R5) dual ascent on the multiplier: ``λ ← max(0, λ + μ·c)`` after the warm-up.

    Python floats, or float64 tensors (a training step keeps them on the device: no host sync).
    """
    if not warm:
        return lambda_
    return at_least(0.0, lambda_ + mu * constraint)


def gamma_update(
    gamma: Number,
    mi_honest: Number,
    mi_attacked: Number,
    l_gamma: float,
    b_gamma: float,
    warm: bool,
) -> Number:
    """(R6) ``γ ← max(0, γ + l_γ·(Ī₂ − Ī₁ − b_γ))`` after the warm-up.

    When the honest estimator Ī₂ sees more information than the attacked one Ī₁, the π-encoder
    is fooling Ī₁ rather than removing the information: raise the bottleneck weight γ. When the
    two agree, γ decays by ``l_γ·b_γ`` per step: the least regularisation that still works.
    """
    if not warm:
        return gamma
    return at_least(0.0, gamma + l_gamma * (mi_honest - mi_attacked - b_gamma))


def ema_update(
    average: Number, count: Number, value: Number, decay: float
) -> tuple[Number, Number]:
    """A bias-corrected running mean (official ``MI.update_ema``); returns ``(average, count)``.

    With ``count`` updates so far, the result equals the decay-weighted mean of all values seen,
    so the first value is taken as it is (no pull towards the initial 0). Python numbers, or
    float64 tensors (``count`` too) for a step that stays on the device.
    """
    count = count + 1
    decay_power = decay**count
    average = ((decay - decay_power) * average + (1.0 - decay) * value) / (1.0 - decay_power)
    return average, count


@torch.no_grad()
def transfer(model: RoDi, x_pose: torch.Tensor, x_appearance: torch.Tensor) -> torch.Tensor:
    """Pose of ``x_pose``, appearance of ``x_appearance``: D(mean of q(π | x_pose), α(x_app)).

    # official code: ``VAE.forward`` decodes a posterior *sample*; we decode the mean, so a
    # transfer is deterministic (as chapter 1 does).
    """
    posterior, alpha = model.encode(x_pose, x_appearance)
    return model.decode(posterior.mean, alpha)


@torch.no_grad()
def transfer_scores(model: RoDi, test: Triplets) -> dict[str, float]:
    """Transfer and reconstruction MSE on ``test`` ([-1, 1] pixels) and their gap, the leak.

    A π that carries x's appearance makes transfers keep x's colours: the transfer error rises
    above the reconstruction error. ``leak = transfer − reconstruction`` measures that shortcut.
    """
    out = transfer(model, test.x.image, test.y_view.image)
    rec = reconstruct(model, test.x.image, test.x_view.image)
    transfer_mse = (out - test.truth.image).pow(2).mean().item()
    reconstruction_mse = (rec - test.x.image).pow(2).mean().item()
    return {
        "transfer": transfer_mse,
        "reconstruction": reconstruction_mse,
        "leak": transfer_mse - reconstruction_mse,
    }


@torch.no_grad()
def reconstruct(model: RoDi, x: torch.Tensor, x_alpha: torch.Tensor) -> torch.Tensor:
    """Decode x's own pose with the appearance of its partner view ``x_alpha``."""
    return transfer(model, x, x_alpha)
