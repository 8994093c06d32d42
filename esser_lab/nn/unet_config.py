"""The configuration of the LDM UNet (:mod:`esser_lab.nn.unet`): the official yaml's
``unet_config.params``, field by field, with the released models as presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from esser_lab.config import check_fields, check_positive

__all__ = ["UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """The ``unet_config.params`` of the official yaml files, field by field.

    Defaults: the released class-conditional ImageNet LDM (``models/ldm/cin256/config.yaml``,
    VQ-f8 latents 32×32×4, the class as a 512-d cross-attention token), which :meth:`paper`
    names. ``num_heads`` / ``num_head_channels`` use the official ``-1`` for "not set" (one of
    them must be set; ``num_head_channels`` wins); ``legacy`` keeps the official default True
    (see :meth:`attention_heads`). ``image_size`` is recorded but, as officially, unused: any
    side divisible by 2^(levels − 1) goes.

    Not carried over (no released config uses them): ``dims`` ≠ 2, ``use_fp16``,
    ``num_heads_upsample``, ``use_new_attention_order``, ``n_embed``.
    """

    image_size: int = 32
    in_channels: int = 4
    model_channels: int = 256
    out_channels: int = 4
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    dropout: float = 0.0
    channel_mult: tuple[int, ...] = (1, 2, 4)
    conv_resample: bool = True
    num_classes: int | None = None
    num_heads: int = -1
    num_head_channels: int = 32
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    use_spatial_transformer: bool = True
    transformer_depth: int = 1
    context_dim: int | None = 512
    legacy: bool = True
    use_checkpoint: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self,
            ("image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks"),
        )
        check_positive(self, ("transformer_depth",))
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult must be non-empty and ≥ 1, got {self.channel_mult}")
        widths = [self.model_channels * m for m in self.channel_mult]
        if any(w % 32 for w in widths):
            raise ValueError(
                f"every width model_channels × channel_mult must be divisible by the 32 groups "
                f"of GroupNorm32, got {widths}"
            )
        reachable = [2**i for i in range(len(self.channel_mult))]
        if any(ds not in reachable for ds in self.attention_resolutions):
            raise ValueError(
                f"attention_resolutions are down-sampling factors, here one of {reachable}; "
                f"got {self.attention_resolutions}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"UNetConfig.num_classes must be None or ≥ 1, got {self.num_classes}")
        if self.context_dim is not None and self.context_dim < 1:
            raise ValueError(f"UNetConfig.context_dim must be None or ≥ 1, got {self.context_dim}")
        if self.use_spatial_transformer != (self.context_dim is not None):
            raise ValueError(
                "use_spatial_transformer and context_dim go together (the official asserts): "
                f"got use_spatial_transformer={self.use_spatial_transformer}, "
                f"context_dim={self.context_dim}"
            )
        for name in ("num_heads", "num_head_channels"):
            if getattr(self, name) != -1 and getattr(self, name) < 1:
                raise ValueError(f"UNetConfig.{name} must be -1 (not set) or ≥ 1")
        if self.num_heads == -1 and self.num_head_channels == -1:
            raise ValueError("set num_heads or num_head_channels (both are -1)")
        attended = {
            w for w, ds in zip(widths, reachable, strict=True) if ds in self.attention_resolutions
        }
        for width in sorted(attended | {widths[-1]}):  # the middle block always attends
            heads, dim_head = self.attention_heads(width)
            if heads < 1 or dim_head < 1 or (not self.use_spatial_transformer and width % heads):
                raise ValueError(
                    f"attention at width {width}: num_heads={self.num_heads}, "
                    f"num_head_channels={self.num_head_channels} give {heads} heads of "
                    f"{dim_head} channels; the fused qkv needs heads ≥ 1 dividing the width"
                )

    def attention_heads(self, channels: int) -> tuple[int, int]:
        """(heads, channels per head) of the attention layer at width ``channels``.

        The arithmetic of ``UNetModel.__init__``: with ``num_head_channels`` set, heads =
        ``channels // num_head_channels``; else ``num_heads`` heads of ``channels // num_heads``.
        With ``legacy`` True a ``SpatialTransformer`` takes ``channels // heads`` per head (the
        same unless ``num_head_channels`` does not divide the width: then its inner width is
        ``channels`` again, not heads × num_head_channels). The ``AttentionBlock`` always splits
        its width evenly over the heads.
        """
        if self.num_head_channels == -1:
            heads = self.num_heads
            dim_head = channels // self.num_heads
        else:
            heads = channels // self.num_head_channels
            dim_head = self.num_head_channels
        if self.use_spatial_transformer:
            if self.legacy:
                dim_head = channels // heads if heads > 0 else 0
            return heads, dim_head
        # the official AttentionBlock gets num_head_channels = this, and -1 means num_heads
        passed = self.num_head_channels if self.legacy else dim_head
        if passed == -1:
            heads = self.num_heads
        elif passed < 1 or channels % passed:
            return 0, 0  # the official code asserts; the config refuses it
        else:
            heads = channels // passed
        return heads, channels // heads

    @classmethod
    def cin256(cls) -> UNetConfig:
        """Class-conditional ImageNet LDM-VQ-8 (``models/ldm/cin256``, v1: 1000 classes, no null
        class): 395.0 M parameters."""
        return cls()

    @classmethod
    def cin256_v2(cls) -> UNetConfig:
        """The guided class-conditional ImageNet LDM-4 (``configs/latent-diffusion/cin256-v2.yaml``,
        the paper's Table 3 model): VQ-f4 latents 64×64×3, widths 192·(1, 2, 3, 5), attention at
        ds 8, 4, 2 with one head, a 512-d class token by cross-attention."""
        return replace(
            cls(),
            image_size=64,
            in_channels=3,
            out_channels=3,
            model_channels=192,
            attention_resolutions=(8, 4, 2),
            channel_mult=(1, 2, 3, 5),
            num_heads=1,
            num_head_channels=-1,
        )

    @classmethod
    def paper(cls) -> UNetConfig:
        """The paper's configuration in this book: :meth:`cin256_v2`, the released guided
        class-conditional ImageNet model of the paper's Table 3, whose conditioning (a class token
        through cross-attention) and guidance the chapter reproduces at toy scale. SD v1 is
        :meth:`stable_diffusion_v1`, the unguided VQ-f8 ImageNet model :meth:`cin256`."""
        return cls.cin256_v2()

    @classmethod
    def stable_diffusion_v1(cls) -> UNetConfig:
        """SD 1.x (``configs/stable-diffusion/v1-inference.yaml``): 859.52 M, CLIP ViT-L/14 768-d
        text tokens, 8 heads (``legacy`` False), gradient checkpointing on."""
        return replace(
            cls(),
            model_channels=320,
            channel_mult=(1, 2, 4, 4),
            num_heads=8,
            num_head_channels=-1,
            context_dim=768,
            use_checkpoint=True,
            legacy=False,
        )

    @classmethod
    def celeba256(cls) -> UNetConfig:
        """Unconditional CelebA-HQ LDM-VQ-4 (``models/ldm/celeba256``; FFHQ and LSUN bedrooms
        alike): 64×64×3 latents, ADM attention blocks of 32 channels per head, 274.1 M."""
        return replace(
            cls(),
            image_size=64,
            in_channels=3,
            out_channels=3,
            model_channels=224,
            channel_mult=(1, 2, 3, 4),
            attention_resolutions=(8, 4, 2),
            use_spatial_transformer=False,
            context_dim=None,
        )

    @classmethod
    def churches256(cls) -> UNetConfig:
        """Unconditional LSUN-Churches LDM-KL-8 (``models/ldm/lsun_churches256``): scale-shift
        norm, residual up/down-sampling, 8 heads, 295.0 M."""
        return replace(
            cls(),
            model_channels=192,
            channel_mult=(1, 2, 2, 4, 4),
            attention_resolutions=(1, 2, 4, 8),
            num_heads=8,
            num_head_channels=-1,
            use_scale_shift_norm=True,
            resblock_updown=True,
            use_spatial_transformer=False,
            context_dim=None,
        )

    @classmethod
    def small(cls) -> UNetConfig:
        """16×16 latents on one GPU in minutes: the VQ-f8 ImageNet UNet (:meth:`cin256`, four
        latent channels, 32-channel heads) at widths 128/256/256, attention at ds 2 and 4."""
        return replace(
            cls.cin256(),
            image_size=16,
            model_channels=128,
            channel_mult=(1, 2, 2),
            attention_resolutions=(2, 4),
        )

    @classmethod
    def tiny(cls) -> UNetConfig:
        """8–16 px latents on 2 CPU cores: the VQ-f8 ImageNet UNet (:meth:`cin256`) at widths
        32/64, one block per level, a spatial transformer at ds 2 (two heads of 32) and a 32-d
        context."""
        return replace(
            cls.cin256(),
            image_size=8,
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(2,),
            context_dim=32,
        )
