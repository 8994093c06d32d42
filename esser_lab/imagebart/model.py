"""ImageBART (Esser, Rombach, Blattmann & Ommer, NeurIPS 2021; arXiv 2108.08827), chapter 13.

A hierarchy of coarse-to-fine autoregressive models over the codes of a VQGAN: the multinomial
diffusion of :mod:`esser_lab.diffusion.multinomial` corrupts the codes x_0 into x_1, …, x_T
(x_T pure noise for the geometric schedule), and one learned transition per scale,
p_θ(x_{t−1} | x_t), undoes one step. Scales t < T are encoder–decoder transformers
(:class:`~esser_lab.imagebart.xtransformer.XTransformer`): the encoder reads
``[t, x_t]`` (the scale as a token of the code vocabulary, ``scale_pos: 0`` in the configs), the
decoder writes x_{t−1} left to right after a start token (``sos_token`` 0). At t = T the input is
noise, so the official FFHQ models use a decoder-only minGPT there (``DecoderOnlyDenoiser``: the
sequence ``[T, x_{T−1}]``; esser_lab's :class:`~esser_lab.nn.transformer.GPT`, minGPT names).

Conventions: codes are *remapped* positions in the first stage's ``used`` list (K = len(used));
``t`` is the integer scale 1 … T (the module docstring of ``diffusion.multinomial``);
``transitions[i]`` serves scale i + 1 (or all scales when ``shared``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.config import check_fields, check_positive, config_from_dict
from esser_lab.diffusion.multinomial import MultinomialSchedule
from esser_lab.imagebart.xtransformer import XTransformer
from esser_lab.nn.transformer import GPT

__all__ = ["ImageBART", "ImageBARTConfig"]


@dataclass(frozen=True)
class ImageBARTConfig:
    """Defaults: the released FFHQ 4-scale geometric model (``configs/ffhq/4_scales/*``).

    Scales 1–3: ``ResidualScaledXTransformer`` (``residual``: the decoder's logits, scaled per
    scale, plus log q(x_t | x_{t−1}) as a function of x_{t−1}) dim 752, encoder depth 18,
    decoder depth 6, 16 heads, 548 tokens (the FFHQ VQGAN's 1024 codes remapped to the 548 in
    use), encoder length 257 (scale token + 16×16 codes), decoder 256; scale 4: ``GPT`` vocab
    548, block 256, 26 layers, 16 heads, width 800. Loss mix ``alpha`` 0 (hard) on scales 1–3,
    1 (soft) on scale 4.
    Top-k 548 at sampling. Optimiser: AdamW (0.9, 0.95), warm-up to lr 1e-4 over 10k steps then
    cosine (``LambdaWarmUpCosineScheduler``), batch 16, EMA of the weights.
    Not implemented: ``LitImageBART`` trains at a constant learning rate, keeps no EMA and
    trains all scales in one run; ``warm_up_steps`` is declared only, and the paper's
    warm-up + cosine, EMA and ``single_scale`` runs are out of scope (the checkpoint loader
    reads the released EMA weights).
    # official code: the released FFHQ models train each scale in its own run (``single_scale``);
    # ``shared=True`` (tiny/small) trains one encoder–decoder for every scale, the scale token
    # telling them apart, as the repository's joint-training config (alpha 1.0 on every scale).
    """

    num_codes: int = 548
    seq_len: int = 256
    n_scales: int = 4
    schedule: Literal["geometric"] = "geometric"
    alphas: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0)  # loss mix per scale 1 … T
    dim: int = 752
    enc_depth: int = 18
    dec_depth: int = 6
    heads: int = 16
    dim_head: int = 64  # x-transformers' default (the configs do not set it)
    last_scale: Literal["gpt", "xtransformer"] = "gpt"
    shared: bool = False
    residual: bool = True  # ResidualScaledXTransformer: scaled logits + log q(x_t | x_{t−1})
    gpt_n_layer: int = 26
    gpt_n_head: int = 16
    gpt_n_embd: int = 800
    sos_token: int = 0
    learning_rate: float = 1e-4
    warm_up_steps: int = 10_000
    batch_size: int = 16
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    top_k: int | None = 548
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self,
            (
                "num_codes",
                "seq_len",
                "n_scales",
                "dim",
                "enc_depth",
                "dec_depth",
                "heads",
                "dim_head",
            ),
        )
        check_positive(self, ("gpt_n_layer", "gpt_n_head", "gpt_n_embd", "batch_size"))
        if self.schedule != "geometric":
            raise ValueError(f"schedule must be 'geometric', got {self.schedule!r}")
        if len(self.alphas) != self.n_scales or any(not 0 <= a <= 1 for a in self.alphas):
            raise ValueError(
                f"alphas needs one loss mix in [0, 1] per scale ({self.n_scales}), "
                f"got {self.alphas}"
            )
        if self.n_scales >= self.num_codes:
            raise ValueError(
                f"the scale token shares the code vocabulary: need n_scales < num_codes, got "
                f"{self.n_scales} and {self.num_codes}"
            )
        if self.last_scale not in ("gpt", "xtransformer"):
            raise ValueError(f"last_scale must be 'gpt' or 'xtransformer', got {self.last_scale!r}")
        if self.gpt_n_embd % self.gpt_n_head:
            raise ValueError("gpt_n_embd must be divisible by gpt_n_head")
        if not 0 <= self.sos_token < self.num_codes:
            raise ValueError(f"sos_token must lie in [0, {self.num_codes}), got {self.sos_token}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be ≥ 1 or None, got {self.top_k}")
        if not self.temperature > 0 or not self.learning_rate > 0:
            raise ValueError("temperature and learning_rate must be > 0")

    @classmethod
    def paper(cls) -> ImageBARTConfig:
        """FFHQ, 4 scales, geometric schedule (the class defaults)."""
        return cls()

    @classmethod
    def small(cls, num_codes: int = 256, seq_len: int = 64) -> ImageBARTConfig:
        """A GPU-minutes model: 3 scales, width 256, encoder 6 / decoder 3 layers, shared."""
        return replace(
            cls.paper(), num_codes=num_codes, seq_len=seq_len, n_scales=3, alphas=(1.0, 1.0, 1.0),
            dim=256, enc_depth=6, dec_depth=3, heads=8, dim_head=32, last_scale="xtransformer",
            shared=True,
            learning_rate=5e-4, warm_up_steps=0, batch_size=64, top_k=None,
        )  # fmt: skip

    @classmethod
    def tiny(cls, num_codes: int = 32, seq_len: int = 64) -> ImageBARTConfig:
        """One shared encoder–decoder (2 + 2 layers, width 32, 4 heads of 8) for all 3 scales.

        One network for every scale as the repository's joint-training config
        (``ffhq_4-scales_joint-training.yaml``), with its loss mix: soft (``alpha`` 1) on every
        scale. tiny-only: lr 2e-3
        without warm-up (a few hundred steps, not 1.5 M); plain sampling (top-k 548 exceeds the
        vocabulary).
        """
        return replace(
            cls.paper(), num_codes=num_codes, seq_len=seq_len, n_scales=3, alphas=(1.0, 1.0, 1.0),
            dim=32, enc_depth=2, dec_depth=2, heads=4, dim_head=8, last_scale="xtransformer",
            shared=True,
            learning_rate=2e-3, warm_up_steps=0, batch_size=32, top_k=None,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict) -> ImageBARTConfig:
        return config_from_dict(cls, values)

    def schedule_tensor(self) -> MultinomialSchedule:
        return MultinomialSchedule.geometric(self.n_scales)

    @property
    def n_xtransformers(self) -> int:
        """How many encoder–decoders: 1 when shared, else one per scale that is not a GPT."""
        if self.shared:
            return 1
        return self.n_scales - (1 if self.last_scale == "gpt" else 0)

    def build_xtransformer(self) -> XTransformer:
        return XTransformer(
            dim=self.dim, enc_num_tokens=self.num_codes, enc_depth=self.enc_depth,
            enc_heads=self.heads, enc_max_seq_len=self.seq_len + 1,
            dec_num_tokens=self.num_codes, dec_depth=self.dec_depth, dec_heads=self.heads,
            dec_max_seq_len=self.seq_len, n_scales=self.n_scales if self.residual else None,
            dim_head=self.dim_head,
        )  # fmt: skip

    def build_gpt(self) -> GPT:
        """The last scale's minGPT: ``[T, x_{T−1}]`` without its last token (block = seq_len)."""
        return GPT(
            vocab_size=self.num_codes, block_size=self.seq_len, n_layer=self.gpt_n_layer,
            n_head=self.gpt_n_head, n_embd=self.gpt_n_embd,
        )  # fmt: skip


class ImageBART(nn.Module):
    """The T transitions p_θ(x_{t−1} | x_t) of ImageBART and the schedule buffers.

    Buffers (official names): ``alphats`` α_t and ``alphacum`` ᾱ_t for t = 0 … T (float32), and
    ``sos_token`` (1,). The first stage is not part of this module: the chapter encodes the codes
    once with a frozen :class:`~esser_lab.imagebart.first_stage.RemappedVQModel`.
    """

    def __init__(self, config: ImageBARTConfig) -> None:
        super().__init__()
        if not isinstance(config, ImageBARTConfig):
            raise TypeError(f"config must be an ImageBARTConfig, got {type(config).__name__}")
        self.config = config
        self.transitions = nn.ModuleList(
            [config.build_xtransformer() for _ in range(config.n_xtransformers)]
        )
        self.last_scale = config.build_gpt() if config.last_scale == "gpt" else None
        schedule = config.schedule_tensor()  # computed on the CPU, placed on the default device
        device = torch.empty(0).device  # "meta" inside a torch.device("meta") context
        self.register_buffer("alphats", schedule.alphas.float().to(device))
        self.register_buffer("alphacum", schedule.alphacum.float().to(device))
        self.register_buffer("sos_token", torch.tensor([config.sos_token]))

    @property
    def schedule(self) -> MultinomialSchedule:
        return self.config.schedule_tensor()

    def network(self, t: int) -> XTransformer | GPT:
        """The network of scale ``t`` ∈ {1, …, T}."""
        T = self.config.n_scales  # noqa: N806
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= T:
            raise ValueError(f"scale t must be an int in [1, {T}], got {t!r}")
        if t == T and self.last_scale is not None:
            return self.last_scale
        return self.transitions[0 if self.config.shared else t - 1]

    def _check(self, name: str, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.is_floating_point() or x.dim() != 2:
            raise TypeError(
                f"{name} must be integer codes (b, {self.config.seq_len}), got "
                f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
            )
        if x.shape[1] != self.config.seq_len:
            raise ValueError(f"{name} must be (b, {self.config.seq_len}), got {tuple(x.shape)}")
        if x.shape[0] < 1:
            raise ValueError(f"{name} must hold at least one example, got an empty batch")

    def transition_logits(self, t: Tensor, x_t: Tensor, logits: Tensor) -> Tensor:
        """The encoder–decoder's output for scales ``t`` (b,): with ``residual`` (the official
        ``ResidualScaledXTransformer``), exp(log_scalors[t − 1]) · logits + log(α_t onehot(x_t) +
        (1 − α_t) / K) at the first ``logits.shape[1]`` positions; else ``logits`` unchanged."""
        if not self.config.residual:
            return logits
        net = self.transitions[0] if self.config.shared else None
        if net is None:  # one network per scale: all samples of a call share t
            net = self.network(int(t[0]))
        scalors = net.log_scalors[t - 1].exp().view(-1, 1, 1).to(logits.dtype)
        alpha = self.alphats[t].view(-1, 1, 1)
        k = self.config.num_codes
        onehot = F.one_hot(x_t[:, : logits.shape[1]], k).to(alpha.dtype)
        residual = torch.log(alpha * onehot + (1 - alpha) / k)  # (b, l, K)
        return logits * scalors + residual.to(logits.dtype)

    def scale_logits(self, t: int, x_t: Tensor, x_prev: Tensor) -> Tensor:
        """Teacher-forced logits (b, l, K) of p_θ(x_{t−1} | x_t) at one scale ``t``.

        Encoder–decoder: encoder ``[t, x_t]``, decoder ``[sos, x_{t−1}]`` without its last
        token. GPT (t = T): ``[T, x_{T−1}]`` without its last token; x_T is not read (noise).
        """
        self._check("x_t", x_t)
        self._check("x_prev", x_prev)
        net = self.network(t)
        scale = torch.full_like(x_t[:, :1], t)
        if isinstance(net, GPT):
            return net(torch.cat((scale, x_prev), 1)[:, :-1])
        sos = self.sos_token.to(x_prev).expand(x_prev.shape[0], 1)
        logits = net(torch.cat((scale, x_t), 1), torch.cat((sos, x_prev), 1)[:, :-1])
        return self.transition_logits(scale[:, 0], x_t, logits)

    def forward(self, t: Tensor, x_t: Tensor, x_prev: Tensor) -> Tensor:
        """Teacher-forced logits (b, l, K) for per-sample scales ``t`` (b,), each sample routed
        to its scale's network."""
        if not isinstance(t, Tensor) or t.dim() != 1 or t.shape[0] != x_t.shape[0]:
            raise ValueError(f"t must be (b,) = ({x_t.shape[0]},) integer scales, got {t!r}")
        self._check("x_t", x_t)
        if self.config.shared and self.last_scale is None:  # one network: one call
            return self.scale_logits_shared(t, x_t, x_prev)
        logits = None
        for scale in range(1, self.config.n_scales + 1):
            chosen = t == scale
            if bool(chosen.any()):
                out = self.scale_logits(scale, x_t[chosen], x_prev[chosen])
                if logits is None:
                    logits = out.new_empty(*x_t.shape, out.shape[-1])
                logits[chosen] = out
        if logits is None or not in_range(t, 1, self.config.n_scales + 1, training=self.training):
            raise ValueError(f"scales must lie in [1, {self.config.n_scales}], got {t.tolist()}")
        return logits

    def scale_logits_shared(self, t: Tensor, x_t: Tensor, x_prev: Tensor) -> Tensor:
        """:meth:`forward` for one shared encoder–decoder: per-sample scale tokens, one call."""
        self._check("x_prev", x_prev)
        # read where it costs no host sync (esser_lab.checks: not inside a training step)
        if not in_range(t, 1, self.config.n_scales + 1, training=self.training):
            raise ValueError(f"scales must lie in [1, {self.config.n_scales}], got {t.tolist()}")
        net = self.transitions[0]
        sos = self.sos_token.to(x_prev).expand(x_prev.shape[0], 1)
        enc = torch.cat((t.to(x_t)[:, None], x_t), 1)
        logits = net(enc, torch.cat((sos, x_prev), 1)[:, :-1])
        return self.transition_logits(t.to(x_t.device), x_t, logits)
