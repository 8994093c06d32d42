"""Self-Flow's training objective: dual-timestep scheduling and EMA self-distillation.

Chefer, Esser et al. 2026, *Self-Supervised Flow Matching for Scalable Multi-Modal Synthesis*
(arXiv 2603.06507), §3; the release's README ("per-token masking (25 % mask ratio)", "Teacher at
layer 20 (EMA), student at layer 8") and the maintainers' answers in the issues of
``black-forest-labs/Self-Flow`` (#7: the loss is mean(1 − cos); #11: t and s are not sorted).
Book convention throughout: t = 0 data, t = 1 noise, x_t = (1 − t)x₀ + tε, target ε − x₀.

1. **Dual-timestep scheduling (DTS).** Per image draw t, s ~ p(t) (here logit-normal, the
   model's own training density) and a random token mask M holding ``mask_ratio`` of the tokens.
   Tokens in M are noised to s, the others to t, with one ε; each token is conditioned on its own
   time (per-token adaLN) and regresses its own velocity: L_gen = E‖v_θ(x_{t,s,M}) − (ε − x₀)‖².
   t and s are not sorted, so every token's marginal time stays p(t).
2. **Self-distillation.** An EMA copy of the network (the teacher) sees the *homogeneous*,
   cleaner view x_{τ_min}, τ_min = min(t, s) (cleaner = smaller t here), same ε. The student's
   tokens after block ``student_layer`` pass the projector and are pulled toward the teacher's
   raw tokens after block ``teacher_layer`` (stop-gradient):
   L_rep = mean_tokens(1 − cos(proj(h_student), sg(h_teacher))).
3. L = L_gen + γ·L_rep, γ = 0.8.

Switches give the baselines from the same code: ``dts=False, self_distill=False`` is vanilla flow
matching (exactly chapter 17's rectified-flow loss with logit-normal times);
``self_distill=False`` is DTS alone (the counter-paper's "noise augmentation", Jiang et al.,
arXiv 2607.02508); ``attention_separation=True`` forbids attention between the two noise groups
in the student (that paper's Attention-Separation ablation).

Deviations from the release, whose training code is not published: the time density is
logit-normal(0, 1) (the SiT/REPA default is uniform; the paper's density is not stated), and
:func:`token_mask` puts exactly round(ratio · tokens) tokens in M (the release says "25 % mask
ratio" without saying whether that is a per-token coin or an exact count).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from esser_lab.config import check_fields
from esser_lab.diffusion.flow import logit_normal_t
from esser_lab.selfflow.model import SelfFlowDiT

__all__ = [
    "DualTimes",
    "LossTerms",
    "SelfFlowMethod",
    "cosine_loss",
    "draw_times",
    "ema_update",
    "make_teacher",
    "noise_tokens",
    "selfflow_loss",
    "separation_mask",
    "token_mask",
]


@dataclass(frozen=True)
class SelfFlowMethod:
    """The objective's settings. ``paper()``: the release (mask 0.25, γ 0.8, student block 8,
    teacher block 20 of 28). The teacher's EMA decay is not published: 0.9999 is SiT/REPA's EMA
    (marked unverified in the chapter)."""

    dts: bool = True
    self_distill: bool = True
    attention_separation: bool = False
    mask_ratio: float = 0.25
    gamma: float = 0.8
    student_layer: int = 8
    teacher_layer: int = 20
    ema_decay: float = 0.9999
    time_mean: float = 0.0
    time_std: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self)
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.ema_decay <= 1.0 or self.gamma < 0:
            raise ValueError(f"need ema_decay in [0, 1] and gamma ≥ 0, got {self}")
        if self.student_layer < 1 or self.teacher_layer < 1:
            raise ValueError("student_layer and teacher_layer are block numbers ≥ 1")
        if self.attention_separation and not self.dts:
            raise ValueError("attention separation splits the two noise groups of DTS: dts=True")

    @classmethod
    def paper(cls) -> SelfFlowMethod:
        return cls()

    def vanilla(self) -> SelfFlowMethod:
        """The same settings as plain flow matching (no DTS, no teacher)."""
        return replace(self, dts=False, self_distill=False, attention_separation=False)

    def dts_only(self) -> SelfFlowMethod:
        return replace(self, dts=True, self_distill=False)


class DualTimes(NamedTuple):
    """t, s (b,), the mask M (b, l) (True: noised to s) and each token's time (b, l)."""

    t: Tensor
    s: Tensor
    mask: Tensor
    per_token: Tensor

    @property
    def tau_min(self) -> Tensor:
        """The teacher's homogeneous time min(t, s) (b,): the cleaner of the two."""
        return torch.minimum(self.t, self.s)


def token_mask(
    batch: int, tokens: int, ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """(batch, tokens) booleans, exactly round(ratio·tokens) True per row, uniformly placed."""
    count = round(ratio * tokens)
    order = torch.rand(batch, tokens, generator=generator).argsort(dim=1)
    return order < count


def draw_times(
    batch: int,
    tokens: int,
    method: SelfFlowMethod,
    generator: torch.Generator | None = None,
) -> DualTimes:
    """DTS's times (§3): t, s ~ logit-normal, unsorted; M with ``mask_ratio`` of the tokens.
    Without DTS, s = t and M is empty (every token at t)."""
    t = logit_normal_t(batch, method.time_mean, method.time_std, generator=generator)
    if not method.dts:
        mask = torch.zeros(batch, tokens, dtype=torch.bool)
        return DualTimes(t, t.clone(), mask, repeat(t, "b -> b l", l=tokens))
    s = logit_normal_t(batch, method.time_mean, method.time_std, generator=generator)
    mask = token_mask(batch, tokens, method.mask_ratio, generator)
    per_token = torch.where(mask, s[:, None], t[:, None])
    return DualTimes(t, s, mask, per_token)


def noise_tokens(x0: Tensor, noise: Tensor, per_token: Tensor, patch_size: int) -> Tensor:
    """x_t = (1 − t)x₀ + tε with each pixel at its token's time (per_token (b, h·w) on the
    (h, w) token grid of patches ``patch_size``)."""
    grid = x0.shape[-1] // patch_size
    if per_token.shape != (x0.shape[0], grid * grid) or x0.shape[-2] != x0.shape[-1]:
        raise ValueError(
            f"per-token times must be (b, {grid * grid}) for images {tuple(x0.shape)}, got "
            f"{tuple(per_token.shape)}"
        )
    t = repeat(per_token, "b (h w) -> b 1 (h p) (w q)", h=grid, p=patch_size, q=patch_size)
    return (1 - t) * x0 + t * noise


def separation_mask(mask: Tensor) -> Tensor:
    """Attention Separation: token i may attend to j only in its own noise group;
    (b, 1, l, l) booleans, True = visible."""
    return (mask[:, :, None] == mask[:, None, :])[:, None]


def cosine_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """mean over batch and tokens of 1 − cos(prediction, target) along the width (issue #7)."""
    return (1 - F.cosine_similarity(prediction, target, dim=-1)).mean()


class LossTerms(NamedTuple):
    loss: Tensor
    gen: Tensor
    rep: Tensor  # 0 without self-distillation
    cosine: Tensor  # the alignment cos (1 − rep); NaN without self-distillation


def selfflow_loss(
    student: SelfFlowDiT,
    teacher: SelfFlowDiT | None,
    x0: Tensor,
    noise: Tensor,
    times: DualTimes,
    method: SelfFlowMethod,
) -> LossTerms:
    """L = L_gen + γ·L_rep on one batch (module docstring); ``teacher`` may be None when
    ``method.self_distill`` is off."""
    patch = student.config.patch_size
    x_mixed = noise_tokens(x0, noise, times.per_token, patch)
    mask = separation_mask(times.mask) if method.attention_separation else None
    layers = [method.student_layer] if method.self_distill else []
    out = student(x_mixed, times.per_token, return_features=layers, mask=mask)
    velocity, features = out if layers else (out, {})
    gen = (velocity - (noise - x0)).pow(2).mean()
    if not method.self_distill:
        zero = gen.new_zeros(())
        return LossTerms(gen, gen, zero, torch.full_like(zero, float("nan")))
    if teacher is None:
        raise ValueError("self-distillation needs the EMA teacher")
    tau = times.tau_min
    x_clean = noise_tokens(x0, noise, repeat(tau, "b -> b l", l=times.mask.shape[1]), patch)
    with torch.no_grad():
        _, teacher_features = teacher(x_clean, tau, return_features=[method.teacher_layer])
    target = teacher_features[method.teacher_layer].detach()
    rep = cosine_loss(student.project(features[method.student_layer]), target)
    return LossTerms(gen + method.gamma * rep, gen, rep, 1 - rep.detach())


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay·teacher + (1 − decay)·student, parameter by parameter."""
    pairs = list(zip(teacher.parameters(), student.parameters(), strict=True))
    torch._foreach_lerp_([t for t, _ in pairs], [s.detach() for _, s in pairs], 1.0 - decay)


def make_teacher(student: SelfFlowDiT) -> SelfFlowDiT:
    """A frozen copy of the student, in eval mode, that only :func:`ema_update` changes."""
    return copy.deepcopy(student).requires_grad_(False).eval()
