"""Autoregressive sampling of token sequences: the second stage of Taming Transformers
(Esser, Rombach & Ommer, CVPR 2021, arXiv 2012.09841), chapter 10; the later token models of the
book (GeoFree, ImageBART) draw their codes the same way.

The transformer models p(s | c) = ∏ᵢ p(sᵢ | s₍<ᵢ₎, c) over the row-major code indices s of a
VQGAN ((T8) of chapter 10, the paper's Sec. 3.2, with a condition c); sampling draws
s₁, s₂, … one at a time. Unlike the diffusion samplers beside it, there is no time and no
denoiser: each step is one forward pass and one categorical draw. Decoding knobs as in
``scripts/sample_fast.py`` (README: class-conditional ImageNet with top-k 600, top-p 0.92,
temperature 1.0):

* temperature τ: softmax(logits / τ);
* top-k: keep the k most likely tokens;
* top-p (nucleus, Holtzman et al. 2020): keep the smallest set of most likely tokens whose
  probability mass reaches p.

The official code imports ``top_k_top_p_filtering`` from an old ``transformers`` (removed
since); :func:`top_k_top_p_filtering` is our own with the same semantics. The official
``sample_with_past`` filters only when ``top_k`` is given (a lone top-p is silently ignored);
here each filter applies whenever it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.nn import placement

if TYPE_CHECKING:  # the network is only called here; importing the core stays light
    from esser_lab.nn.transformer import GPT

__all__ = ["sample_tokens", "top_k_top_p_filtering"]


def top_k_top_p_filtering(
    logits: Tensor, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """``logits`` (..., vocab) with the filtered-out tokens set to −∞ (a new tensor).

    Top-k first (``top_k`` ≥ 1; tokens tied with the k-th are kept), then top-p on what is left:
    sorted by probability, a token is kept while the mass *before* it is < ``top_p``, so the kept
    set is the smallest with mass ≥ ``top_p`` and always holds the most likely token.
    ``None`` (or ``top_p`` = 1) disables a filter.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p}")
    logits = logits.clone()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # (..., vocab), exclusive cumulative sum
        drop_sorted = mass_before >= top_p  # the first token has mass_before 0: always kept
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _next_token(
    logits: Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Tensor:
    """One token (b, 1) drawn from the last position's logits (b, vocab)."""
    logits = logits / temperature
    if top_k is not None or top_p is not None:  # official: only when top_k is given
        logits = top_k_top_p_filtering(logits, top_k, top_p)
    probs = F.softmax(logits.float(), dim=-1)
    return placement.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def sample_tokens(
    gpt: GPT,
    cond_tokens: Tensor,
    steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``steps`` tokens after the condition ``cond_tokens`` (b, l_c); returns (b, steps).

    (T8): sᵢ ~ p(sᵢ | s₍<ᵢ₎, c), one token per step. With ``use_cache`` each step feeds only the
    newest token and reuses the keys/values of the earlier ones (``GPT.forward_with_past``);
    without it, each step re-runs the whole sequence. Both give the same tokens for the same
    ``generator`` state (up to floating-point ties). Needs l_c + steps − 1 ≤ ``block_size``
    (the last token is sampled, never fed back). The model is run in eval mode and restored.
    """
    if cond_tokens.dim() != 2 or cond_tokens.shape[1] < 1:
        raise ValueError(
            f"cond_tokens must be (b, l_c) with l_c ≥ 1 (a class or sos token), got "
            f"{tuple(cond_tokens.shape)}"
        )
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if cond_tokens.shape[1] + steps - 1 > gpt.block_size:
        raise ValueError(
            f"{cond_tokens.shape[1]} condition tokens + {steps} steps need a block_size of "
            f"{cond_tokens.shape[1] + steps - 1}, the GPT has {gpt.block_size}"
        )
    was_training = gpt.training
    gpt.eval()
    sequence = cond_tokens.long()
    past = None
    fed = sequence  # what the next call feeds the network
    try:
        for _ in range(steps):
            if use_cache:
                logits, past = gpt.forward_with_past(fed, past)
            else:
                logits = gpt(sequence)
            token = _next_token(logits[:, -1], temperature, top_k, top_p, generator)  # (b, 1)
            sequence = torch.cat((sequence, token), dim=1)
            fed = token
    finally:
        gpt.train(was_training)
    return sequence[:, cond_tokens.shape[1] :]
