"""LADD's objective and sampler as plain functions (chapter 18).

Sauer, Boesel, Dockhorn, Blattmann, Esser & Rombach, *Fast High-Resolution Image Synthesis with
Latent Adversarial Diffusion Distillation* (SIGGRAPH Asia 2024; arXiv 2403.12015), Sec. 3.
No official code; the equations are labelled (L1)–(L4) here:

* (L1) the student: a latent x₀ ("real": the teacher's own guided samples, Sec. 3.3) is noised
  to one of the student's fixed timesteps t ∈ {t_1 = 1, …, t_n} (:func:`student_timesteps`),
  x_t = (1 − t) x₀ + t ε, and the student, a copy of the teacher, predicts
  x̂₀ = x_t − t · v_θ(x_t, t, c), unguided (ADD's training input, written for rectified flow);
* (L2) re-noising: fake x̂₀ and real x₀ are both noised to t̂ ~ logit-normal(m, s) (Sec. 3.2:
  shifted towards high noise, m > 0), x_t̂ = (1 − t̂) x + t̂ ε̂;
* (L3) the hinge loss of the discriminator D (:class:`~esser_lab.ladd.model.LADDDiscriminator`):
  L_D = E relu(1 − D(real)) + E relu(1 + D(fake)), the mean over samples, heads and tokens (D
  gives one logit per token of every head, as StyleGAN-T's and ADD's discriminators);
* (L4) the student's adversarial loss L_G = −E D(fake); no distillation loss (Sec. 3.3: with
  synthetic data the adversarial loss alone suffices).

At inference the student takes n Euler steps on its grid (:func:`sample_student`, with the
training ``shift`` so that it visits exactly the times it was trained at): each step is
x ← x + (t_{i+1} − t_i) v, i.e. x̂₀ re-noised along the *predicted* noise. Deviations (ours,
stated): ADD re-noises x̂₀ with fresh noise between steps, this sampler is deterministic; the
training times are drawn uniformly from the grid, where LADD and SANA-Sprint give t = 1 extra
weight (SANA-Sprint: ``largest_timestep_prob`` 0.5).
Time: t = 1 noise, t = 0 data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.diffusion import euler_solve, rf_sample, time_grid
from esser_lab.diffusion.densities import logit_normal
from esser_lab.nn import placement

__all__ = [
    "LADDLosses",
    "discriminator_hinge",
    "generator_hinge",
    "renoise",
    "sample_student",
    "student_denoise",
    "student_timesteps",
    "synthesize",
]


def student_timesteps(steps: int, shift: float = 1.0) -> Tensor:
    """The student's ``steps`` fixed times, float32 (steps,): the uniform grid 1, 1 − 1/n, …,
    1/n, shifted (SD3 Eq. 23), e.g. 4 steps at shift 1: 1, 0.75, 0.5, 0.25."""
    return time_grid(steps, shift=shift)[:-1].float()


def student_denoise(
    student: nn.Module,
    x0: Tensor,
    cond: Mapping[str, Tensor],
    times: Tensor,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """(L1): ``(x̂₀, t)`` for a batch of latents ``x0`` (b, c, h, w): each noised to a time drawn
    uniformly from ``times`` (:func:`student_timesteps`), then denoised in one student call."""
    if times.dim() != 1 or not len(times):
        raise ValueError(f"times must be a non-empty (n,) tensor, got {tuple(times.shape)}")
    b = x0.shape[0]
    index = placement.randint(len(times), (b,), generator=generator, device=x0.device)
    t = times.to(x0.device, x0.dtype)[index]
    noise = placement.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = rf_sample(x0, noise, t)
    v = student(x_t, t, cond)
    return x_t - t.view(-1, 1, 1, 1) * v, t


def renoise(
    x: Tensor, mean: float, std: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(L2): ``(x_t̂, t̂)`` with t̂ ~ logit-normal(mean, std) (b,) and fresh noise."""
    t_hat = logit_normal(mean, std).sample(x.shape[0], generator, device=x.device).to(x.dtype)
    noise = placement.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return rf_sample(x, noise, t_hat), t_hat


def discriminator_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """(L3): E relu(1 − D(real)) + E relu(1 + D(fake))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_hinge(fake_logits: Tensor) -> Tensor:
    """(L4): −E D(fake)."""
    return -fake_logits.mean()


@dataclass(frozen=True)
class LADDLosses:
    """One step's numbers: the student's and the discriminator's losses, mean logits."""

    generator: Tensor
    discriminator: Tensor
    real_logit: Tensor
    fake_logit: Tensor


@torch.no_grad()
def sample_student(
    student: nn.Module,
    noise: Tensor,
    cond: Mapping[str, Tensor] | None,
    steps: int,
    *,
    shift: float,
) -> Tensor:
    """x₀ in ``steps`` unguided student calls: Euler on the student's grid (every call at a time
    of :func:`student_timesteps` with the same ``shift`` as training, then 0); 1 step is
    x̂₀ = ε − v(ε, 1, c). ``noise`` and ``cond`` are moved to the student's device (a module
    with parameters; a plain function keeps them where they are)."""
    parameter = next(iter(student.parameters()), None) if isinstance(student, nn.Module) else None
    if parameter is not None:
        noise = noise.to(parameter.device)
        if cond is not None:
            cond = {k: v.to(parameter.device) for k, v in cond.items()}
    return euler_solve(student, noise, steps, cond, shift=shift, grid="uniform")


@torch.no_grad()
def synthesize(
    teacher: nn.Module,
    cond: Mapping[str, Tensor],
    null: Mapping[str, Tensor],
    shape: tuple[int, ...],
    *,
    steps: int,
    guidance: float,
    shift: float = 1.0,
    seed: int = 0,
    batch: int = 512,
) -> Tensor:
    """The "real" latents of LADD (Sec. 3.3): the teacher's guided samples for ``cond`` (b rows),
    Euler with ``steps`` calls on the shifted uniform grid, classifier-free guidance ``guidance``
    against ``null`` (one row), from noise seeded by ``seed``; in chunks of ``batch``."""
    from esser_lab.diffusion.guidance import classifier_free_guidance

    b = cond["pooled"].shape[0]
    noise = torch.randn((b, *shape), generator=torch.Generator().manual_seed(seed))
    device = next(teacher.parameters()).device
    guided = classifier_free_guidance(teacher, guidance, {k: v.to(device) for k, v in null.items()})
    out = []
    for start in range(0, b, batch):
        part = {k: v[start : start + batch].to(device) for k, v in cond.items()}
        z = noise[start : start + batch].to(device)
        out.append(euler_solve(guided, z, steps, part, shift=shift, grid="uniform").cpu())
    return torch.cat(out)
