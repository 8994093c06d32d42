"""The per-token-timestep DiT of Self-Flow (esser_lab.selfflow.model) at tiny size."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from einops import rearrange

from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT, count_parameters, patchify

SMALL = replace(SelfFlowConfig.tiny(), hidden=32, depth=3, heads=2)


def _trained_like(config: SelfFlowConfig = SMALL, seed: int = 0) -> SelfFlowDiT:
    """A model with every parameter random (adaLN-Zero would make the output exactly 0)."""
    torch.manual_seed(seed)
    model = SelfFlowDiT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.normal_(0, 0.1)
    return model


def test_paper_config_parameter_count_on_meta() -> None:
    with torch.device("meta"):
        model = SelfFlowDiT(SelfFlowConfig.paper())
    # SiT-XL/2 with learn_sigma and a 1001-row label table (675.1 M in the SiT paper's count
    # without a projector) plus the projector Linear(1152, 2304) -> Linear(2304, 1152)
    projector = 1152 * 2304 + 2304 + 2304 * 1152 + 1152
    assert count_parameters(model) == 680_441_504
    assert count_parameters(model.projector) == projector
    assert model.final_layer.linear.out_features == 2 * 2 * 8  # p·p·2C (learn_sigma)
    assert model.x_embedder.proj.in_features == 4 * 2 * 2


def test_untrained_model_outputs_zero_and_shapes() -> None:
    model = SelfFlowDiT(SMALL)
    x = torch.randn(2, 3, 16, 16)
    v, feats = model(x, torch.rand(2), return_features=[1, 3])
    assert v.shape == x.shape and torch.count_nonzero(v) == 0  # adaLN-Zero
    assert set(feats) == {1, 3} and feats[1].shape == (2, 16, 32)


def test_scalar_time_equals_per_token_broadcast() -> None:
    model = _trained_like()
    x, t = torch.randn(3, 3, 16, 16), torch.rand(3)
    per_token = t[:, None].expand(3, SMALL.tokens)
    torch.testing.assert_close(model(x, t), model(x, per_token))


def test_per_token_times_change_only_through_modulation() -> None:
    model = _trained_like()
    x = torch.randn(2, 3, 16, 16)
    t = torch.full((2, SMALL.tokens), 0.7)
    t2 = t.clone()
    t2[:, 5] = 0.1
    assert not torch.allclose(model(x, t), model(x, t2))
    # sample 1 alone gives what it gives in the batch (no mixing across the batch)
    torch.testing.assert_close(model(x[1:], t2[1:]), model(x, t2)[1:], atol=1e-5, rtol=1e-5)


def test_gathered_modulation_equals_direct_per_token_computation() -> None:
    model = _trained_like()
    block = model.blocks[0]
    t = torch.rand(2, SMALL.tokens)
    c, index = model.conditions(t, None)
    direct = block.adaLN_modulation(model.t_embedder(t.reshape(-1))).reshape(2, SMALL.tokens, -1)
    gathered = block.adaLN_modulation(c)[index]
    torch.testing.assert_close(gathered, direct, atol=1e-6, rtol=1e-5)


def test_per_token_conditions_equal_the_distinct_ones() -> None:
    """The GPU's way (no torch.unique: no host sync) gives the CPU's values."""
    model = _trained_like(replace(SMALL, num_classes=5))
    t = torch.rand(2, SMALL.tokens).round(decimals=1)  # a few distinct times, repeated
    y = torch.tensor([0, 4])
    c, index = model.conditions(t, y)
    assert len(c) < 2 * SMALL.tokens  # the CPU default: distinct rows
    per_token, rows = model.conditions(t, y, distinct=False)
    assert len(per_token) == 2 * SMALL.tokens
    torch.testing.assert_close(per_token[rows], c[index], atol=1e-6, rtol=1e-5)


def test_class_conditional_and_learn_sigma() -> None:
    config = replace(SMALL, num_classes=5, learn_sigma=True)
    model = _trained_like(config)
    x = torch.randn(2, 3, 16, 16)
    y = torch.tensor([0, 4])
    assert model(x, torch.rand(2), y).shape == x.shape
    with pytest.raises(ValueError, match="labels"):
        model(x, torch.rand(2))


def test_patchify_order_is_c_p_q() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = patchify(x, 2)
    assert tokens.shape == (1, 4, 8)
    # first token: channel 0's 2×2 patch then channel 1's
    assert tokens[0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]
    back = rearrange(tokens, "b (h w) (c p q) -> b c (h p) (w q)", h=2, p=2, q=2)
    assert torch.equal(back, x)


def test_bad_inputs_are_named() -> None:
    model = SelfFlowDiT(SMALL)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.randn(2, 4, 16, 16), torch.rand(2))
    with pytest.raises(ValueError, match="per token"):
        model(torch.randn(2, 3, 16, 16), torch.rand(2, 5))
    with pytest.raises(ValueError, match="return_features"):
        model(torch.randn(2, 3, 16, 16), torch.rand(2), return_features=[9])
    with pytest.raises(ValueError, match="patch_size"):
        SelfFlowConfig(input_size=15, patch_size=4)


def test_attention_mask_blocks_information() -> None:
    model = _trained_like()
    x = torch.randn(1, 3, 16, 16)
    groups = torch.zeros(1, SMALL.tokens, dtype=torch.bool)
    groups[:, :4] = True
    mask = (groups[:, :, None] == groups[:, None, :])[:, None]
    x2 = x.clone()
    x2[..., 8:, :] += 1.0  # changes tokens 8..15 only (rows 2-3 of the 4×4 token grid)
    v1, v2 = model(x, 0.5, mask=mask), model(x2, 0.5, mask=mask)
    tokens1, tokens2 = patchify(v1, 4), patchify(v2, 4)
    torch.testing.assert_close(tokens1[:, :4], tokens2[:, :4])  # group 1 sees nothing of it
    assert not torch.allclose(tokens1[:, 4:8], tokens2[:, 4:8])


def test_release_time_mirrors_time_and_negates_only_the_velocity() -> None:
    model = _trained_like()
    released = SelfFlowDiT(replace(SMALL, release_time=True))
    released.load_state_dict(model.state_dict())
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.2, 0.9])
    v, feats = released(x, t, return_features=[2])
    inner, inner_feats = model(x, 1 - t, return_features=[2])
    torch.testing.assert_close(v, -inner)
    torch.testing.assert_close(feats[2], inner_feats[2])  # features as the blocks computed them
    assert not torch.allclose(v, -model(x, t))
