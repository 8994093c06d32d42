"""``LitLADD``: the Lightning system of latent adversarial diffusion distillation (chapter 18).

Sauer et al., *Fast High-Resolution Image Synthesis with Latent Adversarial Diffusion
Distillation* (SIGGRAPH Asia 2024; arXiv 2403.12015). Manual optimisation, as the book's other
GANs (chapter 8's ``LitPartDiscovery``, chapter 9's ``LitRoDi``): each batch of "real" latents
and their caption tokens takes

1. a student step: x̂₀ from the student at one of its timesteps (L1), re-noised to t̂ (L2),
   scored by the discriminator whose frozen teacher stays in the graph, L_G = −E D(fake) (L4);
2. a discriminator step on the heads only: real x₀ and the detached x̂₀, each re-noised to its
   own t̂, hinge loss (L3) on every head's per-token logits; both go through the discriminator
   in one pass (:meth:`~esser_lab.ladd.model.LADDDiscriminator.pair`: one teacher feature
   pass over the concatenated batch, the heads' batch norm keeping real and fake apart).

The discriminator's fake is re-noised afresh, not the student's re-noised x̂₀ reused: sharing
that draw between the two players (one discriminator pass less per step) made the 1-step
student worse than the 1-step teacher in 3 of 3 seeds at tiny scale (FID-style 8.3, 29, 12.5
against 6.5; 3.8–6.0 with fresh draws), so the pass is not saved there.

The student's training time is drawn uniformly from its grid (LADD and SANA-Sprint give t = 1
extra weight; ours, stated).

Adam for both with β = (0, 0.99) (StyleGAN-T's and our 2-D toy's; the paper gives no optimiser
settings): β₁ = 0 keeps no momentum across the two players' alternating updates.
The teacher never enters an optimiser; its weights do not change (tested).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from esser_lab.ladd.method import (
    discriminator_hinge,
    generator_hinge,
    renoise,
    student_denoise,
    student_timesteps,
)
from esser_lab.ladd.model import LADDConfig, LADDDiscriminator
from esser_lab.sd3.model import MMDiT
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitLADD", "fit_ladd"]


class LitLADD(ResumableModule):
    """Distils ``teacher`` (an MMDiT, frozen) into a student initialised as its copy.

    ``text_encoder``: the frozen encoder whose ``encode(tokens)`` gives ``{"context", "pooled"}``.
    Batches are dicts with ``"latent"`` (b, c, h, w), the real (synthetic) latents, and
    ``"tokens"`` (b, L). ``history`` keeps both losses and the mean logits of every step.
    """

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(self, teacher: MMDiT, text_encoder, config: LADDConfig) -> None:  # noqa: ANN001
        super().__init__()
        if not isinstance(teacher, MMDiT):
            raise TypeError(f"teacher must be an MMDiT, got {type(teacher).__name__}")
        if not isinstance(config, LADDConfig):
            raise TypeError(f"config must be a LADDConfig, got {type(config).__name__}")
        if not callable(getattr(text_encoder, "encode", None)):
            raise TypeError(f"text_encoder needs .encode, got {type(text_encoder).__name__}")
        self.automatic_optimization = False
        self.config = config
        self.student = copy.deepcopy(teacher).requires_grad_(True).train()
        self.discriminator = LADDDiscriminator(copy.deepcopy(teacher), config)
        if isinstance(text_encoder, torch.nn.Module):
            text_encoder.requires_grad_(False).eval()
        self.text_encoder = text_encoder
        self.register_buffer("times", student_timesteps(config.student_steps, config.shift))
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if not isinstance(batch, dict) or not {"latent", "tokens"} <= set(batch):
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(f"a batch is a dict with 'latent' and 'tokens', got {got}")
        if self.generator is None:
            seed = int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)
        c, g = self.config, self.generator
        student_opt, disc_opt = self.optimizers()
        x0 = batch["latent"]
        with torch.no_grad():
            cond = self.text_encoder.encode(batch["tokens"])

        # (1) the student: gradient through the frozen teacher's features (no no_grad here);
        # the heads' gradient of L_G is cleared before step (2) (a backward restricted to the
        # student's parameters would leave DDP waiting for the heads' gradients)
        x0_hat, _ = student_denoise(self.student, x0, cond, self.times, g)
        fake_t, t_hat = renoise(x0_hat, c.disc_mean, c.disc_std, g)
        loss_g = generator_hinge(self.discriminator(fake_t, t_hat, cond))
        student_opt.zero_grad()
        self.manual_backward(loss_g)
        student_opt.step()

        # (2) the heads: real and (detached) fake, each re-noised to its own t̂, in one pass
        real_t, t_real = renoise(x0, c.disc_mean, c.disc_std, g)
        fake_t, t_fake = renoise(x0_hat.detach(), c.disc_mean, c.disc_std, g)
        real_logits, fake_logits = self.discriminator.pair(real_t, t_real, fake_t, t_fake, cond)
        loss_d = discriminator_hinge(real_logits, fake_logits)
        disc_opt.zero_grad()
        self.manual_backward(loss_d)
        # the bare torch optimizer: Lightning counts every wrapped step in ``global_step``, which
        # counts student steps only (it drives ``max_steps``)
        disc_opt.optimizer.step()

        logs = {
            "loss_g": loss_g.detach(),
            "loss_d": loss_d.detach(),
            "real_logit": real_logits.detach().mean(),
            "fake_logit": fake_logits.detach().mean(),
        }
        self.history.append({"step": self.global_step, **logs})
        if log_now(self):
            self.log_dict(logs, on_step=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201
        c = self.config
        student = torch.optim.Adam(self.student.parameters(), lr=c.lr_student, betas=c.betas)
        heads = torch.optim.Adam(self.discriminator.heads.parameters(), lr=c.lr_disc, betas=c.betas)
        return [student, heads]


def fit_ladd(
    teacher: MMDiT,
    text_encoder,  # noqa: ANN001
    config: LADDConfig,
    latents: Tensor,
    tokens: Tensor,
    scale,  # noqa: ANN001 (esser_lab.scale.Scale)
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
) -> LitLADD:
    """Train one student from ``seed`` for ``steps`` student steps on ``latents`` (n, c, h, w)
    with their caption ``tokens`` (n, L), shuffled by ``seed``; returned in eval mode on the
    device it trained on (``scale.device``: Lightning's teardown leaves it on the CPU) with the
    wall seconds of training in ``.seconds``."""
    import time

    from esser_lab.data.modules import batch_loader
    from esser_lab.training import seed_everything
    from esser_lab.training.trainer import make_trainer

    if latents.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"one caption per latent: {latents.shape[0]} latents, {tokens.shape[0]} tokens"
        )
    seed_everything(seed)
    system = LitLADD(teacher, text_encoder, config)
    loader = batch_loader(
        {"latent": latents, "tokens": tokens}, batch_size, shuffle=True, seed=seed
    )
    start = time.perf_counter()
    trainer = make_trainer(
        scale, steps, progress_every=max(steps // 2, 1), progress_keys=("loss_g", "loss_d")
    )
    trainer.fit(system, loader)
    system.seconds = time.perf_counter() - start
    return system.to(scale.device).eval()
