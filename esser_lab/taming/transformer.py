"""The second stage of Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841).

``TamingTransformer`` follows ``Net2NetTransformer`` (``taming/models/cond_transformer.py``): a
frozen VQGAN (``first_stage_model``, eval mode, no gradients) turns an image into code indices s,
flattened row-major (b, h·w); a GPT (``esser_lab.nn.transformer``) models
p(s | c) = ∏ᵢ p(sᵢ | s₍<ᵢ₎, c) ((T8) of chapter 10, the paper's Sec. 3.2) and is trained with
the cross-entropy of the next index, E[−log p(s)]. The condition c is a prefix of tokens from the
*same* vocabulary as the codes:

* ``"unconditional"``: one start token ``sos_token`` (the official ``SOSProvider``, default 0);
* ``"class"``: the class index itself as the one token (``Labelator``; the ImageNet model shares
  the 16384-entry embedding between its 1000 class tokens and its codes).

Sequence cat(c, s); the GPT reads it without its last token and the logits from position
len(c) − 1 on predict s. ``pkeep`` < 1 replaces each *input* code by a uniformly random one with
probability 1 − pkeep during training (the targets stay clean); the released configs keep 1.0.
Attribute names ``transformer`` / ``first_stage_model`` match the released checkpoints, whose
``transformer.*`` and ``first_stage_model.*`` parts therefore load into this module strictly
(the class-conditional and unconditional condition stages have no weights).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn import placement
from esser_lab.nn.transformer import GPT
from esser_lab.taming.model import VQModel
from esser_lab.taming.sampling import sample

__all__ = ["TamingTransformer", "TamingTransformerConfig", "next_token_loss"]


@dataclass(frozen=True)
class TamingTransformerConfig:
    """Defaults: the released class-conditional ImageNet transformer (1.4 B parameters).

    ``2021-04-03T19-39-50_cin_transformer``: vocab 16384 (the f16-16384 VQGAN), block_size 256
    (1 class token + 16×16 codes − 1), 48 layers, 24 heads, width 1536 (config as posted in
    issue #104). Decoding from the README: top-k 600, top-p 0.92, temperature 1.0. Optimiser:
    AdamW (0.9, 0.95), weight decay 0.01 on Linear weights; learning rate = base 4.5e-6 ×
    batch size × GPUs (``main.py``'s scaling; base 4.5e-6 in every transformer config of the
    repository). # unverified: the cIN per-GPU batch size is not published; the repository's
    transformer configs use 2 (FacesHQ, D-RIN) to 6 (COCO), so 2 stands here.
    """

    vocab_size: int = 16384
    block_size: int = 256
    n_layer: int = 48
    n_head: int = 24
    n_embd: int = 1536
    embd_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    n_unmasked: int = 0
    conditioning: Literal["unconditional", "class"] = "class"
    n_classes: int = 1000
    sos_token: int = 0
    pkeep: float = 1.0
    base_learning_rate: float = 4.5e-6
    scale_lr: bool = True  # learning rate = base × batch size × devices (official main.py)
    batch_size: int = 2
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    temperature: float = 1.0
    top_k: int | None = 600
    top_p: float | None = 0.92

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "batch_size")
        )
        check_positive(self, ("n_unmasked", "weight_decay"), 0)
        for name in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.base_learning_rate > 0 or not self.temperature > 0:
            raise ValueError("need base_learning_rate > 0 and temperature > 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be ≥ 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1] or be None, got {self.top_p}")
        check_betas(self)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.conditioning not in ("unconditional", "class"):
            raise ValueError(
                f"conditioning must be 'unconditional' or 'class', got {self.conditioning!r}"
            )
        if self.conditioning == "class" and not 1 <= self.n_classes <= self.vocab_size:
            raise ValueError(
                f"class tokens share the vocabulary: need 1 ≤ n_classes ≤ vocab_size="
                f"{self.vocab_size}, got {self.n_classes}"
            )
        if not 0 <= self.sos_token < self.vocab_size:
            raise ValueError(f"sos_token must lie in [0, {self.vocab_size}), got {self.sos_token}")
        if not 0.0 < self.pkeep <= 1.0:
            raise ValueError(f"pkeep must lie in (0, 1], got {self.pkeep}")

    @classmethod
    def paper(cls) -> TamingTransformerConfig:
        """Class-conditional ImageNet, 1.4 B parameters (the class defaults)."""
        return cls()

    @classmethod
    def small(cls) -> TamingTransformerConfig:
        """A GPU-minutes model over up to 16×16 codes of a 512-code VQGAN, 10 classes."""
        return replace(
            cls.paper(), vocab_size=512, n_layer=8, n_head=8, n_embd=256, n_classes=10,
            # small-only: a usable learning rate for a few thousand steps
            base_learning_rate=3e-4, scale_lr=False, batch_size=64, top_k=None, top_p=None,
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> TamingTransformerConfig:
        """2 layers, 4 heads, width 64 over up to 8×8 codes of ``VQGANConfig.tiny()`` (64 codes)."""
        return replace(
            cls.paper(), vocab_size=64, block_size=64, n_layer=2, n_head=4, n_embd=64,
            n_classes=10,
            # tiny-only: lr 1e-3 unscaled (4.5e-6 × batch would not move in a few hundred
            # steps); plain sampling (top-k 600 exceeds a 64-code vocabulary)
            base_learning_rate=1e-3, scale_lr=False, batch_size=32, top_k=None, top_p=None,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict) -> TamingTransformerConfig:
        return config_from_dict(cls, values)

    def learning_rate(self, batch_size: int | None = None, devices: int = 1) -> float:
        """base × batch size × devices when ``scale_lr`` (official ``main.py``), else base."""
        batch_size = self.batch_size if batch_size is None else batch_size
        return self.base_learning_rate * (batch_size * devices if self.scale_lr else 1)

    def build_gpt(self) -> GPT:
        return GPT(
            vocab_size=self.vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            embd_pdrop=self.embd_pdrop,
            resid_pdrop=self.resid_pdrop,
            attn_pdrop=self.attn_pdrop,
            n_unmasked=self.n_unmasked,
        )


def next_token_loss(logits: Tensor, target: Tensor) -> Tensor:
    """(T8): E[−log p(s)], the mean cross-entropy of each code given its past (nats/token).

    ``logits`` (b, l, vocab) at the code positions, ``target`` (b, l) the code indices.
    """
    return F.cross_entropy(rearrange(logits, "b l k -> (b l) k"), target.reshape(-1))


class TamingTransformer(nn.Module):
    """A GPT over the codes of a frozen VQGAN, unconditional or class-conditional (module doc)."""

    def __init__(self, config: TamingTransformerConfig, first_stage: VQModel) -> None:
        super().__init__()
        if not isinstance(first_stage, VQModel):
            raise TypeError(f"first_stage must be a VQModel, got {type(first_stage).__name__}")
        if first_stage.config.n_embed != config.vocab_size:
            raise ValueError(
                f"vocab_size={config.vocab_size} must equal the VQGAN's codebook size "
                f"n_embed={first_stage.config.n_embed}"
            )
        self.config = config
        self.latent_shape = (first_stage.config.resolution // first_stage.config.factor,) * 2
        tokens = self.cond_length + self.latent_shape[0] * self.latent_shape[1] - 1
        if tokens > config.block_size:
            raise ValueError(
                f"{self.cond_length} condition token + {self.latent_shape} codes need "
                f"block_size ≥ {tokens}, got {config.block_size}"
            )
        # frozen: eval mode forever (official ``disabled_train``), no gradients
        self.first_stage_model = first_stage.requires_grad_(False).eval()
        self.transformer = config.build_gpt()

    @property
    def cond_length(self) -> int:
        return 1  # one sos token or one class token

    def train(self, mode: bool = True) -> TamingTransformer:
        super().train(mode)
        self.first_stage_model.eval()  # the frozen first stage never leaves eval mode
        return self

    @torch.no_grad()
    def encode_to_z(self, x: Tensor) -> Tensor:
        """Code indices (b, h·w), row-major, of images ``x`` (b, c, H, W) in [−1, 1]."""
        indices = self.first_stage_model.encode(x).indices  # (b, h, w)
        return rearrange(indices, "b h w -> b (h w)")

    def condition_tokens(self, batch_size: int, labels: Tensor | None = None) -> Tensor:
        """The prefix c (b, 1): the sos token, or the class labels as tokens."""
        device = self.transformer.pos_emb.device
        if self.config.conditioning == "unconditional":
            if labels is not None:
                raise ValueError("an unconditional model takes no labels")
            return torch.full((batch_size, 1), self.config.sos_token, device=device)
        if labels is None or labels.dim() != 1 or labels.shape[0] != batch_size:
            raise ValueError(
                f"a class-conditional model needs labels (b,) = ({batch_size},), got "
                f"{None if labels is None else tuple(labels.shape)}"
            )
        n_classes = self.config.n_classes
        # the range is read outside training steps only (esser_lab.checks: a device-side
        # assert on CUDA inside them, no host sync)
        if labels.is_floating_point() or not in_range(labels, 0, n_classes):
            raise ValueError(
                f"labels must be integer classes in [0, {self.config.n_classes}), got "
                f"{labels.dtype} in [{labels.min().item()}, {labels.max().item()}]"
            )
        return labels.long().to(device)[:, None]

    def forward(
        self,
        z_indices: Tensor,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits (b, h·w, vocab) for each code given its past and c, and the targets (b, h·w)."""
        if not isinstance(z_indices, Tensor) or z_indices.is_floating_point():
            got = getattr(z_indices, "dtype", type(z_indices).__name__)
            raise TypeError(f"z_indices must be an integer tensor of codes (b, h·w), got {got}")
        if z_indices.dim() != 2 or z_indices.shape[0] < 1:
            raise ValueError(f"z_indices must be (b, h·w) with b ≥ 1, got {tuple(z_indices.shape)}")
        c_indices = self.condition_tokens(z_indices.shape[0], labels)
        inputs = z_indices
        if self.training and self.config.pkeep < 1.0:  # noise augmentation of the inputs only
            keep = placement.rand(z_indices.shape, generator=generator, device=z_indices.device)
            noise = placement.randint(
                self.config.vocab_size, z_indices.shape, generator=generator,
                device=z_indices.device,
            )  # fmt: skip
            inputs = torch.where(keep < self.config.pkeep, z_indices, noise)
        sequence = torch.cat((c_indices, inputs), dim=1)  # (b, 1 + h·w)
        logits = self.transformer(sequence[:, :-1])  # position i predicts token i + 1
        return logits[:, c_indices.shape[1] - 1 :], z_indices

    def loss(
        self, x: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """(T8) on images ``x``: encode to codes, then the next-code cross-entropy."""
        return next_token_loss(*self(self.encode_to_z(x), labels, generator))

    @torch.no_grad()
    def nll_per_token(
        self, z_indices: Tensor, labels: Tensor | None = None, batch_size: int = 256
    ) -> float:
        """Mean −log p(sᵢ | s₍<ᵢ₎, c) in nats per code on held-out codes (b, h·w), no noise.

        Codes come from :meth:`encode_to_z`. log(vocab_size) is the uniform baseline.
        """
        if z_indices.dim() != 2 or z_indices.shape[0] < 1:
            raise ValueError(f"z_indices must be (b, h·w) with b ≥ 1, got {tuple(z_indices.shape)}")
        was_training = self.training
        self.eval()
        total, count = 0.0, 0
        device = self.transformer.pos_emb.device  # held-out codes may live on the CPU
        try:
            for start in range(0, z_indices.shape[0], batch_size):
                chunk = z_indices[start : start + batch_size].to(device)
                chunk_labels = None if labels is None else labels[start : start + batch_size]
                logits, target = self(chunk, chunk_labels)
                total += float(next_token_loss(logits, target)) * target.numel()
                count += target.numel()
        finally:
            self.train(was_training)
        return total / count

    @torch.no_grad()
    def sample_codes(
        self,
        labels: Tensor | None = None,
        num_samples: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Codes (b, h, w) drawn autoregressively (``esser_lab.taming.sampling.sample``).

        Class-conditional: one sample per entry of ``labels``; unconditional: ``num_samples``.
        ``temperature``, ``top_k`` and ``top_p`` default (``None``) to the config's decoding
        settings (paper: 1.0, 600, 0.92; tiny/small: no filtering); ``top_k=vocab_size`` and
        ``top_p=1.0`` switch the filters off.
        """
        if self.config.conditioning == "class":
            if labels is None:
                raise ValueError("a class-conditional model samples from labels (b,)")
            num_samples = labels.shape[0]
        elif num_samples is None or num_samples < 1:
            raise ValueError(f"an unconditional model needs num_samples ≥ 1, got {num_samples}")
        c_indices = self.condition_tokens(num_samples, labels)
        h, w = self.latent_shape
        codes = sample(
            self.transformer,
            c_indices,
            steps=h * w,
            temperature=self.config.temperature if temperature is None else temperature,
            top_k=self.config.top_k if top_k is None else top_k,
            top_p=self.config.top_p if top_p is None else top_p,
            use_cache=use_cache,
            generator=generator,
        )
        return rearrange(codes, "b (h w) -> b h w", h=h, w=w)

    @torch.no_grad()
    def sample_images(
        self,
        labels: Tensor | None = None,
        num_samples: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Images (b, c, H, W), roughly in [−1, 1]: sampled codes through ``decode_code``."""
        codes = self.sample_codes(
            labels, num_samples, temperature, top_k, top_p, use_cache, generator
        )
        return self.first_stage_model.decode_code(codes)
