"""ImageBART's objective, its chain sampler and masked editing (chapter 13), and the
autoregressive baseline it is compared with (a GPT over the same codes in a raster order).

* (M4) of :mod:`esser_lab.diffusion.multinomial` per scale: draw x_1 … x_T from x_0 by the
  forward chain, pick a scale t, and score the transition's teacher-forced logits for x_{t−1}
  against the hard target and the posterior q(x_{t−1} | x_t, x_0) with the scale's ``alpha``.
* Sampling: x_T uniform; for t = T … 1 draw x_{t−1} token by token from p_θ(x_{t−1} | x_t)
  (top-k), then decode x_0 with the first stage. As in the official code, only a last-scale GPT
  takes the sampling temperature; the encoder–decoder scales sample at temperature 1 (the
  official ``sample_single_scale`` hard-codes it).
* Editing (the official ``scripts/inpaint_imagebart.py``): the tokens to keep are written into
  the starting x_T, c = (1 − m) · c + m · x_clean, and enforced while decoding by adding the
  guide log onehot(x_clean) to the logits at kept positions (0 elsewhere): a kept token has
  probability one, so every later x_t holds them too, and every generated token sees the kept
  ones everywhere through the encoder, also below and right of it. Each scale may run several
  times, re-noising its output in between (``runs``, the script's chain schedule).
* The autoregressive baseline (Taming Transformers, chapter 10) fills the same mask with the
  same guide, but a token only sees the kept tokens *before* it in its order: ``"raster"``
  (row-major) or ``"reverse"`` (the reverse of it; the right order to complete a top half).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.diffusion.autoregressive import top_k_top_p_filtering
from esser_lab.diffusion.multinomial import (
    forward_chain,
    multinomial_loss,
    multinomial_posterior,
    q_step,
)
from esser_lab.imagebart.model import ImageBART
from esser_lab.nn import placement
from esser_lab.nn.transformer import GPT

__all__ = [
    "Order",
    "ar_complete",
    "ar_loss",
    "completion_mask",
    "guide_logits",
    "imagebart_loss",
    "raster_order",
    "sample_chain",
    "sample_scale",
]

Order = Literal["raster", "reverse"]
MaskKind = Literal["top", "centre", "bottom"]


def imagebart_loss(
    model: ImageBART, x0: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """(M4) on codes ``x0`` (b, l): one scale t ~ U{1, …, T} per sample.

    # official code: one scale per batch when the scales are trained jointly; ours draws one per
    # sample (the same expectation, less variance in a small batch).
    """
    config = model.config
    schedule = model.schedule
    chain = forward_chain(x0, schedule, config.num_codes, generator)  # (T + 1, b, l)
    t = placement.randint(config.n_scales, (x0.shape[0],), generator=generator, device=x0.device)
    t = t + 1  # (b,) in 1 … T
    batch = torch.arange(x0.shape[0], device=x0.device)
    x_t, x_prev = chain[t, batch], chain[t - 1, batch]  # (b, l) each
    posterior = multinomial_posterior(x_t, x0, t, schedule, config.num_codes)
    # the loss mix per scale, copied to the device through pinned memory (no host sync)
    alpha = placement.to_device(torch.tensor(config.alphas), x0.device)[t - 1]  # (b,)
    return multinomial_loss(model(t, x_t, x_prev), x_prev, posterior, alpha)


def guide_logits(x_clean: Tensor, keep: Tensor, num_codes: int) -> Tensor:
    """The editing guide (b, l, K): log onehot(x_clean) where ``keep`` (b, l) or (l,), else 0."""
    keep = keep.expand_as(x_clean)
    log_onehot = torch.log(F.one_hot(x_clean, num_codes).float())  # 0 at x_clean, −∞ elsewhere
    return torch.where(keep[..., None], log_onehot, torch.zeros_like(log_onehot))


def _draw(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:  # noqa: ANN001
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_top_p_filtering(logits, top_k)
    return placement.multinomial(F.softmax(logits.float(), -1), 1, generator=generator)  # (b, 1)


@torch.no_grad()
def sample_scale(
    model: ImageBART,
    t: int,
    x_t: Tensor,
    guide: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x_{t−1} (b, l) drawn token by token from p_θ(x_{t−1} | x_t); ``guide`` (b, l, K) is added
    to each position's logits (see :func:`guide_logits`)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    model._check("x_t", x_t)
    net = model.network(t)
    b, length = x_t.shape
    scale = torch.full_like(x_t[:, :1], t)
    was_training = model.training
    model.eval()
    try:
        if isinstance(net, GPT):  # the last scale: [T, x_{T−1}], with a key/value cache
            fed, past, out = scale, None, []
            for i in range(length):
                logits, past = net.forward_with_past(fed, past)
                step = logits[:, -1] + (0 if guide is None else guide[:, i])
                fed = _draw(step, temperature, top_k, generator)
                out.append(fed)
            return torch.cat(out, 1)
        context = net.encode(torch.cat((scale, x_t), 1))  # the whole x_t, once
        tokens = model.sos_token.to(x_t).expand(b, 1)
        for i in range(length):
            logits = model.transition_logits(scale[:, 0], x_t, net.decode(tokens, context))
            step = logits[:, -1] + (0 if guide is None else guide[:, i])
            tokens = torch.cat((tokens, _draw(step, temperature, top_k, generator)), 1)
        return tokens[:, 1:]
    finally:
        model.train(was_training)


@torch.no_grad()
def sample_chain(
    model: ImageBART,
    num_samples: int | None = None,
    x_clean: Tensor | None = None,
    keep: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    runs: int = 1,
) -> Tensor:
    """The chain x_T, x_{T−1}, …, x_0, stacked (T + 1, b, l), from x_T ~ uniform.

    Unconditional: ``num_samples``. Editing: ``x_clean`` (b, l) and ``keep`` (b, l) or (l,)
    booleans; the kept tokens are written into x_T once and enforced by the guide at every
    scale (so every later x_t holds them too).

    ``temperature`` applies to the last scale only when it is a GPT; the encoder–decoder
    scales sample at temperature 1.
    # official code: ``sample_single_scale`` passes temperature 1 to the encoder–decoders and
    # the given temperature to the last-scale GPT only.

    ``runs``: how often each scale's transition is applied (the official editing script's
    ``chain_schedule``, default 3 per scale for the geometric schedule). Before run k > 0 of
    scale t, the last output is noised again, each token redrawn with probability
    (1 − k / runs) · β_t, and fed back as x_t, so the transition revises its own output.
    """
    if runs < 1:
        raise ValueError(f"runs must be ≥ 1, got {runs}")
    config = model.config
    device = model.alphats.device
    if (x_clean is None) != (keep is None):
        raise ValueError("editing needs both x_clean and keep (or neither)")
    if x_clean is not None:
        model._check("x_clean", x_clean)
        if keep.dtype != torch.bool or keep.shape[-1] != config.seq_len:
            raise ValueError(f"keep must be boolean (b, {config.seq_len}) or ({config.seq_len},)")
        num_samples = x_clean.shape[0]
        keep = keep.to(device).expand(num_samples, -1)
        x_clean = x_clean.to(device)
    elif num_samples is None or num_samples < 1:
        raise ValueError(f"num_samples must be ≥ 1 without x_clean, got {num_samples}")
    shape = (num_samples, config.seq_len)
    x = placement.randint(config.num_codes, shape, generator=generator, device=device)
    guide = None
    if x_clean is not None:
        x = torch.where(keep, x_clean, x)
        guide = guide_logits(x_clean, keep, config.num_codes)
    chain = [x]
    betas = model.schedule.betas
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    for t in range(config.n_scales, 0, -1):
        scale_temperature = temperature if isinstance(model.network(t), GPT) else 1.0
        x_t = x
        for run in range(runs):
            if run > 0:  # official chain_schedule: noise the output again, weaker each run
                x_t = q_step(x, (1 - run / runs) * float(betas[t]), config.num_codes, generator)
            x = sample_scale(model, t, x_t, guide, scale_temperature, top_k, generator)
        chain.append(x)
    return torch.stack(chain)


def raster_order(length: int, order: Order) -> Tensor:
    """The permutation (l,) that puts row-major codes into ``order``."""
    if order == "raster":
        return torch.arange(length)
    if order == "reverse":
        return torch.arange(length - 1, -1, -1)
    raise ValueError(f"order must be 'raster' or 'reverse', got {order!r}")


def completion_mask(kind: MaskKind, side: int) -> Tensor:
    """Which tokens of a ``side`` × ``side`` grid are kept (l,) bool; the rest is completed.

    ``"top"``: complete the top half given the bottom; ``"bottom"``: the bottom given the top;
    ``"centre"``: the central (side/2)² block given the rest (no raster order sees all of it).
    """
    rows = torch.arange(side)[:, None].expand(side, side)
    cols = torch.arange(side)[None, :].expand(side, side)
    if kind == "top":
        keep = rows >= side // 2
    elif kind == "bottom":
        keep = rows < side // 2
    elif kind == "centre":
        lo, hi = side // 4, side - side // 4
        keep = ~((rows >= lo) & (rows < hi) & (cols >= lo) & (cols < hi))
    else:
        raise ValueError(f"mask kind must be 'top', 'bottom' or 'centre', got {kind!r}")
    return keep.flatten()


def ar_loss(gpt: GPT, codes: Tensor, order: Order, sos_token: int = 0) -> Tensor:
    """Next-token cross-entropy of a GPT over ``codes`` (b, l) read in ``order`` after a start
    token (chapter 10's (T8); ``sos_token`` from the code vocabulary, as Taming's SOSProvider)."""
    sequence = codes[:, raster_order(codes.shape[1], order).to(codes.device)]
    sos = torch.full_like(codes[:, :1], sos_token)
    logits = gpt(torch.cat((sos, sequence), 1)[:, :-1])  # (b, l, K)
    return F.cross_entropy(logits.transpose(1, 2), sequence)


@torch.no_grad()
def ar_complete(
    gpt: GPT,
    x_clean: Tensor,
    keep: Tensor,
    order: Order,
    sos_token: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The baseline's completion (b, l), row-major: tokens drawn in ``order`` with the guide at
    kept positions, so a generated token is conditioned on the kept tokens before it only."""
    if keep.dtype != torch.bool or keep.shape[-1] != x_clean.shape[1]:
        raise ValueError(f"keep must be boolean (b, {x_clean.shape[1]}) or ({x_clean.shape[1]},)")
    b, length = x_clean.shape
    perm = raster_order(length, order).to(x_clean.device)
    keep = keep.to(x_clean.device).expand(b, -1)[:, perm]
    clean = x_clean[:, perm]
    guide = guide_logits(clean, keep, gpt.vocab_size)
    was_training = gpt.training
    gpt.eval()
    try:
        fed, past, out = torch.full_like(x_clean[:, :1], sos_token), None, []
        for i in range(length):
            logits, past = gpt.forward_with_past(fed, past)
            fed = _draw(logits[:, -1] + guide[:, i], temperature, top_k, generator)
            out.append(fed)
    finally:
        gpt.train(was_training)
    result = torch.empty_like(x_clean)
    result[:, perm] = torch.cat(out, 1)
    return result
