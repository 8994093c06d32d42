"""LADD's discriminator: the frozen teacher's token features with light trainable heads.

Sauer, Boesel, Dockhorn, Blattmann, Esser & Rombach, *Fast High-Resolution Image Synthesis with
Latent Adversarial Diffusion Distillation* (SIGGRAPH Asia 2024; arXiv 2403.12015), Sec. 3.2
("generative features"). No official code is released; this is our reading of the paper:

* the **feature network** is the frozen teacher itself (an :class:`~esser_lab.sd3.model.MMDiT`),
  run on a latent re-noised to t̂; the image tokens after each block of
  :attr:`LADDConfig.head_blocks` are reshaped to their 2-D patch grid ``(b, d, h, w)``;
* each of those maps goes to an independent :class:`DiscriminatorHead`, the StyleGAN-T / ADD head
  (official ``DiscHead`` of github.com/autonomousvision/stylegan-t, written here in 2-D: spectral-
  norm Conv(k = 1) → residual [spectral-norm Conv(k) → local batch norm → LeakyReLU(0.2)] → a
  projection onto the condition), conditioned on the noise level and the pooled text. Our choice:
  the condition vector is the frozen teacher's own adaLN input c = t_emb(1000·t̂) + y_emb(pooled),
  which already embeds both; the paper names the inputs, not how they enter;
* every head gives one logit per token (grid position) and the heads' logits are concatenated,
  ``D(x) (b, heads · h · w)``, so that the hinge loss is taken per token and head and then
  averaged, as StyleGAN-T's and ADD's losses.

Deviations from StyleGAN-T's head (ours, stated): its residual convolution runs over a 1-D
token sequence with circular padding, ours over the 2-D patch grid with zero padding; its local
batch norm groups ``ceil(b / 8)`` consecutive samples, ours groups 8 consecutive samples when 8
divides the batch and the whole batch otherwise.

The teacher is frozen with ``requires_grad_(False)`` and is **never** run under ``no_grad`` on the
fake branch: the generator's gradient flows through its (frozen) layers into the student.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from esser_lab.config import check_fields
from esser_lab.sd3.model import MMDiT

__all__ = [
    "BatchNormLocal",
    "DiscriminatorHead",
    "LADDConfig",
    "LADDDiscriminator",
    "token_features",
]


@dataclass(frozen=True)
class LADDConfig:
    """LADD's settings. Defaults: the paper's SD3-Turbo where it states them (4 student steps,
    t̂ ~ logit-normal shifted towards noise, hinge loss, no guidance); [unverified] marks our
    reading where the paper gives no number.

    ``student_steps``: the student's fixed timesteps, the uniform grid 1, 1 − 1/n, … shifted by
    ``shift`` (the paper gives no shift: 3 is SD3.5-Large-Turbo's inference setting, 4 Euler
    steps, in the official ``sd3_infer.py``; the student trains and samples on the same grid);
    ``disc_mean``, ``disc_std``: the logit-normal of the re-noising t̂ [recall: m = 1, s = 1];
    ``head_blocks``: the teacher blocks whose image tokens feed a head (None: every block);
    ``head_kernel``: the residual conv's kernel (StyleGAN-T: 9 over 1-D tokens; 3 on a 2-D grid);
    ``cmap_dim``: the projection's width (StyleGAN-T: 64); ``virtual_batch``: the local batch
    norm's group (StyleGAN-T: 8); ``lr_student``, ``lr_disc``, ``betas``: Adam's (the paper's
    values are not given: [unverified]; β₁ = 0 as StyleGAN-T and ADD's discriminators).
    """

    student_steps: int = 4
    shift: float = 3.0
    disc_mean: float = 1.0
    disc_std: float = 1.0
    head_blocks: tuple[int, ...] | None = None
    head_kernel: int = 3
    cmap_dim: int = 64
    virtual_batch: int = 8
    lr_student: float = 1e-5
    lr_disc: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.student_steps < 1:
            raise ValueError(f"student_steps must be ≥ 1, got {self.student_steps}")
        if not self.shift > 0 or not self.disc_std > 0:
            raise ValueError(f"shift and disc_std must be > 0, got {self.shift}, {self.disc_std}")
        if self.head_kernel < 1 or self.head_kernel % 2 == 0:
            raise ValueError(f"head_kernel must be odd and ≥ 1, got {self.head_kernel}")
        if self.cmap_dim < 1 or self.virtual_batch < 1:
            raise ValueError(f"cmap_dim and virtual_batch must be ≥ 1, got {self}")
        if not self.lr_student > 0 or not self.lr_disc > 0:
            raise ValueError(f"learning rates must be > 0, got {self.lr_student}, {self.lr_disc}")
        if self.head_blocks is not None and (
            not self.head_blocks or len(set(self.head_blocks)) != len(self.head_blocks)
        ):
            raise ValueError(f"head_blocks must be distinct block indices, got {self.head_blocks}")

    @classmethod
    def paper(cls) -> LADDConfig:
        """SD3-Turbo's stated choices (4 steps, high-noise t̂, no guidance, hinge loss) with
        SD3.5-Large-Turbo's inference shift 3; the learning rates and β are ours."""
        return cls()

    @classmethod
    def small(cls) -> LADDConfig:
        return replace(cls(), shift=1.0, lr_student=1e-4, lr_disc=1e-3)

    @classmethod
    def tiny(cls) -> LADDConfig:
        """The toy: the training resolution of the teacher (shift 1), larger learning rates."""
        return replace(cls(), shift=1.0, lr_student=1e-4, lr_disc=2e-3)


class BatchNormLocal(nn.Module):
    """Batch norm over groups of ``virtual_batch`` samples and the grid, no running statistics
    (StyleGAN-T's ``BatchNormLocal``): ``(b, c, h, w) → (b, c, h, w)``. A batch that the group
    does not divide is normalised as one group. ``parts``: the batch is that many equal batches
    side by side (the discriminator's real and fake), each grouped as if it came alone."""

    def __init__(self, channels: int, virtual_batch: int = 8, eps: float = 1e-5) -> None:
        super().__init__()
        self.virtual_batch, self.eps = virtual_batch, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, parts: int = 1) -> Tensor:
        b = x.shape[0]
        if parts < 1 or b % parts:
            raise ValueError(f"a batch of {b} cannot be {parts} equal parts")
        part = b // parts
        groups = parts * (part // self.virtual_batch if part % self.virtual_batch == 0 else 1)
        # each group's channels side by side, (n, g·c, h, w): one batch norm in training mode
        # normalises every (group, channel) over its n samples and the grid (biased variance),
        # with the affine weight and bias repeated per group
        side = rearrange(x, "(g n) c h w -> n (g c) h w", g=groups)
        weight, bias = self.weight.repeat(groups), self.bias.repeat(groups)
        side = F.batch_norm(side, None, None, weight, bias, training=True, eps=self.eps)
        return rearrange(side, "n (g c) h w -> (g n) c h w", g=groups)


def _block(channels: int, kernel: int, virtual_batch: int) -> nn.Sequential:
    conv = spectral_norm(nn.Conv2d(channels, channels, kernel, padding=kernel // 2))
    return nn.Sequential(conv, BatchNormLocal(channels, virtual_batch), nn.LeakyReLU(0.2))


def _run(block: nn.Sequential, x: Tensor, parts: int) -> Tensor:
    conv, norm, act = block
    return act(norm(conv(x), parts))


class DiscriminatorHead(nn.Module):
    """One head: ``(b, d, h, w)`` features and a ``(b, cond_dim)`` condition → ``(b, h·w)``
    logits, one per grid position.

    h = Conv₁(x); h = (h + block(h)) / √2; logits = ⟨Conv_cls(h), W c⟩ / √cmap_dim per grid
    position (projection conditioning, StyleGAN-T's ``DiscHead``)."""

    def __init__(
        self,
        channels: int,
        cond_dim: int,
        cmap_dim: int = 64,
        kernel: int = 3,
        virtual_batch: int = 8,
    ) -> None:
        super().__init__()
        self.first = _block(channels, 1, virtual_batch)
        self.residual = _block(channels, kernel, virtual_batch)
        self.cls = spectral_norm(nn.Conv2d(channels, cmap_dim, 1))
        self.cmapper = nn.Linear(cond_dim, cmap_dim)
        self.channels, self.cond_dim, self.cmap_dim = channels, cond_dim, cmap_dim

    def forward(self, features: Tensor, c: Tensor, parts: int = 1) -> Tensor:
        """``parts``: ``features`` are that many equal batches side by side, each normalised as
        if it came alone (:class:`BatchNormLocal`)."""
        if features.dim() != 4 or features.shape[1] != self.channels:
            raise ValueError(
                f"features must be (b, {self.channels}, h, w), got {tuple(features.shape)}"
            )
        if c.shape != (features.shape[0], self.cond_dim):
            raise ValueError(
                f"c must be ({features.shape[0]}, {self.cond_dim}), got {tuple(c.shape)}"
            )
        h = _run(self.first, features, parts)
        h = (h + _run(self.residual, h, parts)) / math.sqrt(2)
        out = self.cls(h)  # (b, cmap, h, w)
        cmap = self.cmapper(c)[:, :, None, None]  # (b, cmap, 1, 1)
        logits = (out * cmap).sum(1) / math.sqrt(self.cmap_dim)  # (b, h, w)
        return rearrange(logits, "b h w -> b (h w)")


def token_features(
    teacher: MMDiT, x: Tensor, t: Tensor, cond: Mapping[str, Tensor], blocks: tuple[int, ...]
) -> tuple[list[Tensor], Tensor]:
    """The image tokens after each block in ``blocks`` as 2-D maps ``(b, d, h, w)`` (patch grid),
    and the adaLN vector c ``(b, d)``: :meth:`MMDiT.forward` stopped after the last block asked
    for (the final layer is not run). The inputs are cast to the teacher's dtype as in
    :meth:`MMDiT.forward` (a bfloat16 teacher takes float32 latents); the features keep the
    teacher's dtype. Gradients flow to ``x`` when it needs them."""
    if teacher.config.backbone != "mmdit":
        raise ValueError(f"the teacher must be an MMDiT, got backbone {teacher.config.backbone!r}")
    depth = teacher.config.depth
    if not blocks or any(not 0 <= i < depth for i in blocks):
        raise ValueError(f"blocks must be indices in 0..{depth - 1}, got {blocks}")
    teacher._check(x, t, cond)
    p = teacher.config.patch_size
    h, w = x.shape[2] // p, x.shape[3] // p
    dtype = teacher.x_embedder.proj.weight.dtype
    tokens = teacher.x_embedder(x.to(dtype)) + teacher.cropped_pos_embed(h, w)  # (b, h·w, d)
    c = teacher.t_embedder(1000 * t) + teacher.y_embedder(cond["pooled"].to(dtype))  # (b, d)
    context = teacher.context_embedder(cond["context"].to(dtype))  # (b, L, d)
    wanted, features = set(blocks), {}
    for index, block in enumerate(teacher.layers[: max(blocks) + 1]):
        context, tokens = block(context, tokens, c)
        if index in wanted:
            features[index] = rearrange(tokens, "b (h w) d -> b d h w", h=h, w=w)
    return [features[i] for i in blocks], c


class LADDDiscriminator(nn.Module):
    """D(x, t̂, c) = [head_k(teacher features after block k at (x, t̂, c), c_vec)]_k, the heads'
    per-token logits concatenated: ``(b, heads · h · w)``, float32 (the heads' dtype).

    ``teacher`` is frozen here (``requires_grad_(False)``, eval mode); only the heads train."""

    def __init__(self, teacher: MMDiT, config: LADDConfig) -> None:
        super().__init__()
        if not isinstance(teacher, MMDiT):
            raise TypeError(f"teacher must be an MMDiT, got {type(teacher).__name__}")
        depth = teacher.config.depth
        blocks = tuple(range(depth)) if config.head_blocks is None else config.head_blocks
        if any(not 0 <= i < depth for i in blocks):
            raise ValueError(f"head_blocks {blocks} must lie in 0..{depth - 1} (teacher depth)")
        self.teacher = teacher.requires_grad_(False).eval()
        self.blocks = blocks
        width = teacher.config.width
        self.heads = nn.ModuleList(
            [
                DiscriminatorHead(
                    width, width, config.cmap_dim, config.head_kernel, config.virtual_batch
                )
                for _ in blocks
            ]
        )

    def train(self, mode: bool = True) -> LADDDiscriminator:
        super().train(mode)
        self.teacher.eval()  # the feature network stays frozen in eval mode
        return self

    def forward(self, x_t: Tensor, t: Tensor, cond: Mapping[str, Tensor], parts: int = 1) -> Tensor:
        """Per-token logits ``(b, heads · h · w)`` for latents already noised to ``t`` (b,);
        ``parts``: the batch is that many equal batches side by side (see :meth:`pair`)."""
        features, c = token_features(self.teacher, x_t, t, cond, self.blocks)
        dtype = self.heads[0].cmapper.weight.dtype
        pairs = zip(self.heads, features, strict=True)
        return torch.cat([head(f.to(dtype), c.to(dtype), parts) for head, f in pairs], dim=1)

    def pair(
        self,
        real_t: Tensor,
        t_real: Tensor,
        fake_t: Tensor,
        t_fake: Tensor,
        cond: Mapping[str, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """``(D(real), D(fake))`` in one pass over the concatenated batch (one teacher feature
        pass, one pass of each head), the same logits as two calls: the heads' local batch norm
        groups real and fake apart. Both batches share ``cond``."""
        if real_t.shape != fake_t.shape:
            raise ValueError(
                f"real and fake batches must match, got {tuple(real_t.shape)} and "
                f"{tuple(fake_t.shape)}"
            )
        both = {k: torch.cat([v, v]) for k, v in cond.items()}
        x, t = torch.cat([real_t, fake_t]), torch.cat([t_real, t_fake])
        real_logits, fake_logits = self(x, t, both, parts=2).chunk(2)
        return real_logits, fake_logits
