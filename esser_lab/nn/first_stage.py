"""First stages: the convolutional autoencoders that later papers freeze and work in the latent of.

Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841; chapter 10) trains a
VQGAN and models its codes; latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR 2022;
arXiv 2112.10752; chapter 14) trains a KL- or VQ-regularised autoencoder of the same family and
diffuses in its latent space. Both build ``Encoder``/``Decoder`` of :mod:`esser_lab.nn.ddconv`
from one block of settings, the official ``ddconfig``:

* :class:`DDConfig`: that block (architecture only: no loss, no optimiser), validated;
* :class:`AutoencoderKLConfig` and :class:`AutoencoderKL`: the KL first stage of latent diffusion
  (``ldm/models/autoencoder.py``), with the released ``kl-f4/f8/f16/f32`` presets (``kl_f8`` is
  Stable Diffusion's VAE) and ``tiny(factor)`` for the chapter;
* :class:`FirstStage`: what a second stage needs of any of them: ``encode_latent(x)`` and
  ``decode_latent(z)`` and the down-sampling ``factor``. The VQ first stage is
  :class:`esser_lab.taming.model.VQModel` (its LDM presets: ``VQModelConfig.vq_f4/vq_f8``).

Conventions: images ``(b, c, h, w)`` in [-1, 1]; latents ``(b, embed_dim, h/f, w/f)``, unscaled
(the LDM's ``scale_factor`` belongs to the diffusion model, not here). Training (loss,
discriminator, optimiser) lives in :mod:`esser_lab.losses.gan_autoencoder` and
:class:`esser_lab.taming.training.LitGANAutoencoder`; the network never imports Lightning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields, check_positive, config_from_dict
from esser_lab.nn.autoencoder import DiagonalGaussian
from esser_lab.nn.ddconv import Decoder, Encoder

__all__ = [
    "AutoencoderKL",
    "AutoencoderKLConfig",
    "DDConfig",
    "FirstStage",
    "check_ddconfig",
    "decoder_from",
    "encoder_from",
]

#: latent diffusion's ``DiagonalGaussianDistribution`` clamps the log-variance to [-30, 20]
KL_LOGVAR_RANGE = (-30.0, 20.0)


def check_ddconfig(config: Any) -> None:
    """The range checks of a ``ddconfig`` block, on any config that has its fields.

    A ``ValueError`` naming the first bad field (``check_positive`` names the config's class).
    """
    check_positive(config, ("in_channels", "out_ch", "ch", "z_channels"))
    if not config.ch_mult or min(config.ch_mult) < 1:
        raise ValueError(f"ch_mult must be non-empty and ≥ 1 everywhere, got {config.ch_mult}")
    factor = 2 ** (len(config.ch_mult) - 1)
    if config.resolution < 1 or config.resolution % factor:
        raise ValueError(
            f"resolution must be a positive multiple of the down-sampling factor "
            f"{factor} (from ch_mult={config.ch_mult}), got {config.resolution}"
        )
    check_positive(config, ("num_res_blocks",), 0)
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")


@dataclass(frozen=True)
class DDConfig:
    """The official ``ddconfig``: the encoder/decoder architecture of one first stage.

    Defaults: Stable Diffusion's and LDM's KL-f8 autoencoder
    (``models/first_stage_models/kl-f8/config.yaml``): widths 128·(1, 2, 4, 4), f = 8, two
    residual blocks per level, no level attention (the middle attention is always there), a
    4-channel latent (``double_z``: the encoder outputs mean and log-variance, 8 channels).
    Every width ``ch · m`` must be a multiple of 32 (GroupNorm with 32 groups).
    """

    double_z: bool = True
    z_channels: int = 4
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        check_ddconfig(self)
        widths = sorted({self.ch * m for m in self.ch_mult})
        if any(w % 32 for w in widths):
            raise ValueError(
                f"every width ch·ch_mult must be a multiple of 32 (GroupNorm with 32 groups), "
                f"got {widths} from ch={self.ch}, ch_mult={self.ch_mult}"
            )
        if self.num_res_blocks == 0 and len(set(self.ch_mult)) > 1:
            raise ValueError(
                f"num_res_blocks must be ≥ 1 when ch_mult changes width ({self.ch_mult}): the "
                "encoder changes width inside its residual blocks"
            )

    @property
    def factor(self) -> int:
        """The down-sampling factor f = 2^(len(ch_mult) − 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    @classmethod
    def from_dict(cls, values: dict) -> DDConfig:
        return config_from_dict(cls, values)


def encoder_from(config: DDConfig) -> Encoder:
    """The ``Encoder`` of ``config`` (``2·z_channels`` outputs when ``double_z``)."""
    return Encoder(
        ch=config.ch,
        ch_mult=config.ch_mult,
        num_res_blocks=config.num_res_blocks,
        attn_resolutions=config.attn_resolutions,
        in_channels=config.in_channels,
        resolution=config.resolution,
        z_channels=config.z_channels,
        double_z=config.double_z,
        dropout=config.dropout,
    )


def decoder_from(config: DDConfig) -> Decoder:
    """The ``Decoder`` of ``config`` (``z_channels`` in, ``out_ch`` out)."""
    return Decoder(
        ch=config.ch,
        out_ch=config.out_ch,
        ch_mult=config.ch_mult,
        num_res_blocks=config.num_res_blocks,
        attn_resolutions=config.attn_resolutions,
        resolution=config.resolution,
        z_channels=config.z_channels,
        dropout=config.dropout,
    )


def _levels(factor: int, preset: str, size: int) -> int:
    if factor not in (1, 2, 4, 8):
        raise ValueError(f"{preset}() has f ∈ {{1, 2, 4, 8}} at {size} px, got factor={factor!r}")
    return int(math.log2(factor)) + 1


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """``AutoencoderKL``'s settings: the ``ddconfig`` block and the latent width ``embed_dim``.

    Defaults: KL-f8 (= Stable Diffusion 1.x's VAE, 83.65 M parameters). The loss and optimiser
    settings live apart (``GANAutoencoderLossConfig.ldm_kl()``, ``GANOptimizerConfig``).
    """

    ddconfig: DDConfig = DDConfig()
    embed_dim: int = 4
    #: the 1×1 ``quant_conv``/``post_quant_conv`` around the latent (LDM, SD 1/2, SDXL); SD3's
    #: 16-channel VAE has none (``embed_dim`` must then equal ``z_channels``)
    use_quant_conv: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("embed_dim",))
        if not self.ddconfig.double_z:
            raise ValueError(
                "AutoencoderKL needs ddconfig.double_z=True (the encoder outputs mean and "
                "log-variance), got double_z=False"
            )
        if not self.use_quant_conv and self.embed_dim != self.ddconfig.z_channels:
            raise ValueError(
                "without quant_conv the latent is the encoder's output: embed_dim must equal "
                f"ddconfig.z_channels={self.ddconfig.z_channels}, got embed_dim={self.embed_dim}"
            )

    @property
    def factor(self) -> int:
        return self.ddconfig.factor

    @property
    def resolution(self) -> int:
        return self.ddconfig.resolution

    @property
    def in_channels(self) -> int:
        return self.ddconfig.in_channels

    @classmethod
    def _released(
        cls, z: int, ch_mult: tuple[int, ...], attn: tuple[int, ...]
    ) -> AutoencoderKLConfig:
        dd = DDConfig(z_channels=z, ch_mult=ch_mult, attn_resolutions=attn)
        return cls(ddconfig=dd, embed_dim=z)

    @classmethod
    def kl_f4(cls) -> AutoencoderKLConfig:
        """LDM's ``kl-f4``: 3 latent channels, widths 128·(1, 2, 4)."""
        return cls._released(3, (1, 2, 4), ())

    @classmethod
    def kl_f8(cls) -> AutoencoderKLConfig:
        """LDM's ``kl-f8`` = Stable Diffusion's VAE: 4 channels, widths 128·(1, 2, 4, 4)."""
        return cls._released(4, (1, 2, 4, 4), ())

    @classmethod
    def kl_f16(cls) -> AutoencoderKLConfig:
        """LDM's ``kl-f16``: 16 channels, widths 128·(1, 1, 2, 2, 4), attention at 16×16."""
        return cls._released(16, (1, 1, 2, 2, 4), (16,))

    @classmethod
    def kl_f32(cls) -> AutoencoderKLConfig:
        """LDM's ``kl-f32``: 64 channels, widths 128·(1, 1, 2, 2, 4, 4), attention at 16 and 8."""
        return cls._released(64, (1, 1, 2, 2, 4, 4), (16, 8))

    @classmethod
    def paper(cls) -> AutoencoderKLConfig:
        """KL-f8, the first stage of Stable Diffusion and of the LDM-KL-8 models."""
        return cls.kl_f8()

    @classmethod
    def small(cls, factor: int = 4) -> AutoencoderKLConfig:
        """64×64 images on one GPU in minutes, f ∈ {1, 2, 4, 8}: widths 64·(1, 2, 2, 4)[:levels].

        One residual block per level, no level attention, a 4-channel latent (ours, unverified).
        """
        levels = _levels(factor, "small", 64)
        dd = DDConfig(resolution=64, ch=64, ch_mult=(1, 2, 2, 4)[:levels], num_res_blocks=1)
        return cls(ddconfig=dd, embed_dim=4)

    @classmethod
    def tiny(cls, factor: int = 4) -> AutoencoderKLConfig:
        """16×16 images on a CPU in seconds, f ∈ {1, 2, 4, 8}: width 32 at every level.

        ``len(ch_mult) = log2(f) + 1`` levels of width 32 (f = 1: one level, no down-sampling),
        one residual block per level, no level attention (the middle one stays), a 4-channel
        latent at every f (as kl-f8; ours: the sizes of the toy, unverified beyond it).
        """
        levels = _levels(factor, "tiny", 16)
        dd = DDConfig(resolution=16, ch=32, ch_mult=(1,) * levels, num_res_blocks=1)
        return cls(ddconfig=dd, embed_dim=4)

    @classmethod
    def from_dict(cls, values: dict) -> AutoencoderKLConfig:
        """From ``asdict(config)`` (the ``ddconfig`` block as a nested dict)."""
        values = dict(values)
        if isinstance(values.get("ddconfig"), dict):
            values["ddconfig"] = DDConfig.from_dict(values["ddconfig"])
        return config_from_dict(cls, values)


@runtime_checkable
class FirstStage(Protocol):
    """What a second stage needs of a frozen autoencoder (KL, VQ, or the identity).

    ``encode_latent(x, generator=None)``: images ``(b, c, H, W)`` → latents ``(b, d, H/f, W/f)``
    (KL: a posterior sample drawn from ``generator``; VQ: the latent before quantisation, as the
    official ``VQModelInterface``); ``decode_latent(z)``: latents → images (VQ: quantised first).
    """

    factor: int

    def encode_latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

    def decode_latent(self, z: Tensor) -> Tensor: ...


def check_images(model: nn.Module, x: Tensor) -> Tensor:
    """Images ``(b, in_channels, H, W)`` with H and W multiples of the model's factor f, for a
    first stage whose ``config`` has ``in_channels`` and ``factor`` (KL or VQ)."""
    c = model.config
    check_tensor(x, "x", ("batch", c.in_channels, "h", "w"), like=model, training=model.training)
    if x.shape[2] % c.factor or x.shape[3] % c.factor:
        raise ValueError(
            f"x's height and width must be multiples of the down-sampling factor {c.factor}, "
            f"got {tuple(x.shape)}"
        )
    return x


class AutoencoderKL(nn.Module):
    """The KL-regularised autoencoder of latent diffusion (official name and key layout).

    ``encoder`` (``double_z``) → ``quant_conv`` 1×1 (2·z_channels → 2·embed_dim) → a diagonal
    Gaussian posterior (mean, log-variance clamped to [-30, 20]) → z ``(b, embed_dim, H/f, W/f)``
    → ``post_quant_conv`` 1×1 (embed_dim → z_channels) → ``decoder``. The state dict holds
    ``encoder.*``, ``decoder.*``, ``quant_conv.*``, ``post_quant_conv.*``: the released
    ``kl-f*`` checkpoints (less ``loss.*``) and Stable Diffusion's ``first_stage_model.*`` load
    strictly. With ``config.use_quant_conv=False`` (SD3's VAE) both 1×1 convolutions are
    identities and hold no weights.
    """

    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        if not isinstance(config, AutoencoderKLConfig):
            raise TypeError(f"config must be an AutoencoderKLConfig, got {type(config).__name__}")
        self.config = config
        dd = config.ddconfig
        self.encoder = encoder_from(dd)
        self.decoder = decoder_from(dd)
        if config.use_quant_conv:
            self.quant_conv = nn.Conv2d(2 * dd.z_channels, 2 * config.embed_dim, 1)
            self.post_quant_conv = nn.Conv2d(config.embed_dim, dd.z_channels, 1)
        else:  # SD3: the encoder's moments are the posterior's, z goes straight to the decoder
            self.quant_conv, self.post_quant_conv = nn.Identity(), nn.Identity()

    @property
    def factor(self) -> int:
        return self.config.factor

    @property
    def latent_channels(self) -> int:
        return self.config.embed_dim

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """Images ``(b, in_channels, H, W)`` → posterior q(z | x) over ``(b, embed_dim, h, w)``."""
        check_images(self, x)
        moments = self.quant_conv(self.encoder(x))  # (b, 2·embed_dim, h, w): mean, log-variance
        return DiagonalGaussian(moments, logvar_range=KL_LOGVAR_RANGE)

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``(b, embed_dim, h, w)`` → images ``(b, out_ch, h·f, w·f)`` (no tanh)."""
        shape = ("batch", self.config.embed_dim, "h", "w")
        check_tensor(z, "z", shape, like=self, training=self.training)
        return self.decoder(self.post_quant_conv(z))

    def forward(
        self,
        x: Tensor,
        sample_posterior: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, DiagonalGaussian]:
        """``(x̂, posterior)``: decode a posterior sample (or its mode)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def encode_latent(
        self, x: Tensor, generator: torch.Generator | None = None, sample: bool = True
    ) -> Tensor:
        """A posterior sample (official ``get_first_stage_encoding``); the mean if ``sample=False``.

        ``generator`` draws the noise (torch's global generator when None).
        """
        posterior = self.encode(x)
        return posterior.sample(generator) if sample else posterior.mode()

    def decode_latent(self, z: Tensor) -> Tensor:
        return self.decode(z)

    def last_layer(self) -> Tensor:
        """``decoder.conv_out.weight``: where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight
