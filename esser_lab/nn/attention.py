"""The one attention function of the package, over ``F.scaled_dot_product_attention``.

Every attention layer of the book calls :func:`attention`: the VQGAN / KL autoencoder's
single-head ``AttnBlock`` (``nn/ddconv.py``), the Taming GPT's ``CausalSelfAttention``
(``nn/transformer.py``, with its key/value cache) and the LDM UNet's legacy ``AttentionBlock`` and
``SpatialTransformer`` cross-attention (``nn/spatial_transformer.py``). The modules around it
keep the parameter names of each official layout (1×1-conv ``q``/``k``/``v``, minGPT's
``key``/``query``/``value``, the fused ``qkv`` of ADM, ``to_q``/``to_k``/``to_v``); only the
arithmetic is shared here, so a faster kernel or a new mask reaches every model at once.

Conventions a reader could get wrong:

* Two layouts. ``"b l (nh hd)"`` (the default): q (b, lq, nh·hd) and k, v (b, lk, nh·hd) with the
  heads packed head-major in the last axis, as ``nn.Linear`` projections produce them; the result
  is (b, lq, nh·hd). ``"b nh l hd"``: the heads already split (a key/value cache is kept this
  way); the result stays split, (b, nh, lq, hd).
* ``mask`` is either boolean (``True`` = this query may see this key) or additive (a float
  added to the logits, ``-inf`` hides), of shape (lq, lk) or (b | 1, nh | 1, lq, lk). A 3-D
  mask is refused: broadcasting would read (b, lq, lk) as (nh, lq, lk).
* ``causal=True`` hides the keys after each query, aligned at the top left (query i sees keys
  0..i), which is only the usual causal mask when lq = lk; a query block that continues a cache
  passes the mask rows of its positions instead (see ``GPT.forward_with_past``).
* The default scale is 1/√hd, as in every model of this era (ADM's legacy attention scales q and
  k by hd^-1/4 each before the product: the same number, more stable in float16).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = ["Layout", "attention", "extend_cache"]

Layout = Literal["b l (nh hd)", "b nh l hd"]


def _check_mask(mask: Tensor, b: int, nh: int, lq: int, lk: int) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a Tensor (bool or additive float), got {type(mask)}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool (True = visible) or additive float, got {mask.dtype}")
    full = (b, nh, lq, lk)
    fits = mask.dim() in (2, 4) and all(
        m in (1, n) for m, n in zip(mask.shape[::-1], full[::-1], strict=False)
    )
    if not fits or mask.shape[-2:] != (lq, lk):
        raise ValueError(
            f"mask must have shape (lq, lk) = ({lq}, {lk}) or broadcast to (b, nh, lq, lk) = "
            f"{full} with 4 dims (use mask[:, None] for a per-sample (b, lq, lk) mask), "
            f"got {tuple(mask.shape)}"
        )


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    heads: int | None = None,
    mask: Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout: float = 0.0,
    layout: Layout = "b l (nh hd)",
) -> Tensor:
    """softmax(q kᵀ · scale + mask) v per head (Vaswani et al. 2017, eq. 1).

    Args:
        q, k, v: in ``layout``: (b, lq, nh·hd), (b, lk, nh·hd), (b, lk, nh·hd) by default, or
            (b, nh, lq, hd), (b, nh, lk, hd), (b, nh, lk, hd) for ``"b nh l hd"``.
        heads: the number of heads nh packed in the last axis (default 1) for the default
            layout; for ``"b nh l hd"`` it is read from the tensors (if given it must agree).
        mask: boolean (True = visible) or additive float, (lq, lk) or 4-D broadcastable to
            (b, nh, lq, lk).
        causal: hide the keys after each query (top-left aligned); not with ``mask``.
        scale: the logit scale; None = 1/√hd.
        dropout: dropout probability on the attention weights (pass 0 in eval mode).
        layout: ``"b l (nh hd)"`` or ``"b nh l hd"`` (module docstring).

    Returns:
        The attended values in the input layout: (b, lq, nh·hd) or (b, nh, lq, hd).
    """
    if layout not in ("b l (nh hd)", "b nh l hd"):
        raise ValueError(f"layout must be 'b l (nh hd)' or 'b nh l hd', got {layout!r}")
    rank = 3 if layout == "b l (nh hd)" else 4
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or x.dim() != rank:
            raise ValueError(
                f"{name} must be a {rank}-D tensor in layout {layout!r}, got "
                f"{tuple(getattr(x, 'shape', ()))} ({type(x).__name__})"
            )
    if k.shape[:-1] != v.shape[:-1] or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q, k, v must share the batch, k and v the token axis, q and k the width; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if causal and mask is not None:
        raise ValueError("pass either causal=True or a mask (build the causal rows into it)")
    if layout == "b l (nh hd)":
        nh = 1 if heads is None else heads
        if nh < 1 or q.shape[-1] % nh or v.shape[-1] % nh:
            raise ValueError(
                f"heads={heads} must be ≥ 1 and divide the widths of q ({q.shape[-1]}) and "
                f"v ({v.shape[-1]})"
            )
        q, k, v = (rearrange(x, "b l (nh hd) -> b nh l hd", nh=nh) for x in (q, k, v))
    else:
        nh = q.shape[1]
        if heads is not None and heads != nh:
            raise ValueError(f"heads={heads} disagrees with the {nh} heads of q {tuple(q.shape)}")
        if k.shape[1] != nh:
            raise ValueError(f"k and v must have {nh} heads like q, got k {tuple(k.shape)}")
    if mask is not None:
        _check_mask(mask, q.shape[0], nh, q.shape[2], k.shape[2])
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal, scale=scale
    )  # (b, nh, lq, hd)
    if layout == "b l (nh hd)":
        return rearrange(y, "b nh l hd -> b l (nh hd)")
    return y


def extend_cache(past: tuple[Tensor, Tensor] | None, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """A key/value cache in layout ``"b nh l hd"`` extended by the new tokens' ``k`` and ``v``.

    ``past`` is None or the (k, v) pair of the earlier tokens, each (b, nh, l_past, hd); the
    result is (b, nh, l_past + l, hd) each, ready for :func:`attention` and the next call.
    """
    if past is None:
        return k, v
    past_k, past_v = past
    if past_k.shape[:2] != k.shape[:2] or past_k.shape[3] != k.shape[3]:
        raise ValueError(
            f"cached keys {tuple(past_k.shape)} do not match new keys {tuple(k.shape)} "
            "in (b, nh, ·, hd)"
        )
    return torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)
