"""minGPT (esser_lab.nn.transformer): official names, causal mask, n_unmasked, kv-cache."""

import pytest
import torch
from torch import nn

from esser_lab.nn.transformer import GPT, attention_mask, configure_gpt_optimizer


def tiny_gpt(n_unmasked: int = 0, seed: int = 0, **kwargs) -> GPT:
    torch.manual_seed(seed)
    args = dict(vocab_size=16, block_size=12, n_layer=2, n_head=4, n_embd=32)
    return GPT(**(args | kwargs), n_unmasked=n_unmasked).eval()


def test_official_key_names_and_shapes():
    gpt = tiny_gpt(n_unmasked=3)
    state = gpt.state_dict()
    expected = {"tok_emb.weight", "pos_emb", "ln_f.weight", "ln_f.bias", "head.weight"}
    for i in range(2):
        block = f"blocks.{i}."
        expected |= {block + f"{n}.{p}" for n in ("ln1", "ln2") for p in ("weight", "bias")}
        for n in ("key", "query", "value", "proj"):
            expected |= {block + f"attn.{n}.weight", block + f"attn.{n}.bias"}
        expected |= {block + f"mlp.{j}.{p}" for j in (0, 2) for p in ("weight", "bias")}
        expected.add(block + "attn.mask")
    assert set(state) == expected
    assert state["pos_emb"].shape == (1, 12, 32) and state["head.weight"].shape == (16, 32)
    assert state["blocks.0.mlp.0.weight"].shape == (128, 32)
    mask = state["blocks.1.attn.mask"]
    assert mask.shape == (1, 1, 12, 12) and mask.dtype == torch.float32
    assert torch.equal(mask, attention_mask(12, 3))
    assert mask[0, 0, :3, :3].all() and mask[0, 0, 3, 4] == 0 and mask[0, 0, 5, :6].all()


def test_official_init():
    gpt = tiny_gpt()
    assert torch.equal(gpt.pos_emb, torch.zeros_like(gpt.pos_emb))
    assert gpt.head.bias is None and torch.equal(gpt.blocks[0].attn.key.bias, torch.zeros(32))
    assert torch.equal(gpt.ln_f.weight, torch.ones(32))
    assert abs(gpt.tok_emb.weight.std().item() - 0.02) < 0.005


def test_changing_a_future_token_never_changes_earlier_logits():
    gpt = tiny_gpt()
    idx = torch.randint(16, (2, 10), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 6] = (idx[:, 6] + 1) % 16
    with torch.no_grad():
        a, b = gpt(idx), gpt(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-4)


def test_the_first_n_unmasked_positions_see_each_other():
    gpt = tiny_gpt(n_unmasked=3)
    idx = torch.randint(16, (2, 8), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, 2] = (idx[:, 2] + 1) % 16  # the last unmasked position
    with torch.no_grad():
        a, b = gpt(idx), gpt(changed)
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-4)  # position 0 sees position 2
    changed = idx.clone()
    changed[:, 3] = (idx[:, 3] + 1) % 16  # the first causal position: invisible to 0..2
    with torch.no_grad():
        b = gpt(changed)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)


@pytest.mark.parametrize("n_unmasked", [0, 3])
def test_cached_incremental_logits_equal_the_full_forward(n_unmasked):
    gpt = tiny_gpt(n_unmasked=n_unmasked)
    idx = torch.randint(16, (3, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = gpt(idx)
        # prefix of 3 in one call, then one token at a time, then a chunk of 4
        logits, past = gpt.forward_with_past(idx[:, :3])
        pieces = [logits]
        for i in range(3, 8):
            logits, past = gpt.forward_with_past(idx[:, i : i + 1], past)
            pieces.append(logits)
        logits, past = gpt.forward_with_past(idx[:, 8:], past)
        pieces.append(logits)
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    assert len(past) == 2 and past[0][0].shape == (3, 4, 12, 8)  # (b, nh, l, hd)


def test_bad_input_is_refused():
    gpt = tiny_gpt(n_unmasked=3)
    with pytest.raises(ValueError, match="exceeds block_size=12"):
        gpt(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"vocab_size=16\)"):
        gpt(torch.full((1, 4), 16))
    with pytest.raises(ValueError, match=r"vocab_size=16\)"):
        gpt(torch.full((1, 4), -1))
    with pytest.raises(TypeError, match="integer tensor"):
        gpt(torch.zeros(1, 4))
    _, past = gpt.forward_with_past(torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="n_unmasked=3"):
        gpt.forward_with_past(torch.zeros(1, 1, dtype=torch.long), past)
    _, past = gpt.forward_with_past(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match="11 cached"):
        gpt.forward_with_past(torch.zeros(1, 2, dtype=torch.long), past)
    with pytest.raises(ValueError, match="divisible"):
        GPT(16, 8, n_head=3, n_embd=32)


def test_optimizer_decays_linear_weights_only():
    gpt = tiny_gpt()
    optimizer = configure_gpt_optimizer(gpt, lr=1e-3)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    linear = {id(m.weight) for m in gpt.modules() if isinstance(m, nn.Linear)}
    assert {id(p) for p in decay["params"]} == linear
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(gpt.parameters()))
    assert any(p is gpt.pos_emb for p in no_decay["params"])


def test_loss_falls_on_one_batch():
    gpt = tiny_gpt().train()
    idx = torch.randint(16, (8, 12), generator=torch.Generator().manual_seed(4))
    optimizer = configure_gpt_optimizer(gpt, lr=3e-3)
    losses = []
    for _ in range(30):
        logits = gpt(idx[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 16), idx[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
