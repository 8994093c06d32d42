"""Multinomial diffusion on discrete codes: the forward process, its posterior and the loss of
ImageBART (Esser, Rombach, Blattmann & Ommer, NeurIPS 2021; arXiv 2108.08827), chapter 13.

A code index x ∈ {0, …, K − 1} (a VQGAN's codes) is corrupted by a chain of T steps; each step keeps
the token with probability α_t = 1 − β_t and otherwise redraws it uniformly from all K codes
(Hoogeboom et al. 2021; Sohl-Dickstein et al. 2015):

* (M1) one step: q(x_t | x_{t−1}) = Cat((1 − β_t) · onehot(x_{t−1}) + β_t / K);
* (M2) closed form: q(x_t | x_0) = Cat(ᾱ_t · onehot(x_0) + (1 − ᾱ_t) / K), ᾱ_t = ∏_{s ≤ t} α_s;
* (M3) posterior: q(x_{t−1} | x_t, x_0) ∝ (ᾱ_{t−1} onehot(x_0) + (1 − ᾱ_{t−1}) / K) ⊙
  (α_t onehot(x_t) + (1 − α_t) / K), normalised over the K codes;
* (M4) loss per transition: α_mix · KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) +
  (1 − α_mix) · CE(x_{t−1}, p_θ), averaged over tokens (the official ``compute_loss``: ``alpha``
  = 0 is the hard target x_{t−1} only, 1 the soft posterior only).

**Time convention** (the one thing a reader could get wrong). The chain is discrete and short
(T = 2…5 in the paper), so this module works with the **integer scale** t ∈ {0, 1, …, T} of the
official code: t = 0 is the data x_0, t = T the noisiest (pure noise for the ``geometric``
schedule, whose β_T = 1). Schedules are tensors of T + 1 entries indexed by t, with β_0 = 0 (so
ᾱ_0 = 1, the corner case of the official code). The transition model for scale t predicts x_{t−1}
from x_t. Against the continuous clock of the rest of the core (t ∈ [0, 1], t = 1 noise), scale
t sits at t / T, i.e. at the DDPM index n = t − 1 of :func:`~esser_lab.diffusion.index_to_time`.

Noise comes from an explicit ``torch.Generator`` (drawn on its device, moved to the data's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.checks import in_range, values_check_enabled
from esser_lab.nn import placement

__all__ = [
    "MultinomialSchedule",
    "forward_chain",
    "multinomial_loss",
    "multinomial_posterior",
    "q_step",
    "q_xt_probs",
    "q_xt_sample",
]


@dataclass(frozen=True)
class MultinomialSchedule:
    """β_t, α_t = 1 − β_t and ᾱ_t for t = 0 … T (float64, each of length T + 1; β_0 = 0).

    The presets build their tensors on the CPU, also inside a ``torch.device("meta")`` context.
    """

    betas: Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if not isinstance(b, Tensor) or b.dim() != 1 or b.numel() < 2:
            raise ValueError(f"betas must be a 1-D tensor of T + 1 ≥ 2 entries, got {b!r}")
        if float(b[0]) != 0.0:
            raise ValueError(f"β_0 must be 0 (t = 0 is the data), got {float(b[0])}")
        if bool(((b < 0) | (b > 1)).any()):
            raise ValueError(f"every β_t must lie in [0, 1], got {b.tolist()}")

    @property
    def T(self) -> int:  # noqa: N802 - the paper's symbol
        return self.betas.numel() - 1

    @property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @property
    def alphacum(self) -> Tensor:
        return torch.cumprod(self.alphas, 0)

    @classmethod
    def geometric(cls, T: int) -> MultinomialSchedule:  # noqa: N803
        """Sohl-Dickstein's schedule, the official ``redraw_prob: geometric``:
        β = [0, 1/T, 1/(T − 1), …, 1/2, 1], so that ᾱ_t = 1 − t/T and x_T is pure noise."""
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an int ≥ 1, got {T!r}")
        steps = torch.arange(T, 0, -1, dtype=torch.float64, device="cpu")  # T, T−1, …, 1
        zero = torch.zeros(1, dtype=torch.float64, device="cpu")
        return cls(torch.cat((zero, 1.0 / steps)))

    @classmethod
    def from_alphacum(cls, alphacum: Sequence[float]) -> MultinomialSchedule:
        """From ᾱ_0 = 1, ᾱ_1, …, ᾱ_T (the official ``redraw_prob: "alphacum:a0,a1,…"``):
        α_t = ᾱ_t / ᾱ_{t−1}, β_t = 1 − α_t."""
        a = torch.as_tensor(list(alphacum), dtype=torch.float64, device="cpu")
        if a.dim() != 1 or a.numel() < 2 or float(a[0]) != 1.0:
            raise ValueError(f"alphacum must start at ᾱ_0 = 1 and hold ≥ 2 values, got {alphacum}")
        if bool((a[1:] > a[:-1]).any()) or bool((a < 0).any()):
            raise ValueError(f"alphacum must be non-increasing in [0, 1], got {alphacum}")
        ratio = torch.where(a[:-1] > 0, a[1:] / a[:-1].clamp_min(1e-300), torch.zeros_like(a[1:]))
        return cls(torch.cat((torch.zeros(1, dtype=torch.float64, device="cpu"), 1.0 - ratio)))


def _check_codes(x: Tensor, name: str, num_codes: int) -> None:
    if not isinstance(x, Tensor) or x.is_floating_point() or x.is_complex():
        got = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{name} must be an integer tensor of code indices, got {got}")
    if not in_range(x, 0, num_codes):  # no host sync inside a training step (esser_lab.checks)
        raise ValueError(
            f"{name} must lie in [0, {num_codes}), got [{int(x.min())}, {int(x.max())}]"
        )


def _per_sample(values: Tensor, t: int | Tensor, like: Tensor, T: int) -> Tensor:  # noqa: N803
    """``values[t]`` as float32, shaped to broadcast against ``like`` (b, ...) plus a code axis."""
    if isinstance(t, Tensor):
        if t.is_floating_point() or t.dim() != 1 or t.shape[0] != like.shape[0]:
            raise ValueError(
                f"t must be an int or an integer tensor (b,) = ({like.shape[0]},), "
                f"got {t.dtype} {tuple(t.shape)}"
            )
        if not in_range(t, 0, T + 1):
            raise ValueError(f"scales must lie in [0, {T}], got {t.tolist()}")
        # the schedule lives on the host: a pinned copy to the device (no host sync)
        v = placement.to_device(values, like.device)[t.to(like.device)].float()
        return v.view(-1, *([1] * like.dim()))  # (b, 1, …, 1): one more axis for the codes
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= T:
        raise ValueError(f"t must be an int in [0, {T}], got {t!r}")
    return values[t].float().to(like.device).view(*([1] * (like.dim() + 1)))


def q_step(
    x_prev: Tensor,
    beta: float,
    num_codes: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(M1): x_t from x_{t−1}: each token redrawn uniformly from the K codes with probability β.

    As the official ``get_scales``: a Bernoulli(β) redraw mask and a uniform index per token (a
    redrawn token may land on its old value, so the keep probability is 1 − β + β / K).
    """
    _check_codes(x_prev, "x_prev", num_codes)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    redraw = placement.rand(x_prev.shape, generator=generator, device=x_prev.device) < beta
    noise = placement.randint(num_codes, x_prev.shape, generator=generator, device=x_prev.device)
    return torch.where(redraw, noise, x_prev)


def forward_chain(
    x0: Tensor,
    schedule: MultinomialSchedule,
    num_codes: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The chain x_0, x_1, …, x_T by (M1), stacked: (T + 1, b, ...) (as the official code)."""
    _check_codes(x0, "x0", num_codes)
    chain = [x0]
    for t in range(1, schedule.T + 1):
        chain.append(q_step(chain[-1], float(schedule.betas[t]), num_codes, generator))
    return torch.stack(chain)


def q_xt_probs(
    x0: Tensor, t: int | Tensor, schedule: MultinomialSchedule, num_codes: int
) -> Tensor:
    """(M2): q(x_t | x_0) as probabilities (..., K) for codes ``x0`` (b, ...)."""
    _check_codes(x0, "x0", num_codes)
    abar = _per_sample(schedule.alphacum, t, x0, schedule.T)
    return abar * F.one_hot(x0, num_codes).float() + (1 - abar) / num_codes


def q_xt_sample(
    x0: Tensor,
    t: int | Tensor,
    schedule: MultinomialSchedule,
    num_codes: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A draw of x_t ~ q(x_t | x_0) in one step (M2): keep x_0 with probability ᾱ_t, else uniform.

    Same distribution as t steps of :func:`q_step` (tested), one random draw per token.
    """
    _check_codes(x0, "x0", num_codes)
    abar = _per_sample(schedule.alphacum, t, x0, schedule.T)[..., 0]  # (b, 1, …) or scalar
    keep = placement.rand(x0.shape, generator=generator, device=x0.device) < abar
    noise = placement.randint(num_codes, x0.shape, generator=generator, device=x0.device)
    return torch.where(keep, x0, noise)


def multinomial_posterior(
    x_t: Tensor, x0: Tensor, t: int | Tensor, schedule: MultinomialSchedule, num_codes: int
) -> Tensor:
    """(M3): q(x_{t−1} | x_t, x_0) as probabilities (..., K), for t ≥ 1.

    The normaliser is Σ_k of the product, which equals q(x_t | x_0) at the observed x_t (M2);
    the official code asserts that identity, the tests check the whole formula against Bayes.
    """
    _check_codes(x_t, "x_t", num_codes)
    _check_codes(x0, "x0", num_codes)
    if x_t.shape != x0.shape:
        raise ValueError(
            f"x_t and x0 must have one shape, got {tuple(x_t.shape)}, {tuple(x0.shape)}"
        )
    if isinstance(t, int) and not isinstance(t, bool) and t < 1:
        raise ValueError(f"the posterior needs t ≥ 1 (x_{{t−1}} exists), got {t}")
    if isinstance(t, Tensor) and not in_range(t, 1, torch.iinfo(torch.int64).max):
        raise ValueError(f"the posterior needs every t ≥ 1, got {t.tolist()}")
    t_prev = t - 1
    abar_prev = _per_sample(schedule.alphacum, t_prev, x0, schedule.T)
    alpha_t = _per_sample(schedule.alphas, t, x0, schedule.T)
    from_x0 = abar_prev * F.one_hot(x0, num_codes).float() + (1 - abar_prev) / num_codes
    to_xt = alpha_t * F.one_hot(x_t, num_codes).float() + (1 - alpha_t) / num_codes
    unnormalised = from_x0 * to_xt  # (..., K)
    return unnormalised / unnormalised.sum(-1, keepdim=True)


def multinomial_loss(
    logits: Tensor, target: Tensor, posterior: Tensor, alpha: float | Tensor
) -> Tensor:
    """(M4): α · KL(posterior ‖ softmax(logits)) + (1 − α) · CE(target), mean over tokens, batch.

    ``logits`` (b, l, K) of p_θ(x_{t−1} | x_t), ``target`` (b, l) the sampled x_{t−1},
    ``posterior`` (b, l, K) from (M3); ``alpha`` a float or a per-sample (b,) tensor (the mix of
    each sample's scale). As the official ``compute_loss``, KL and CE are summed over codes,
    averaged over tokens and then over the batch.
    """
    if logits.dim() != 3 or posterior.shape != logits.shape or target.shape != logits.shape[:2]:
        raise ValueError(
            f"need logits (b, l, K), target (b, l), posterior (b, l, K); got "
            f"{tuple(logits.shape)}, {tuple(target.shape)}, {tuple(posterior.shape)}"
        )
    alpha = torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)
    if alpha.dim() > 1 or (alpha.dim() == 1 and alpha.shape[0] != logits.shape[0]):
        raise ValueError(f"alpha must be a float or a (b,) tensor, got {tuple(alpha.shape)}")
    if values_check_enabled(alpha, None) and bool(((alpha < 0) | (alpha > 1)).any()):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    log_p = F.log_softmax(logits, dim=-1)
    hard = F.nll_loss(log_p.transpose(1, 2), target, reduction="none").mean(-1)  # (b,)
    soft = F.kl_div(log_p, posterior, reduction="none").sum(-1).mean(-1)  # (b,)
    return (alpha * soft + (1 - alpha) * hard).mean()
