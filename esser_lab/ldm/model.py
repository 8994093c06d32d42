"""Latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR 2022): the system's network.

``LatentDiffusion`` holds, under the official attribute names of ``ldm/models/diffusion/ddpm.py``
(so a released checkpoint's prefixes map one to one):

* ``first_stage_model``: a frozen autoencoder (KL or VQ, :mod:`esser_lab.nn.first_stage`; or
  :class:`IdentityFirstStage` for diffusion in pixel space, the paper's LDM-1);
* ``cond_stage_model``: the condition's encoder; for class labels the official ``ClassEmbedder``
  (one ``embedding`` table), its output the cross-attention context ``(b, 1, d)``;
* ``model.diffusion_model``: the UNet (:mod:`esser_lab.nn.unet`), wrapped as the official
  ``DiffusionWrapper`` routes the condition (``crossattn``: as context; ``concat``: as extra input
  channels; ``adm``: as the UNet's class input ``y``);
* ``model_ema``: the averaged UNet weights (:class:`esser_lab.training.ema.EMA`), when used;
* the noise schedule's buffers (``betas``, ``alphas_cumprod``, …) and ``scale_factor``.

The diffusion runs on ``z = scale_factor · E(x)``: ``scale_factor`` makes the latents roughly
unit-variance so one noise schedule suits every autoencoder. It is fixed (Stable Diffusion:
0.18215, ≈ 1 / std of its KL-f8 latents) or, with ``scale_by_std``, set once from the first
training batch to 1 / std(z). ``denoise(z_t, t, cond)`` is the book's denoiser protocol
(:mod:`esser_lab.diffusion`): continuous t ∈ [0, 1], t = 1 noise; the UNet itself takes the
integer DDPM step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor, in_range
from esser_lab.config import check_fields, check_positive
from esser_lab.diffusion import DiscreteSchedule, time_to_index
from esser_lab.nn.unet import UNetConfig, UNetModel
from esser_lab.training.ema import EMA

__all__ = [
    "ClassEmbedder",
    "DiffusionWrapper",
    "IdentityFirstStage",
    "LDMConfig",
    "LatentDiffusion",
    "RescaledFirstStage",
]

ConditioningKey = Literal["none", "crossattn", "concat", "adm"]


@dataclass(frozen=True)
class LDMConfig:
    """The diffusion side of a latent-diffusion model (``model.params`` of an official yaml).

    Defaults: the guided class-conditional ImageNet LDM-4 of the paper's Table 3,
    ``configs/latent-diffusion/cin256-v2.yaml`` (VQ-f4 latents 64×64×3, ``linear_start`` 0.0015,
    ``linear_end`` 0.0195, 1000 steps, ε-prediction, L2 ``L_simple``, cross-attention on a
    512-d class embedding of 1001 classes, the last one the "null" class of classifier-free
    guidance; no EMA (``use_ema: False``); ``base_learning_rate`` 1e-4; VQ latents need no
    rescaling, ``scale_factor`` 1). The UNet's own settings are in ``unet``.
    # official code: the label dropout that trained the null class is not in the released code
    # (the data pipeline did it); ``cond_drop`` 0.1 here is ours. The yaml sets no batch size;
    # 64 is ours.
    """

    unet: UNetConfig = field(default_factory=UNetConfig.cin256_v2)
    timesteps: int = 1000
    beta_schedule: Literal["linear", "cosine", "sqrt_linear", "sqrt"] = "linear"
    linear_start: float = 0.0015
    linear_end: float = 0.0195
    parameterization: Literal["eps", "x0", "v"] = "eps"
    loss_type: Literal["l2", "l1"] = "l2"
    conditioning_key: ConditioningKey = "crossattn"
    n_classes: int = 1001  # with the null class (index n_classes - 1) for guidance
    embed_dim: int = 512  # ClassEmbedder width = the UNet's context_dim
    cond_drop: float = 0.1  # label dropout: p of replacing a label by the null class (ours)
    scale_factor: float = 1.0
    scale_by_std: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    # optimiser (AdamW; official: lr = base_learning_rate × batch_size × devices)
    base_learning_rate: float = 1e-4
    batch_size: int = 64
    num_steps: int = 2_000_000

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("timesteps", "batch_size", "num_steps", "n_classes", "embed_dim"))
        if not 0.0 < self.linear_start < self.linear_end < 1.0:
            raise ValueError(
                "need 0 < linear_start < linear_end < 1, got "
                f"{self.linear_start} and {self.linear_end}"
            )
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError(f"cond_drop must lie in [0, 1), got {self.cond_drop}")
        if not self.scale_factor > 0:
            raise ValueError(f"scale_factor must be > 0, got {self.scale_factor}")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1], got {self.ema_decay}")
        if not self.base_learning_rate > 0:
            raise ValueError(f"base_learning_rate must be > 0, got {self.base_learning_rate}")
        if self.conditioning_key == "crossattn" and self.unet.context_dim != self.embed_dim:
            raise ValueError(
                f"crossattn needs unet.context_dim == embed_dim, got {self.unet.context_dim} "
                f"and {self.embed_dim}"
            )
        if self.conditioning_key == "adm" and self.unet.num_classes != self.n_classes:
            raise ValueError(
                f"adm conditioning needs unet.num_classes == n_classes, got "
                f"{self.unet.num_classes} and {self.n_classes}"
            )

    @property
    def learning_rate(self) -> float:
        """``base_learning_rate × batch_size`` (official ``main.py``, one device)."""
        return self.base_learning_rate * self.batch_size

    @property
    def null_class(self) -> int:
        """The label of the unconditional model: the last class (``cin256-v2``: 1000)."""
        return self.n_classes - 1

    def schedule(self) -> DiscreteSchedule:
        return DiscreteSchedule.make(
            self.beta_schedule,
            self.timesteps,
            linear_start=self.linear_start,
            linear_end=self.linear_end,
        )

    @classmethod
    def paper(cls) -> LDMConfig:
        """The guided class-conditional ImageNet LDM-4 of the paper's Table 3 (``cin256-v2``)."""
        return cls()

    @classmethod
    def small(cls, channels: int = 4, side: int = 16, n_classes: int = 11) -> LDMConfig:
        """A GPU in minutes: ``UNetConfig.small()`` on ``side``² latents of ``channels``; classes
        plus the null class. Learning rate 2·10⁻⁴ (ours; the paper's 1e-6 × batch is for 2 M
        steps), 20k steps of 64."""
        unet = replace(
            UNetConfig.small(), image_size=side, in_channels=channels, out_channels=channels
        )
        return cls(
            unet=unet,
            n_classes=n_classes,
            embed_dim=unet.context_dim,
            cond_drop=0.1,
            scale_by_std=True,
            use_ema=True,
            base_learning_rate=2e-4 / 64,
            batch_size=64,
            num_steps=20_000,
        )

    @classmethod
    def tiny(cls, channels: int = 4, side: int = 8, n_classes: int = 11) -> LDMConfig:
        """A CPU in seconds: ``UNetConfig.tiny()`` at width 32 on both levels (one residual
        block a level; a spatial transformer at ds = 2, context 32) on ``side``² latents of
        ``channels``.
        Learning rate 4·10⁻³ at batch 32 (ours: the toy trains for a few hundred steps)."""
        unet = replace(
            UNetConfig.tiny(),
            image_size=side,
            in_channels=channels,
            out_channels=channels,
            channel_mult=(1, 1),  # width 32 at both levels: a minute on one CPU thread
        )
        return cls(
            unet=unet,
            n_classes=n_classes,
            embed_dim=unet.context_dim,
            cond_drop=0.1,
            scale_by_std=True,
            use_ema=True,
            base_learning_rate=4e-3 / 32,
            batch_size=32,
            num_steps=200,
        )


def schedule_buffers(schedule: DiscreteSchedule) -> dict[str, Tensor]:
    """The twelve buffers of the official ``DDPM.register_schedule``, as float32 (from the
    schedule's float64 tables), so the released checkpoints' copies load and can be compared."""
    ac = schedule.alphas_cumprod
    tables = {
        "betas": schedule.betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": schedule.alphas_cumprod_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1.0).sqrt(),
        "posterior_variance": schedule.posterior_variance,
        "posterior_log_variance_clipped": schedule.posterior_log_variance_clipped,
        "posterior_mean_coef1": schedule.posterior_mean_coef1,
        "posterior_mean_coef2": schedule.posterior_mean_coef2,
    }
    return {name: value.float() for name, value in tables.items()}


class IdentityFirstStage(nn.Module):
    """Diffusion in pixel space (LDM-1): encode and decode are the identity (official name)."""

    factor = 1

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.channels = channels

    def encode_latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x

    def decode_latent(self, z: Tensor) -> Tensor:
        return z


class RescaledFirstStage(nn.Module):
    """The same autoencoder with its latents multiplied by ``spread``: ``encode_latent`` gives
    ``spread · z``, ``decode_latent`` divides it out again. Reconstructions are unchanged; only the
    latents' variance moves (chapter 14 gives its KL autoencoder the spread of Stable Diffusion's,
    std ≈ 5.5, to show what ``scale_factor`` is for)."""

    def __init__(self, first_stage: nn.Module, spread: float) -> None:
        super().__init__()
        if not spread > 0:
            raise ValueError(f"spread must be > 0, got {spread}")
        self.inner, self.spread = first_stage, float(spread)
        self.factor = first_stage.factor
        self.latent_channels = getattr(first_stage, "latent_channels", None)

    def encode_latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.spread * self.inner.encode_latent(x, generator=generator)

    def decode_latent(self, z: Tensor) -> Tensor:
        return self.inner.decode_latent(z / self.spread)


class ClassEmbedder(nn.Module):
    """Labels ``(b,)`` → context ``(b, 1, embed_dim)`` (official ``ClassEmbedder``, key
    ``embedding``)."""

    def __init__(self, embed_dim: int, n_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_classes, embed_dim)

    def forward(self, labels: Tensor) -> Tensor:
        n = self.embedding.num_embeddings
        if labels.dim() != 1 or labels.dtype != torch.long:
            raise ValueError(f"class labels must be a (batch,) long tensor, got {labels.dtype} "
                             f"{tuple(labels.shape)}")  # fmt: skip
        if not in_range(labels, 0, n, training=self.training):  # no sync in a training step
            raise ValueError(f"class labels must lie in 0..{n - 1}")
        return self.embedding(labels)[:, None]


class DiffusionWrapper(nn.Module):
    """Routes the condition into the UNet by ``conditioning_key`` (official name and role)."""

    def __init__(self, unet: UNetModel, conditioning_key: ConditioningKey) -> None:
        super().__init__()
        self.diffusion_model = unet
        self.conditioning_key = conditioning_key

    def forward(self, x: Tensor, timesteps: Tensor, cond: Tensor | None = None) -> Tensor:
        key = self.conditioning_key
        if key == "none":
            return self.diffusion_model(x, timesteps)
        if cond is None:
            raise ValueError(f"conditioning_key={key!r} needs a condition, got None")
        if key == "crossattn":
            return self.diffusion_model(x, timesteps, context=cond)
        if key == "concat":
            return self.diffusion_model(torch.cat([x, cond], dim=1), timesteps)
        return self.diffusion_model(x, timesteps, y=cond)


class LatentDiffusion(nn.Module):
    """A frozen first stage, a condition encoder, a UNet over scaled latents, EMA and schedule.

    ``first_stage`` offers ``encode_latent(x, generator)`` and ``decode_latent(z)`` (an
    autoencoder of :mod:`esser_lab.nn.first_stage` or :class:`IdentityFirstStage`); it is frozen
    here (eval mode, no gradients), as the official ``instantiate_first_stage`` does.
    """

    def __init__(self, config: LDMConfig, first_stage: nn.Module) -> None:
        super().__init__()
        if not hasattr(first_stage, "encode_latent") or not hasattr(first_stage, "decode_latent"):
            raise TypeError(
                "first_stage must offer encode_latent(x) and decode_latent(z) (an autoencoder of "
                f"esser_lab.nn.first_stage or IdentityFirstStage), got {type(first_stage).__name__}"
            )
        self.config = config
        self.model = DiffusionWrapper(UNetModel(config.unet), config.conditioning_key)
        from esser_lab.training.first_stage import freeze

        self.first_stage_model = freeze(first_stage)
        if config.conditioning_key in ("crossattn",):
            self.cond_stage_model = ClassEmbedder(config.embed_dim, config.n_classes)
        self.schedule = config.schedule()
        device = torch.get_default_device()  # "meta" when built for counting only
        for name, value in schedule_buffers(self.schedule).items():
            self.register_buffer(name, value.to(device))
        if config.scale_by_std:  # set from the first training batch (official: a buffer)
            self.register_buffer("scale_factor", torch.tensor(config.scale_factor))
            self.register_buffer("_scale_set", torch.tensor(False), persistent=False)
        else:  # a constant, not saved; a buffer so that it moves with the model (a host tensor
            # would be copied to the device at every step, a host sync on a GPU)
            self.register_buffer(
                "scale_factor", torch.tensor(config.scale_factor), persistent=False
            )
        if config.use_ema:
            self.model_ema = EMA(self.model, decay=config.ema_decay)

    # ---- first stage ---------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images → scaled latents ``scale_factor · E(x)`` (a posterior sample for KL)."""
        z = self.first_stage_model.encode_latent(x, generator=generator)
        return self.scale_factor.to(z) * z

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return self.first_stage_model.decode_latent(z / self.scale_factor.to(z))

    @torch.no_grad()
    def set_scale_from(self, z: Tensor) -> Tensor:
        """``scale_by_std``: ``scale_factor = 1 / std(z)`` of unscaled latents, once; returns
        the new factor as a 0-dim tensor (not read back: it runs inside the first training step,
        where a read would be a host sync on a GPU)."""
        if not self.config.scale_by_std:
            raise RuntimeError("set_scale_from needs scale_by_std=True")
        self.scale_factor.copy_(1.0 / z.float().flatten().std())
        self._scale_set.fill_(True)
        return self.scale_factor.detach().clone()

    # ---- the denoiser ----------------------------------------------------------------------

    def condition(self, labels: Tensor | None) -> Tensor | None:
        """The UNet's condition for class ``labels`` (the null class gives the unconditional)."""
        if labels is None or self.config.conditioning_key == "none":
            return None
        if self.config.conditioning_key == "crossattn":
            return self.cond_stage_model(labels)
        return labels

    def denoise(self, z_t: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The denoiser protocol: ``(z_t, t ∈ [0, 1], labels) → prediction`` (ε by default)."""
        shape = ("batch", self.config.unet.in_channels, "h", "w")
        check_tensor(z_t, "z_t", shape, like=self, training=self.training)
        timesteps = time_to_index(t, self.config.timesteps).to(z_t.device)
        return self.model(z_t, timesteps, self.condition(labels))
