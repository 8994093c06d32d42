"""The shared attention function (esser_lab.nn.attention) against a hand-written softmax."""

import math

import pytest
import torch

from esser_lab.nn.attention import attention, extend_cache


def reference(q, k, v, heads, mask=None, causal=False, scale=None):
    """softmax(q kᵀ · scale + mask) v per head, written out with explicit loops over heads."""
    b, lq, width = q.shape
    hd = width // heads
    scale = 1 / math.sqrt(hd) if scale is None else scale
    out = []
    for h in range(heads):
        part = slice(h * hd, (h + 1) * hd)
        logits = q[..., part] @ k[..., part].transpose(1, 2) * scale  # (b, lq, lk)
        if causal:
            hidden = torch.ones(lq, k.shape[1], dtype=torch.bool).triu(1)
            logits = logits.masked_fill(hidden, -math.inf)
        if mask is not None and mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, -math.inf)
        elif mask is not None:
            logits = logits + mask
        out.append(logits.softmax(-1) @ v[..., part])
    return torch.cat(out, -1)


def qkv(b=2, lq=5, lk=7, width=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, lq, width, generator=g), *torch.randn(2, b, lk, width, generator=g))


@pytest.mark.parametrize("heads", [1, 3])
def test_matches_reference_per_head(heads):
    q, k, v = qkv()
    out = attention(q, k, v, heads=heads)
    assert out.shape == (2, 5, 12)
    torch.testing.assert_close(out, reference(q, k, v, heads))
    scaled = attention(q, k, v, heads=heads, scale=0.3)
    torch.testing.assert_close(scaled, reference(q, k, v, heads, scale=0.3))


def test_boolean_and_additive_masks_and_causal():
    q, k, v = qkv(lq=6, lk=6)
    visible = torch.rand(6, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    visible[:, 0] = True  # every query sees at least one key
    out = attention(q, k, v, heads=2, mask=visible)
    torch.testing.assert_close(out, reference(q, k, v, 2, mask=visible))
    additive = torch.zeros(6, 6).masked_fill(~visible, -math.inf)
    torch.testing.assert_close(attention(q, k, v, heads=2, mask=additive), out)
    per_sample = visible.expand(2, 1, 6, 6)  # 4-D (b, 1, lq, lk)
    torch.testing.assert_close(attention(q, k, v, heads=2, mask=per_sample), out)
    causal = attention(q, k, v, heads=2, causal=True)
    torch.testing.assert_close(causal, reference(q, k, v, 2, causal=True))
    assert not torch.allclose(causal, out)


def test_split_layout_equals_packed_layout_and_cache_extends():
    q, k, v = qkv(lq=4, lk=4)
    packed = attention(q, k, v, heads=3, causal=True)
    split = [x.unflatten(-1, (3, 4)).transpose(1, 2) for x in (q, k, v)]  # (b, nh, l, hd)
    out = attention(*split, causal=True, layout="b nh l hd")
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out.transpose(1, 2).flatten(2), packed)
    # the last query against a cache of the first three keys plus its own key
    past = (split[1][:, :, :3], split[2][:, :, :3])
    k_all, v_all = extend_cache(past, split[1][:, :, 3:], split[2][:, :, 3:])
    assert torch.equal(k_all, split[1]) and torch.equal(v_all, split[2])
    last = attention(split[0][:, :, 3:], k_all, v_all, layout="b nh l hd")
    torch.testing.assert_close(last.transpose(1, 2).flatten(2), packed[:, 3:])
    assert extend_cache(None, split[1], split[2])[0] is split[1]


def test_bad_inputs_are_named():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="3 dims|4 dims|per-sample"):
        attention(q, k, v, heads=2, mask=torch.ones(2, 5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(lq, lk\) = \(5, 7\)"):
        attention(q, k, v, mask=torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        attention(q, k, v, mask=torch.ones(5, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="either causal"):
        attention(q, k, v, causal=True, mask=torch.ones(5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="heads=5"):
        attention(q, k, v, heads=5)
    with pytest.raises(ValueError, match="3-D tensor"):
        attention(q[0], k, v)
    with pytest.raises(ValueError, match="share"):
        attention(q, k[:, :, :6], v)
    with pytest.raises(ValueError, match="layout"):
        attention(q, k, v, layout="b h w c")  # type: ignore[arg-type]
    split = q.unflatten(-1, (3, 4)).transpose(1, 2)
    with pytest.raises(ValueError, match="disagrees"):
        attention(split, split, split, heads=2, layout="b nh l hd")
    with pytest.raises(ValueError, match="cached keys"):
        extend_cache((split[:, :2], split[:, :2]), split, split)
