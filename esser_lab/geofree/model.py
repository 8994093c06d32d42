"""The geometry-free transformer (Rombach, Esser & Ommer, ICCV 2021; arXiv 2104.07652), chapter 12.

``GeoTransformer`` follows the official ``geofree/models/transformers/geogpt.py`` in its
``impl_nodepth`` variant: a frozen VQGAN (``first_stage_model``, chapter 10's
:class:`~esser_lab.taming.model.VQModel`) turns the source and the target view into code indices;
the camera, i.e. the relative rotation R (3×3), translation t (3), intrinsics K (3×3) and K⁻¹
(3×3), is flattened into 30 scalars, and **each scalar becomes one token** through one shared
``Linear(1 → d, bias=False)`` (:class:`MultiEmbedder`, ``emb_stage_model.fc.weight`` (d, 1)).
The GPT (:class:`esser_lab.nn.transformer.GPT`) reads

    [30 camera embeddings] [N source codes] [N target codes]

with the first 30 + N positions mutually visible (``n_unmasked``) and the target codes
autoregressive, and models p(target codes | source codes, camera) ((G1) of the chapter). No
depth, no warp, no 3-D prior: the geometry must be learnt. Depth enters only to fix the scale of
t (:func:`esser_lab.geofree.method.normalize_scale`).

Attribute names match the released checkpoints (``transformer.*``, ``first_stage_model.*``,
``emb_stage_model.*``), so those parts load strictly (:mod:`esser_lab.geofree.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn.first_stage import DDConfig
from esser_lab.nn.transformer import GPT
from esser_lab.taming.model import VQModel, VQModelConfig

__all__ = [
    "CAMERA_KEYS",
    "CAMERA_TOKENS",
    "GeoFreeConfig",
    "GeoTransformer",
    "MultiEmbedder",
    "first_stage_config",
]

CAMERA_KEYS = ("R", "t", "K", "K_inv")  # the official ``emb_stage_config.keys``, in order
CAMERA_TOKENS = 30  # 9 + 3 + 9 + 9 scalars, one token each


@dataclass(frozen=True)
class GeoFreeConfig:
    """Defaults: the released ``realestate_13x23_impl_nodepth`` transformer.

    First stage: the RealEstate10K VQGAN f16 (``ch_mult`` (1, 1, 2, 2, 4), attention at 16,
    z = embed = 256, 16384 codes) on 208×368 frames → 13×23 = 299 codes per view. GPT: vocab
    16384, 32 layers, 16 heads, width 1024; ``block_size`` 627 = 30 + 299 + 299 − 1 and
    ``n_unmasked`` 329 = 30 + 299. Optimiser: the official ``LambdaWarmUpCosineScheduler`` (5 k
    warm-up steps to a peak of 1.5e-4, cosine to 1e-8 at 500,001; ``lr_max`` stands here as
    ``learning_rate``) over AdamW (0.9, 0.95), weight decay 0.01 on Linear weights (the minGPT
    recipe); batch 8 × 2 accumulated.
    """

    vocab_size: int = 16384
    latent_shape: tuple[int, int] = (13, 23)
    n_layer: int = 32
    n_head: int = 16
    n_embd: int = 1024
    learning_rate: float = 1.5e-4
    warmup_steps: int = 5000
    batch_size: int = 8
    accumulate_grad_batches: int = 2
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    top_k: int | None = 100  # official ``log_images`` samples with top-k 100, temperature 1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self,
            ("vocab_size", "n_layer", "n_head", "n_embd", "batch_size", "accumulate_grad_batches"),
        )
        check_positive(self, ("warmup_steps", "weight_decay"), 0)
        if len(self.latent_shape) != 2 or min(self.latent_shape) < 1:
            raise ValueError(f"latent_shape must be (h, w) ≥ 1, got {self.latent_shape}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not self.learning_rate > 0 or not self.temperature > 0:
            raise ValueError("need learning_rate > 0 and temperature > 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be ≥ 1 or None, got {self.top_k}")
        check_betas(self)

    @property
    def num_codes(self) -> int:
        """N, the codes of one view (h·w)."""
        return self.latent_shape[0] * self.latent_shape[1]

    @property
    def n_unmasked(self) -> int:
        """30 camera tokens + N source codes: the mutually visible conditioning block."""
        return CAMERA_TOKENS + self.num_codes

    @property
    def block_size(self) -> int:
        """Conditioning + N target codes − 1 (the last code is predicted, never read)."""
        return self.n_unmasked + self.num_codes - 1

    @classmethod
    def paper(cls) -> GeoFreeConfig:
        return cls()

    @classmethod
    def small(cls) -> GeoFreeConfig:
        """A GPU-minutes model over 8×8 codes of a 256-code VQGAN."""
        return replace(
            cls.paper(), vocab_size=256, latent_shape=(8, 8), n_layer=8, n_head=8, n_embd=256,
            learning_rate=3e-4, warmup_steps=500, batch_size=64, accumulate_grad_batches=1,
            top_k=None,
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> GeoFreeConfig:
        """4 layers, 4 heads, width 64 over the 4×4 codes of :func:`first_stage_config` tiny.

        Four layers so that a probe has middle layers to read. Tiny-only training settings: a
        learning rate of 1e-3 with a short warm-up, batch 32, no accumulation; plain sampling
        (top-k 100 of a 128-code vocabulary would barely filter).
        """
        return replace(
            cls.paper(), vocab_size=128, latent_shape=(4, 4), n_layer=4, n_head=4, n_embd=64,
            learning_rate=1e-3, warmup_steps=20, batch_size=32, accumulate_grad_batches=1,
            top_k=None,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict) -> GeoFreeConfig:
        values = dict(values)
        if isinstance(values.get("latent_shape"), list):
            values["latent_shape"] = tuple(values["latent_shape"])
        return config_from_dict(cls, values)

    def build_gpt(self) -> GPT:
        return GPT(
            vocab_size=self.vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            n_unmasked=self.n_unmasked,
        )


def first_stage_config(preset: str = "paper") -> VQModelConfig:
    """The VQGAN of each preset: ``paper`` the RealEstate10K f16 (16384 codes, 208×368 frames;
    ``resolution`` 256 in the official ``ddconfig``); ``tiny`` f = 4 on 16-pixel views (4×4
    codes of a 128-entry codebook); ``small`` f = 4 on 32 pixels (8×8 codes, 256 codes)."""
    if preset == "paper":
        return VQModelConfig.paper(16384)
    if preset == "tiny":
        dd = DDConfig(
            double_z=False, z_channels=16, resolution=16, ch=32, ch_mult=(1, 2, 2),
            num_res_blocks=1, attn_resolutions=(),
        )  # fmt: skip
        return VQModelConfig(ddconfig=dd, n_embed=128, embed_dim=16)
    if preset == "small":
        dd = DDConfig(
            double_z=False, z_channels=64, resolution=32, ch=64, ch_mult=(1, 2, 2),
            num_res_blocks=2, attn_resolutions=(8,),
        )  # fmt: skip
        return VQModelConfig(ddconfig=dd, n_embed=256, embed_dim=64)
    raise ValueError(f"preset must be 'paper', 'small' or 'tiny', got {preset!r}")


class MultiEmbedder(nn.Module):
    """Camera tokens: every scalar of R, t, K, K⁻¹ through one shared ``Linear(1, d)``.

    ``forward(R=(b, 3, 3), t=(b, 3), K=(b, 3, 3), K_inv=(b, 3, 3))`` → (b, 30, d): the values
    flattened row-major in the key order ``CAMERA_KEYS`` (the official ``MultiEmbedder`` with
    ``n_positions`` 30, ``n_channels`` 1, ``bias`` False). The token's position, not its weight,
    tells the GPT which scalar it is: all 30 share ``fc`` and differ by ``pos_emb``.
    """

    def __init__(self, n_embd: int, keys: tuple[str, ...] = CAMERA_KEYS) -> None:
        super().__init__()
        self.keys = keys
        self.fc = nn.Linear(1, n_embd, bias=False)

    def forward(self, **camera: Tensor) -> Tensor:
        missing = [k for k in self.keys if k not in camera]
        extra = [k for k in camera if k not in self.keys]
        if missing or extra:
            raise ValueError(
                f"camera needs exactly the keys {self.keys}; missing {missing}, unexpected {extra}"
            )
        b = camera[self.keys[0]].shape[0]
        scalars = torch.cat([camera[k].reshape(b, -1) for k in self.keys], 1)  # (b, 30)
        if scalars.shape[1] != CAMERA_TOKENS:
            shapes = {k: tuple(camera[k].shape) for k in self.keys}
            raise ValueError(
                f"camera must give {CAMERA_TOKENS} scalars (R 3×3, t 3, K 3×3, K_inv 3×3), got "
                f"{scalars.shape[1]} from {shapes}"
            )
        return self.fc(scalars[..., None].to(self.fc.weight.dtype))  # (b, 30, d)


class GeoTransformer(nn.Module):
    """The ``impl_nodepth`` geometry-free transformer: camera tokens + source codes → target codes.

    ``first_stage`` is frozen (eval mode forever, no gradients), as the official
    ``disabled_train``; it encodes both views (the official ``cond_stage_config:
    "__is_first_stage__"``).
    """

    def __init__(self, config: GeoFreeConfig, first_stage: VQModel) -> None:
        super().__init__()
        if not isinstance(first_stage, VQModel):
            raise TypeError(f"first_stage must be a VQModel, got {type(first_stage).__name__}")
        if first_stage.config.n_embed != config.vocab_size:
            raise ValueError(
                f"vocab_size={config.vocab_size} must equal the VQGAN's n_embed="
                f"{first_stage.config.n_embed}"
            )
        self.config = config
        self.first_stage_model = first_stage.requires_grad_(False).eval()
        self.transformer = config.build_gpt()
        # official code: the embedder is built apart from the GPT and keeps torch's default
        # Linear init (U(−1, 1) for one input), not the GPT's N(0, 0.02)
        self.emb_stage_model = MultiEmbedder(config.n_embd)

    def train(self, mode: bool = True) -> GeoTransformer:
        super().train(mode)
        self.first_stage_model.eval()
        return self

    @torch.no_grad()
    def encode_to_z(self, x: Tensor) -> Tensor:
        """Code indices (b, N), row-major, of views ``x`` (b, 3, H, W) in [−1, 1]."""
        indices = self.first_stage_model.encode(x).indices  # (b, h, w)
        if tuple(indices.shape[1:]) != self.config.latent_shape:
            raise ValueError(
                f"the views give {tuple(indices.shape[1:])} codes, the config expects "
                f"latent_shape={self.config.latent_shape}"
            )
        return rearrange(indices, "b h w -> b (h w)")

    @torch.no_grad()
    def decode_to_img(self, indices: Tensor) -> Tensor:
        """Views (b, 3, H, W) from code indices (b, N)."""
        h, w = self.config.latent_shape
        return self.first_stage_model.decode_code(rearrange(indices, "b (h w) -> b h w", h=h, w=w))

    def forward(
        self, source_codes: Tensor, target_codes: Tensor, camera: dict[str, Tensor]
    ) -> Tensor:
        """Logits (b, N, vocab): entry i is p(target code i | codes < i, source, camera)."""
        n = self.config.num_codes
        for name, codes in (("source_codes", source_codes), ("target_codes", target_codes)):
            if codes.dim() != 2 or codes.shape[1] != n or codes.is_floating_point():
                raise ValueError(
                    f"{name} must be integer codes (b, N={n}), got {codes.dtype} "
                    f"{tuple(codes.shape)}"
                )
        embeddings = self.emb_stage_model(**camera)  # (b, 30, d)
        sequence = torch.cat((source_codes, target_codes), 1)[:, :-1]  # (b, 2N − 1)
        logits = self.transformer(sequence, embeddings=embeddings)  # (b, 30 + 2N − 1, vocab)
        return logits[:, self.config.n_unmasked - 1 :]  # (b, N, vocab)

    @torch.no_grad()
    def hidden_states(self, source_codes: Tensor, camera: dict[str, Tensor]) -> list[Tensor]:
        """The residual stream after the input and after each block, at the source positions.

        A list of n_layer + 1 tensors (b, N, d) (the official ``get_layers`` interface for
        layer probing, read over the conditioning block only: camera and source codes).
        """
        gpt = self.transformer
        x = gpt.embed(source_codes, 0, self.emb_stage_model(**camera))  # (b, 30 + N, d)
        layers = [x[:, CAMERA_TOKENS:]]
        for block in gpt.blocks:
            x, _ = block(x)
            layers.append(x[:, CAMERA_TOKENS:])
        return layers
