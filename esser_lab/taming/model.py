"""VQGAN, the first stage of Taming Transformers (Esser, Rombach & Ommer, CVPR 2021).

``VQModel`` = ``Encoder`` → ``quant_conv`` (1×1) → ``VectorQuantizer`` → ``post_quant_conv`` (1×1)
→ ``Decoder``, with the official attribute names of ``taming/models/vqgan.py`` so that the released
checkpoints load strictly (``esser_lab.taming.checkpoint``). The network never imports Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor, nn

from esser_lab.config import config_from_dict
from esser_lab.nn.ddconv import Decoder, Encoder
from esser_lab.nn.quantize import QuantizerOutput, VectorQuantizer

__all__ = ["VQGANConfig", "VQModel"]


@dataclass(frozen=True)
class VQGANConfig:
    """Defaults: the released ImageNet VQGAN f16 |Z| = 1024 (``configs/imagenet_vqgan.yaml``).

    ``ch_mult`` (1, 1, 2, 2, 4) gives widths 128, 128, 256, 256, 512 and f = 16; attention at the
    16×16 level only (plus the always-present mid attention); ``z_channels = embed_dim = 256``.
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

    @classmethod
    def paper(cls, n_embed: int = 1024) -> VQGANConfig:
        """The released ImageNet f16 models: ``n_embed`` 1024 or 16384."""
        if n_embed not in (1024, 16384):
            raise ValueError(
                f"the released ImageNet f16 VQGANs have 1024 or 16384 codes, got {n_embed}"
            )
        return cls(n_embed=n_embed)

    @classmethod
    def from_dict(cls, values: dict) -> VQGANConfig:
        return config_from_dict(cls, values)

    @property
    def factor(self) -> int:
        """The down-sampling factor f = 2^(levels − 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    def with_codebook(self, n_embed: int) -> VQGANConfig:
        return replace(self, n_embed=n_embed)


class VQModel(nn.Module):
    """The VQGAN autoencoder (without its loss module, which is a training-time companion)."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = Encoder(
            ch=c.ch,
            ch_mult=c.ch_mult,
            num_res_blocks=c.num_res_blocks,
            attn_resolutions=c.attn_resolutions,
            in_channels=c.in_channels,
            resolution=c.resolution,
            z_channels=c.z_channels,
            dropout=c.dropout,
        )
        self.decoder = Decoder(
            ch=c.ch,
            out_ch=c.out_ch,
            ch_mult=c.ch_mult,
            num_res_blocks=c.num_res_blocks,
            attn_resolutions=c.attn_resolutions,
            resolution=c.resolution,
            z_channels=c.z_channels,
            dropout=c.dropout,
        )
        self.quantize = VectorQuantizer(c.n_embed, c.embed_dim, beta=c.beta, legacy=c.legacy)
        self.quant_conv = nn.Conv2d(c.z_channels, c.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(c.embed_dim, c.z_channels, 1)

    def encode(self, x: Tensor) -> QuantizerOutput:
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, z_q: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode_code(self, indices: Tensor) -> Tensor:
        """Images from code indices ``(b, h, w)``."""
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        q = self.encode(x)
        return self.decode(q.z_q), q

    def last_layer(self) -> Tensor:
        """``decoder.conv_out.weight``: where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight
