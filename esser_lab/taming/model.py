"""VQGAN, the first stage of Taming Transformers (Esser, Rombach & Ommer, CVPR 2021).

``VQModel`` = ``Encoder`` → ``quant_conv`` (1×1) → ``VectorQuantizer`` → ``post_quant_conv`` (1×1)
→ ``Decoder``, with the official attribute names of ``taming/models/vqgan.py`` so that the released
checkpoints load strictly (``esser_lab.taming.checkpoint``). The network never imports Lightning.

Two configs build it. :class:`VQModelConfig` is the architecture alone (the official ``ddconfig``
block, :class:`esser_lab.nn.first_stage.DDConfig`, plus the codebook), with the released Taming
and latent-diffusion presets: a first stage to build, train, freeze and hand on (chapter 14 uses
LDM's ``vq-f4``/``vq-f8``). :class:`VQGANConfig` is chapter 10's flat run config (architecture,
loss, optimiser and step budget in one, as the CLI and the chapter set them); its views
``ddconfig``, ``architecture``, ``loss`` and ``optimizer`` split it into those parts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.nn.first_stage import DDConfig, check_images, decoder_from, encoder_from
from esser_lab.nn.quantize import QuantizerOutput, VectorQuantizer

__all__ = ["VQGANConfig", "VQModel", "VQModelConfig"]


# the released ImageNet VQGAN f16 (``configs/imagenet_vqgan.yaml``'s ``ddconfig``)
_TAMING_F16 = DDConfig(
    double_z=False, z_channels=256, ch_mult=(1, 1, 2, 2, 4), attn_resolutions=(16,)
)


@dataclass(frozen=True)
class VQModelConfig:
    """The VQ autoencoder's architecture: the ``ddconfig`` block and the codebook.

    Defaults: the released ImageNet VQGAN f16 with 1024 codes of width 256 (as
    ``VQGANConfig.paper()``). ``beta`` and ``legacy`` place the codebook loss
    (:mod:`esser_lab.nn.quantize`); latent diffusion's VQ models use the same quantizer with
    β = 0.25 and the legacy placement.
    """

    ddconfig: DDConfig = _TAMING_F16
    n_embed: int = 1024
    embed_dim: int = 256
    beta: float = 0.25
    legacy: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("n_embed", "embed_dim"))
        check_positive(self, ("beta",), 0)
        if self.ddconfig.double_z:
            raise ValueError("a VQModel's ddconfig has double_z=False (one latent, no variance)")

    @property
    def factor(self) -> int:
        return self.ddconfig.factor

    @property
    def resolution(self) -> int:
        return self.ddconfig.resolution

    @property
    def in_channels(self) -> int:
        return self.ddconfig.in_channels

    @property
    def z_channels(self) -> int:
        return self.ddconfig.z_channels

    @classmethod
    def paper(cls, n_embed: int = 1024) -> VQModelConfig:
        """The released ImageNet f16 VQGANs (1024 or 16384 codes): ``VQGANConfig.paper``'s."""
        return VQGANConfig.paper(n_embed).architecture

    @classmethod
    def _ldm(
        cls, z: int, n_embed: int, ch_mult: tuple[int, ...], attn: tuple[int, ...]
    ) -> VQModelConfig:
        dd = DDConfig(double_z=False, z_channels=z, ch_mult=ch_mult, attn_resolutions=attn)
        return cls(ddconfig=dd, n_embed=n_embed, embed_dim=z)

    @classmethod
    def vq_f4(cls) -> VQModelConfig:
        """Latent diffusion's ``vq-f4``: 3 channels, 8192 codes, widths 128·(1, 2, 4).

        (``vq-f4-noattn`` differs by ``attn_type: none``, which drops the middle attention; the
        shared encoder always has it, so that model is left out.)
        """
        return cls._ldm(3, 8192, (1, 2, 4), ())

    @classmethod
    def vq_f8(cls, n_embed: int = 16384) -> VQModelConfig:
        """Latent diffusion's ``vq-f8`` (16384 codes; ``vq-f8-n256``: 256): 4 channels, widths
        128·(1, 2, 2, 4), attention at 32×32."""
        if n_embed not in (256, 16384):
            raise ValueError(f"the released vq-f8 models have 256 or 16384 codes, got {n_embed}")
        return cls._ldm(4, n_embed, (1, 2, 2, 4), (32,))

    @classmethod
    def vq_f16(cls) -> VQModelConfig:
        """Latent diffusion's ``vq-f16``: 8 channels, 16384 codes, widths 128·(1, 1, 2, 2, 4)."""
        return cls._ldm(8, 16384, (1, 1, 2, 2, 4), (16,))

    @classmethod
    def from_dict(cls, values: dict) -> VQModelConfig:
        """From ``asdict(config)`` (the ``ddconfig`` block as a nested dict)."""
        values = dict(values)
        if isinstance(values.get("ddconfig"), dict):
            values["ddconfig"] = DDConfig.from_dict(values["ddconfig"])
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class VQGANConfig:
    """Defaults: the released ImageNet VQGAN f16 |Z| = 1024 (``configs/imagenet_vqgan.yaml``).

    ``ch_mult`` (1, 1, 2, 2, 4) gives widths 128, 128, 256, 256, 512 and f = 16; attention at the
    16×16 level only (plus the always-present mid attention); ``z_channels = embed_dim = 256``.

    Loss and optimiser (``VQLPIPSWithDiscriminator`` and ``VQModel.configure_optimizers``): the
    discriminator starts at step ``disc_start``; learning rate = ``base_learning_rate`` ×
    ``batch_size`` (the official ``main.py`` rule, one GPU, no accumulation) for both Adams.
    """

    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    z_channels: int = 256
    embed_dim: int = 256
    n_embed: int = 1024
    beta: float = 0.25
    legacy: bool = True  # the loss placement the released weights were trained with
    # the loss (``lossconfig`` of ``configs/imagenet_vqgan.yaml``; others: official defaults)
    disc_start: int = 250_001
    disc_weight: float = 0.8
    codebook_weight: float = 1.0
    perceptual_weight: float = 1.0  # LPIPS; 0 = no perceptual term
    disc_num_layers: int = 3
    disc_in_channels: int = 3
    disc_ndf: int = 64
    disc_loss: Literal["hinge", "vanilla"] = "hinge"
    # the optimiser (both Adams); batch_size = ``data.params.batch_size`` of the yaml
    base_learning_rate: float = 4.5e-6
    batch_size: int = 3
    betas: tuple[float, float] = (0.5, 0.9)
    # official: no step limit (runs until stopped); ours: twice disc_start, unverified
    num_steps: int = 500_000

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self,
            (
                "in_channels",
                "out_ch",
                "ch",
                "z_channels",
                "embed_dim",
                "n_embed",
                "disc_in_channels",
            ),
        )
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"ch_mult must be non-empty and ≥ 1 everywhere, got {self.ch_mult}")
        if self.resolution < 1 or self.resolution % self.factor:
            raise ValueError(
                f"resolution must be a positive multiple of the down-sampling factor "
                f"{self.factor} (from ch_mult={self.ch_mult}), got {self.resolution}"
            )
        check_positive(self, ("num_res_blocks", "beta"), 0)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.base_learning_rate > 0:
            raise ValueError(f"base_learning_rate must be > 0, got {self.base_learning_rate}")
        check_betas(self)
        if self.disc_loss not in ("hinge", "vanilla"):
            raise ValueError(f"disc_loss must be 'hinge' or 'vanilla', got {self.disc_loss!r}")
        if self.disc_start < 0 or self.num_steps < 1 or self.batch_size < 1:
            raise ValueError("need disc_start ≥ 0, num_steps ≥ 1 and batch_size ≥ 1")
        weights = (self.disc_weight, self.codebook_weight, self.perceptual_weight)
        if min(weights) < 0:
            raise ValueError(f"loss weights must be ≥ 0, got {weights}")
        if self.disc_num_layers < 1 or self.disc_ndf < 1:
            raise ValueError("need disc_num_layers ≥ 1 and disc_ndf ≥ 1")

    @property
    def learning_rate(self) -> float:
        """``base_learning_rate × batch_size`` (official ``main.py``, one device)."""
        return self.base_learning_rate * self.batch_size

    @classmethod
    def paper(cls, n_embed: int = 1024) -> VQGANConfig:
        """The released ImageNet f16 models: ``n_embed`` 1024 or 16384.

        The f16-16384 release's ``model.yaml`` differs in its loss: the discriminator from step 0,
        ``disc_weight`` 0.75 and a 2-layer PatchGAN (its ``loss.discriminator.main.{0..8}`` keys).
        """
        if n_embed not in (1024, 16384):
            raise ValueError(
                f"the released ImageNet f16 VQGANs have 1024 or 16384 codes, got {n_embed}"
            )
        if n_embed == 16384:
            return cls(n_embed=n_embed, disc_start=0, disc_weight=0.75, disc_num_layers=2)
        return cls(n_embed=n_embed)

    @classmethod
    def small(cls) -> VQGANConfig:
        """64×64 images on one GPU in minutes: f = 8, three widths, 512 codes, LPIPS kept."""
        return replace(
            cls.paper(),
            resolution=64,
            ch=64,
            ch_mult=(1, 2, 2, 4),
            num_res_blocks=1,
            attn_resolutions=(8,),
            z_channels=64,
            embed_dim=64,
            n_embed=512,
            disc_start=6_000,
            disc_num_layers=3,
            batch_size=32,
            num_steps=10_000,
        )

    @classmethod
    def tiny(cls) -> VQGANConfig:
        """16×16 images on 2 CPU cores in seconds: f = 2 (8×8 codes), 64 codes, 2-layer D.

        Widths and depths shrink to one level change (``ch_mult`` (1, 1)), no residual blocks in
        the encoder's levels (the decoder keeps one per level, the middle keeps its two blocks and
        its attention) and no level attention: at f = 4 the same budget reconstructed about 2 dB
        worse (13.0 vs 15.4 dB PSNR, measured). Besides sizes and steps, two training settings
        differ (stated in the chapter): no LPIPS (``perceptual_weight`` 0; its VGG16 weights
        cannot be had offline and cost more than the whole toy), and a learning rate of 2e-3
        (``base_learning_rate`` × 16), because the toy has a few hundred steps instead of
        hundreds of thousands. The discriminator starts half-way.
        """
        return replace(
            cls.small(),
            resolution=16,
            ch=32,
            ch_mult=(1, 1),
            num_res_blocks=0,
            attn_resolutions=(),
            z_channels=8,
            embed_dim=8,
            n_embed=64,
            perceptual_weight=0.0,
            disc_start=120,
            disc_weight=0.8,
            disc_num_layers=2,
            disc_ndf=16,
            base_learning_rate=2e-3 / 16,
            batch_size=16,
            num_steps=240,
        )

    @classmethod
    def from_dict(cls, values: dict) -> VQGANConfig:
        return config_from_dict(cls, values)

    @property
    def factor(self) -> int:
        """The down-sampling factor f = 2^(levels − 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    def with_codebook(self, n_embed: int) -> VQGANConfig:
        return replace(self, n_embed=n_embed)

    # the views: the same settings split into architecture, loss and optimiser

    @property
    def ddconfig(self) -> DDConfig:
        """The encoder/decoder architecture (the official ``ddconfig``; ``double_z`` False)."""
        return DDConfig(
            double_z=False,
            z_channels=self.z_channels,
            resolution=self.resolution,
            in_channels=self.in_channels,
            out_ch=self.out_ch,
            ch=self.ch,
            ch_mult=self.ch_mult,
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=self.attn_resolutions,
            dropout=self.dropout,
        )

    @property
    def architecture(self) -> VQModelConfig:
        """What :class:`VQModel` builds: ``ddconfig`` and the codebook."""
        return VQModelConfig(
            ddconfig=self.ddconfig,
            n_embed=self.n_embed,
            embed_dim=self.embed_dim,
            beta=self.beta,
            legacy=self.legacy,
        )

    @property
    def loss(self) -> GANAutoencoderLossConfig:
        """The loss settings (``lossconfig``) for ``LitGANAutoencoder``."""
        return GANAutoencoderLossConfig(
            disc_start=self.disc_start,
            disc_weight=self.disc_weight,
            perceptual_weight=self.perceptual_weight,
            disc_num_layers=self.disc_num_layers,
            disc_in_channels=self.disc_in_channels,
            disc_ndf=self.disc_ndf,
            disc_loss=self.disc_loss,
            codebook_weight=self.codebook_weight,
        )

    @property
    def optimizer(self) -> GANOptimizerConfig:
        """Both Adams' settings: ``base_learning_rate``, ``batch_size``, ``betas``."""
        return GANOptimizerConfig(
            base_learning_rate=self.base_learning_rate,
            batch_size=self.batch_size,
            betas=self.betas,
        )


class VQModel(nn.Module):
    """The VQGAN autoencoder (without its loss module, which is a training-time companion).

    Built from a :class:`VQModelConfig` or from chapter 10's :class:`VQGANConfig` (its
    ``architecture``); ``config`` is kept as given. A :class:`~esser_lab.nn.first_stage.FirstStage`:
    ``encode_latent`` gives the latent before quantisation and ``decode_latent`` quantises it
    first, as latent diffusion's ``VQModelInterface`` (its diffusion models run on those
    latents).
    """

    def __init__(self, config: VQModelConfig | VQGANConfig) -> None:
        super().__init__()
        if isinstance(config, VQGANConfig):
            arch = config.architecture
        elif isinstance(config, VQModelConfig):
            arch = config
        else:
            raise TypeError(
                f"config must be a VQModelConfig or a VQGANConfig, got {type(config).__name__}"
            )
        self.config = config
        # this order (encoder, decoder, codebook, the 1×1 convs) fixes the initial weights
        self.encoder = encoder_from(arch.ddconfig)
        self.decoder = decoder_from(arch.ddconfig)
        self.quantize = VectorQuantizer(
            arch.n_embed, arch.embed_dim, beta=arch.beta, legacy=arch.legacy
        )
        self.quant_conv = nn.Conv2d(arch.ddconfig.z_channels, arch.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(arch.embed_dim, arch.ddconfig.z_channels, 1)

    @property
    def factor(self) -> int:
        return self.config.factor

    @property
    def latent_channels(self) -> int:
        return self.config.embed_dim

    def _pre_quant(self, x: Tensor) -> Tensor:
        check_images(self, x)
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> QuantizerOutput:
        return self.quantize(self._pre_quant(x))

    def decode(self, z_q: Tensor) -> Tensor:
        shape = ("batch", self.config.embed_dim, "h", "w")
        check_tensor(z_q, "z_q", shape, like=self, training=self.training)
        return self.decoder(self.post_quant_conv(z_q))

    def decode_code(self, indices: Tensor) -> Tensor:
        """Images from code indices ``(b, h, w)``."""
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        q = self.encode(x)
        return self.decode(q.z_q), q

    def encode_latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The latent before quantisation, ``(b, embed_dim, h/f, w/f)`` (``generator`` unused).

        # official code (``VQModelInterface.encode``): latent diffusion diffuses these
        # unquantised latents and quantises only when decoding.
        """
        return self._pre_quant(x)

    def decode_latent(self, z: Tensor) -> Tensor:
        """Images from a (diffused) latent: replaced by its nearest codes, then decoded."""
        return self.decode_code(self.quantize.nearest(z))

    def last_layer(self) -> Tensor:
        """``decoder.conv_out.weight``: where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight
