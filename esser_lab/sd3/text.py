"""Text conditioning of Stable Diffusion 3: the encoders' interface, the toy one, the real three.

Stable Diffusion 3 (Esser, Kulal, Blattmann et al., ICML 2024; arXiv 2403.03206, Sec. 2.2 and
App. B.2) conditions the MMDiT on three frozen text encoders: CLIP ViT-L/14 and OpenCLIP ViT-bigG/14
(each: the penultimate layer's 77 token features and the pooled, projected end-of-text feature)
and T5-XXL (the last layer's 77 token features, no pooled output). The network reads a dict:

* ``"context"``: ``(b, 154, 4096)`` = [CLIP-L ‖ CLIP-G] token features (77×(768+1280) = 77×2048)
  zero-padded on the channels to 4096, then T5's 77×4096 appended along the *sequence*;
* ``"pooled"``: ``(b, 2048)`` = CLIP-L's 768 pooled ‖ CLIP-G's 1280 pooled (the ``y`` vector
  that joins the timestep embedding).

:func:`assemble_sd3_condition` is that assembly as a pure function (``sd3_infer.SD3Inferencer.
get_cond`` of the official github.com/Stability-AI/sd3.5). Each encoder is dropped independently
with probability 46.4 % in training (Sec. 2.2: the ~10 % of fully unconditional samples that
classifier-free guidance needs; :func:`drop_captions`), and the unconditional input at sampling is
the *empty caption* encoded (:func:`null_condition`; official ``get_cond("")``).

Conventions: the toy's tokens are ids over :data:`esser_lab.sd3.data.VOCAB` (padding 0).
:class:`ToyTextEncoder` stands in for the three encoders at tiny/small/tests/CI (nothing is
downloaded); :class:`SD3TextEncoders` runs the real ones through ``transformers``, an optional
extra (``pip install transformers``), with the weights fetched by the user.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.data._raster import check_generator
from esser_lab.pretrained import TransformersSource, require_transformers
from esser_lab.sd3.data import CONTEXT_LENGTH, VOCAB, tokenize

__all__ = [
    "CAPTION_DROPOUT",
    "SD3TextEncoders",
    "TextEncoder",
    "ToyTextEncoder",
    "assemble_sd3_condition",
    "SD3_GROUPS",
    "TOY_GROUPS",
    "drop_captions",
    "null_condition",
]

#: Sec. 2.2: each of the three encoders is dropped with 46.4 % (0.464³ ≈ 10 % drop all three)
CAPTION_DROPOUT = 0.464
CLIP_L_WIDTH, CLIP_G_WIDTH, T5_WIDTH, SD3_TOKENS = 768, 1280, 4096, 77


@runtime_checkable
class TextEncoder(Protocol):
    """What the MMDiT needs of a text encoder: ``encode(tokens or captions) → {"context":
    (b, l, context_dim), "pooled": (b, pooled_dim)}`` (the MMDiT's ``cond`` dict)."""

    context_dim: int
    pooled_dim: int

    def encode(self, text: Tensor | Sequence[str]) -> dict[str, Tensor]: ...


def _sinusoidal(length: int, dim: int) -> Tensor:
    """Fixed sine/cosine positions ``(length, dim)`` (Vaswani et al. 2017, Sec. 3.5)."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table.float()


class ToyTextEncoder(nn.Module):
    """The toy's frozen text encoder: seeded token embeddings + fixed sinusoidal positions.

    Stands in for SD3's frozen CLIP/T5 stack: ``context`` = ``E[token] + P[position]``
    ``(b, l, context_dim)`` (the T5/CLIP token features; padding gets its own embedding and its
    position, as CLIP-L sees its padding tokens), ``pooled`` = a fixed random projection of the
    mean embedding of the caption's non-padding tokens ``(b, pooled_dim)`` (CLIP's pooled
    end-of-text feature: one vector that summarises the caption; the empty caption pools to 0).
    Embeddings are N(0, 1)/√d so each token feature has about unit norm. Nothing is trained: the
    MMDiT must learn to read it, as SD3's encoders are frozen.
    """

    def __init__(
        self,
        context_dim: int,
        pooled_dim: int,
        seed: int = 0,
        length: int = CONTEXT_LENGTH,
        vocab_size: int = len(VOCAB),
    ) -> None:
        super().__init__()
        for name, value in (("context_dim", context_dim), ("pooled_dim", pooled_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.context_dim, self.pooled_dim = context_dim, pooled_dim
        self.length, self.vocab_size = length, vocab_size
        generator = torch.Generator().manual_seed(seed)
        embedding = torch.randn(vocab_size, context_dim, generator=generator) / context_dim**0.5
        projection = torch.randn(context_dim, pooled_dim, generator=generator) / context_dim**0.5
        self.register_buffer("embedding", embedding)  # (vocab, d)
        self.register_buffer("position", _sinusoidal(length, context_dim) / context_dim**0.5)
        self.register_buffer("projection", projection)  # (d, p)

    def _tokens(self, text: Tensor | Sequence[str]) -> Tensor:
        if not isinstance(text, Tensor):
            return tokenize(list(text), self.length).to(self.embedding.device)
        if text.dim() != 2 or text.is_floating_point() or text.shape[1] != self.length:
            raise ValueError(
                f"tokens must be an integer tensor (b, {self.length}), got {text.dtype} "
                f"{tuple(text.shape)}"
            )
        if not in_range(text, 0, self.vocab_size):  # read outside training steps only
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}), got {int(text.min())} to "
                f"{int(text.max())}"
            )
        return text

    @torch.no_grad()
    def encode(self, text: Tensor | Sequence[str]) -> dict[str, Tensor]:
        """Token ids ``(b, length)`` (or caption strings) → ``{"context", "pooled"}``."""
        tokens = self._tokens(text)
        embedded = self.embedding[tokens]  # (b, l, d)
        words = (tokens != 0).unsqueeze(-1).float()  # (b, l, 1)
        mean = (embedded * words).sum(1) / words.sum(1).clamp_min(1.0)  # (b, d)
        return {"context": embedded + self.position, "pooled": mean @ self.projection}

    def forward(self, text: Tensor | Sequence[str]) -> dict[str, Tensor]:
        return self.encode(text)


def assemble_sd3_condition(
    clip_l: tuple[Tensor, Tensor], clip_g: tuple[Tensor, Tensor], t5: Tensor
) -> dict[str, Tensor]:
    """SD3's conditioning from its three encoders' outputs (official ``get_cond``).

    ``clip_l`` = (penultimate tokens ``(b, 77, 768)``, pooled ``(b, 768)``), ``clip_g`` =
    (``(b, 77, 1280)``, ``(b, 1280)``), ``t5`` = ``(b, 77, 4096)``. Returns ``context``
    ``(b, 154, 4096)`` (CLIP tokens concatenated on channels, zero-padded to T5's width, then
    T5's tokens after them) and ``pooled`` ``(b, 2048)``.
    """
    (l_tokens, l_pooled), (g_tokens, g_pooled) = clip_l, clip_g
    b = l_tokens.shape[0] if isinstance(l_tokens, Tensor) else None
    for name, value, shape in (
        ("clip_l tokens", l_tokens, (b, None, CLIP_L_WIDTH)),
        ("clip_l pooled", l_pooled, (b, CLIP_L_WIDTH)),
        ("clip_g tokens", g_tokens, (b, None, CLIP_G_WIDTH)),
        ("clip_g pooled", g_pooled, (b, CLIP_G_WIDTH)),
        ("t5 tokens", t5, (b, None, T5_WIDTH)),
    ):
        ok = isinstance(value, Tensor) and value.dim() == len(shape)
        ok = ok and all(s is None or s == v for s, v in zip(shape, value.shape, strict=True))
        if not ok:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            want = tuple("l" if s is None else s for s in shape)
            raise ValueError(f"{name} must have shape {want}, got {got}")
    if l_tokens.shape[1] != g_tokens.shape[1]:
        raise ValueError(
            f"the CLIP encoders must give the same number of tokens, got {l_tokens.shape[1]} "
            f"(clip_l) and {g_tokens.shape[1]} (clip_g)"
        )
    clip = torch.cat([l_tokens, g_tokens], dim=-1)  # (b, 77, 2048)
    clip = nn.functional.pad(clip, (0, T5_WIDTH - clip.shape[-1]))  # (b, 77, 4096)
    return {"context": torch.cat([clip, t5], dim=1), "pooled": torch.cat([l_pooled, g_pooled], -1)}


def _require_transformers():
    return require_transformers(
        "SD3TextEncoders runs CLIP-L, OpenCLIP bigG and T5-XXL",
        "the toy chapter uses ToyTextEncoder and needs nothing more",
    )


class SD3TextEncoders:
    """SD3's three frozen text encoders through ``transformers``, assembled as the official code.

    A local copy of the diffusers layout of an SD3 model (the sub-folders ``tokenizer`` /
    ``text_encoder`` = CLIP-L, ``tokenizer_2`` / ``text_encoder_2`` = OpenCLIP bigG,
    ``tokenizer_3`` / ``text_encoder_3`` = T5-XXL), fetched by the user, is read by
    :meth:`from_folder`; nothing is downloaded (``local_files_only``).

    As the official ``sd3_infer.py`` / ``other_impls.py``: both CLIPs give their *penultimate*
    layer without the final LayerNorm, 77 tokens (CLIP-L padded with its end token, CLIP-G with
    id 0); pooled = CLIP-L's end-of-text feature after the final LayerNorm, *unprojected*
    (``return_projected_pooled=False``) ‖ CLIP-G's projected one; T5 = its last layer, 77 tokens
    (padded with 0), no attention mask. Differences: prompts longer than 77 tokens are truncated
    for all three encoders (official: encoded in chunks of 77 and concatenated); diffusers'
    pipeline uses the projected pooled vector for CLIP-L too.
    """

    context_dim, pooled_dim = T5_WIDTH, CLIP_L_WIDTH + CLIP_G_WIDTH

    def __init__(
        self,
        tokenizers: Sequence[object],
        encoders: Sequence[nn.Module],
        device: str | torch.device = "cpu",
    ) -> None:
        """Built ``transformers`` objects, in the order CLIP-L, CLIP-G, T5: tokenizers (callables
        as ``CLIPTokenizer`` / ``T5TokenizerFast``) and ``CLIPTextModelWithProjection`` ×2 +
        ``T5EncoderModel``. :meth:`from_folder` builds them from a local diffusers folder."""
        if len(tokenizers) != 3 or len(encoders) != 3:
            raise ValueError(
                "SD3TextEncoders takes three tokenizers and three encoders (CLIP-L, CLIP-G, T5), "
                f"got {len(tokenizers)} and {len(encoders)}"
            )
        self.device = torch.device(device)
        self.tokenizers = list(tokenizers)
        self.encoders = [e.to(self.device).eval().requires_grad_(False) for e in encoders]

    @classmethod
    def from_folder(
        cls, folder: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> SD3TextEncoders:
        """From a local copy of an SD3 model's diffusers folder (never downloads)."""
        transformers = _require_transformers()
        source = TransformersSource.folder(
            folder,
            "an SD3 model in the diffusers layout (tokenizer, text_encoder, ..._2, ..._3)",
        )
        tokenizers = [
            source.load(transformers.CLIPTokenizer, "tokenizer"),
            source.load(transformers.CLIPTokenizer, "tokenizer_2"),
            source.load(transformers.T5TokenizerFast, "tokenizer_3"),
        ]
        clip = transformers.CLIPTextModelWithProjection
        encoders = [
            source.load(clip, "text_encoder", dtype),
            source.load(clip, "text_encoder_2", dtype),
            source.load(transformers.T5EncoderModel, "text_encoder_3", dtype),
        ]
        return cls(tokenizers, encoders, device)

    def _clip(self, index: int, captions: list[str], pad: int) -> tuple[Tensor, Tensor]:
        tokenizer, model = self.tokenizers[index], self.encoders[index]
        ids = tokenizer(captions, truncation=True, max_length=SD3_TOKENS)["input_ids"]
        tokens = torch.full((len(ids), SD3_TOKENS), pad, dtype=torch.long)
        for row, sequence in enumerate(ids):
            tokens[row, : len(sequence)] = torch.tensor(sequence)
        out = model(tokens.to(self.device), output_hidden_states=True)
        if index == 0:  # official: CLIP-L's pooled feature unprojected
            end = torch.tensor([len(sequence) - 1 for sequence in ids], device=self.device)
            pooled = out.last_hidden_state[torch.arange(len(ids)), end]  # final LayerNorm
        else:
            pooled = out.text_embeds
        return out.hidden_states[-2].float(), pooled.float()

    @torch.no_grad()
    def encode(self, text: Sequence[str]) -> dict[str, Tensor]:
        """Captions → ``{"context": (b, 154, 4096), "pooled": (b, 2048)}`` (every encoder reads
        77 tokens; longer prompts are truncated)."""
        if isinstance(text, str) or isinstance(text, Tensor):
            raise TypeError("SD3TextEncoders.encode takes a list of caption strings")
        captions = list(text)
        clip_l = self._clip(0, captions, pad=self.tokenizers[0].eos_token_id)
        clip_g = self._clip(1, captions, pad=0)
        # 77 tokens per caption whatever else is in the batch (no attention mask: padding to the
        # batch's longest would change a caption's features with its neighbours), pad id 0
        ids = self.tokenizers[2](
            captions, padding="max_length", max_length=SD3_TOKENS, truncation=True,
            return_tensors="pt",
        )["input_ids"]  # fmt: skip
        t5 = self.encoders[2](ids.to(self.device)).last_hidden_state.float()
        return assemble_sd3_condition(clip_l, clip_g, t5)


def null_condition(encoder: TextEncoder, batch: int) -> dict[str, Tensor]:
    """The empty caption's condition repeated ``batch`` times: the unconditional input of
    classifier-free guidance at sampling (official ``sd3_infer``: ``neg_cond = get_cond("")``)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    cond = encoder.encode([""])
    return {name: value.expand(batch, *value.shape[1:]) for name, value in cond.items()}


#: an encoder's share of a cond dict: (key, index after the batch axis) pairs
Share = tuple[tuple[str, tuple[slice, ...]], ...]
#: the toy's one encoder owns both entries
TOY_GROUPS: dict[str, Share] = {"text": (("context", ()), ("pooled", ()))}
#: SD3's three encoders in the assembled cond dict (:func:`assemble_sd3_condition`)
SD3_GROUPS: dict[str, Share] = {
    "clip_l": (
        ("context", (slice(0, SD3_TOKENS), slice(0, CLIP_L_WIDTH))),
        ("pooled", (slice(0, CLIP_L_WIDTH),)),
    ),
    "clip_g": (
        ("context", (slice(0, SD3_TOKENS), slice(CLIP_L_WIDTH, CLIP_L_WIDTH + CLIP_G_WIDTH))),
        ("pooled", (slice(CLIP_L_WIDTH, CLIP_L_WIDTH + CLIP_G_WIDTH),)),
    ),
    "t5": (("context", (slice(SD3_TOKENS, 2 * SD3_TOKENS),)),),
}


def drop_captions(
    cond: dict[str, Tensor],
    probability: float,
    generator: torch.Generator,
    groups: dict[str, Share] | None = None,
) -> dict[str, Tensor]:
    """Caption dropout for classifier-free guidance: zero each encoder's share of ``cond`` for a
    random subset of the batch, each encoder independently with ``probability`` (SD3 Sec. 2.2:
    ``CAPTION_DROPOUT`` for each of its three encoders, ``groups=SD3_GROUPS``; the toy's one
    encoder, ``groups=None`` = :data:`TOY_GROUPS`: the probability the chapter states).

    Zeroing the outputs is Stability's training code's way (``ucg_rate`` of the conditioner of
    github.com/Stability-AI/generative-models; SD3's own training code is not released), not the
    empty caption that is used at sampling (:func:`null_condition`). Returns a new dict.
    """
    generator = check_generator(generator)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must lie in [0, 1], got {probability}")
    groups = TOY_GROUPS if groups is None else groups
    if not cond:
        raise ValueError("cond is empty; expected {'context': ..., 'pooled': ...}")
    b = next(iter(cond.values())).shape[0]
    out = {name: value.clone() for name, value in cond.items()}
    for encoder, share in groups.items():
        keep = torch.rand(b, generator=generator, device=generator.device) >= probability
        for key, index in share:
            if key not in out:
                raise ValueError(f"{encoder}'s {key!r} is not in cond (it has {sorted(cond)})")
            value = out[key]
            mask = keep.to(value.device, value.dtype).view(b, *([1] * (value.dim() - 1)))
            value[(slice(None), *index)] *= mask
    return out
