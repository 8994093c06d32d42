"""The LDM UNet (esser_lab.nn.unet): conditioning modes, zero init, time embedding, the legacy
head-major qkv, gradient checkpointing, state-dict round trip, and the promised errors."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from esser_lab.nn.attention import attention
from esser_lab.nn.unet import (
    AttentionBlock,
    GroupNorm32,
    ResBlock,
    SpatialTransformer,
    UNetConfig,
    UNetModel,
    timestep_embedding,
)

TINY = UNetConfig.tiny()
ADM = replace(TINY, use_spatial_transformer=False, context_dim=None)  # legacy AttentionBlock


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter N(0, 0.1²): the zero-initialised layers would otherwise hide errors."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model


def inputs(config: UNetConfig, b: int = 2, side: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, config.in_channels, side, side, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    context = (
        None if config.context_dim is None else torch.randn(b, 3, config.context_dim, generator=g)
    )
    y = (
        None
        if config.num_classes is None
        else torch.randint(0, config.num_classes, (b,), generator=g)
    )
    return x, t, context, y


@pytest.mark.parametrize(
    "config",
    [
        ADM,  # unconditional
        TINY,  # cross-attention on a context
        replace(ADM, num_classes=10),  # class embedding added to the time embedding
        replace(ADM, in_channels=7),  # concat: the caller stacks a 3-channel condition on x
        replace(
            ADM, use_scale_shift_norm=True, resblock_updown=True, num_heads=2, num_head_channels=-1
        ),
    ],
    ids=["unconditional", "crossattn", "class", "concat", "scale_shift_updown"],
)
def test_every_conditioning_mode_maps_x_to_the_output_shape(config):
    model = randomised(UNetModel(config)).eval()
    for side in (8, 16):
        x, t, context, y = inputs(config, side=side)
        out = model(x, t, context=context, y=y)
        assert out.shape == (2, config.out_channels, side, side) and torch.isfinite(out).all()
    x, t, context, y = inputs(config)
    wide = torch.cat([x, x], dim=3)  # 8 × 16: non-square latents work too
    assert model(wide, t, context=context, y=y).shape == (2, config.out_channels, 8, 16)
    if config.num_classes:  # the label changes the prediction
        assert not torch.allclose(model(x, t, y=y), model(x, t, y=(y + 1) % 10))
    if config.context_dim:
        assert not torch.allclose(model(x, t, context=context), model(x, t, context=-context))


def test_a_fresh_unet_outputs_zero_and_its_residual_branches_start_as_identity():
    torch.manual_seed(0)
    for config in (TINY, ADM):
        model = UNetModel(config)
        x, t, context, y = inputs(config)
        assert torch.equal(model(x, t, context=context), torch.zeros_like(x))
    h = torch.randn(2, 64, 4, 4)
    assert torch.equal(AttentionBlock(64, 2)(h), h)
    assert torch.equal(SpatialTransformer(64, 2, 32, context_dim=8)(h, torch.randn(2, 3, 8)), h)
    block = ResBlock(64, 128, 0.0)
    assert torch.equal(block(h, torch.randn(2, 128)), h)  # identity skip + zero branch


def test_time_embedding_is_cos_then_sin_of_geometric_frequencies():
    t = torch.tensor([0, 1, 17, 999])
    embedding = timestep_embedding(t, 6)
    expected = torch.tensor(
        [
            [math.cos(s * 10_000 ** (-i / 3)) for i in range(3)]
            + [math.sin(s * 10_000 ** (-i / 3)) for i in range(3)]
            for s in (0, 1, 17, 999)
        ]
    )
    torch.testing.assert_close(embedding, expected)
    odd = timestep_embedding(t.float() + 0.5, 7)  # fractional steps; odd width: a zero column
    assert odd.shape == (4, 7) and torch.equal(odd[:, 6], torch.zeros(4))
    torch.testing.assert_close(odd[:, :6], timestep_embedding(t.float() + 0.5, 6))
    model = randomised(UNetModel(ADM)).eval()
    x = torch.randn(1, 4, 8, 8)
    assert not torch.allclose(model(x, torch.tensor([10])), model(x, torch.tensor([500])))
    # a scalar timestep stands for the whole batch
    x2 = x.expand(2, -1, -1, -1)
    torch.testing.assert_close(model(x2, torch.tensor(10)), model(x2, torch.tensor([10, 10])))


def official_legacy_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """The official AttentionBlock + QKVAttentionLegacy computation, written out by hand."""
    b, c, height, width = x.shape
    nh = block.num_heads
    flat = x.reshape(b, c, -1)
    qkv = block.qkv(block.norm(flat))  # (b, 3c, l)
    hd = c // nh
    q, k, v = qkv.reshape(b * nh, 3 * hd, -1).split(hd, dim=1)  # heads split first
    s = 1 / math.sqrt(math.sqrt(hd))
    weight = torch.einsum("bct,bcs->bts", q * s, k * s).softmax(dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1)
    return (flat + block.proj_out(a)).reshape(b, c, height, width)


def test_legacy_attention_block_splits_heads_before_q_k_v():
    torch.manual_seed(0)
    block = randomised(AttentionBlock(64, num_heads=4))
    x = torch.randn(2, 64, 4, 4)
    torch.testing.assert_close(block(x), official_legacy_attention(block, x))
    # the trap: to_q/to_k/to_v for a separate-projection layout (diffusers, QKVAttention) are
    # rows (head, part, dim) regrouped by part, not the three chunks of the fused weight
    weight, bias = block.qkv.weight.squeeze(-1), block.qkv.bias  # (3c, c), (3c,)
    right = [w.flatten(0, 1) for w in weight.reshape(4, 3, 16, 64).unbind(1)]
    right_bias = [b.flatten() for b in bias.reshape(4, 3, 16).unbind(1)]
    tokens = block.norm(x).flatten(2).transpose(1, 2)  # (b, l, c)
    q, k, v = (F.linear(tokens, w, b) for w, b in zip(right, right_bias, strict=True))
    attended = attention(q, k, v, heads=4).transpose(1, 2).reshape(2, 64, 4, 4)
    torch.testing.assert_close(x + block.proj_out(attended.flatten(2)).view_as(x), block(x))
    q, k, v = (F.linear(tokens, w, b) for w, b in zip(weight.chunk(3), bias.chunk(3), strict=True))
    attended = attention(q, k, v, heads=4).transpose(1, 2).reshape(2, 64, 4, 4)
    wrong = x + block.proj_out(attended.flatten(2)).view_as(x)
    assert not torch.allclose(wrong, block(x), atol=1e-3)
    # with one head both orders agree: (1, 3, c) is (3, 1, c)
    one = randomised(AttentionBlock(64, num_heads=1))
    torch.testing.assert_close(one(x), official_legacy_attention(one, x))


def test_attention_heads_follow_the_official_legacy_arithmetic():
    sd = UNetConfig.stable_diffusion_v1()
    assert [sd.attention_heads(c) for c in (320, 640, 1280)] == [(8, 40), (8, 80), (8, 160)]
    cin = UNetConfig.cin256()
    assert cin.attention_heads(1024) == (32, 32)
    celeba = UNetConfig.celeba256()
    assert celeba.attention_heads(672) == (21, 32)
    assert UNetConfig.churches256().attention_heads(768) == (8, 96)
    # where num_head_channels does not divide the width, legacy keeps the whole width
    odd = replace(TINY, model_channels=96, num_head_channels=64, context_dim=8)
    assert odd.attention_heads(96) == (1, 96)
    assert replace(odd, legacy=False).attention_heads(96) == (1, 64)
    model = UNetModel(replace(odd, legacy=False, attention_resolutions=(1,)))
    assert model.input_blocks[1][1].proj_in.weight.shape == (64, 96, 1, 1)


def test_gradient_checkpointing_gives_the_same_gradients():
    config = replace(TINY, use_scale_shift_norm=True)
    plain = randomised(UNetModel(config))
    checkpointed = UNetModel(replace(config, use_checkpoint=True))
    checkpointed.load_state_dict(plain.state_dict())
    x, t, context, _ = inputs(config)
    for model in (plain, checkpointed):
        model(x, t, context=context).square().mean().backward()
    for (name, a), (_, b) in zip(
        plain.named_parameters(), checkpointed.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    with torch.no_grad():  # no recomputation without gradients, same numbers
        torch.testing.assert_close(
            checkpointed(x, t, context=context), plain(x, t, context=context)
        )


def test_state_dict_round_trip_is_strict_and_exact(tmp_path):
    config = replace(TINY, num_classes=5)
    model = randomised(UNetModel(config)).eval()
    path = tmp_path / "unet.pt"
    torch.save(model.state_dict(), path)
    loaded = UNetModel(config).eval()
    loaded.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x, t, context, y = inputs(config)
    assert torch.equal(loaded(x, t, context=context, y=y), model(x, t, context=context, y=y))
    keys = set(model.state_dict())
    for key in (
        "time_embed.0.weight",
        "time_embed.2.bias",
        "label_emb.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.0.in_layers.2.weight",
        "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.out_layers.3.weight",
        "input_blocks.2.0.op.weight",
        "input_blocks.3.0.skip_connection.weight",
        "input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight",
        "input_blocks.3.1.transformer_blocks.0.ff.net.0.proj.weight",
        "input_blocks.3.1.transformer_blocks.0.ff.net.2.weight",
        "input_blocks.3.1.transformer_blocks.0.attn1.to_out.0.bias",
        "middle_block.1.proj_out.weight",
        "output_blocks.1.2.conv.weight",
        "out.2.weight",
    ):
        assert key in keys, key
    assert "input_blocks.3.1.transformer_blocks.0.attn1.to_q.bias" not in keys  # no bias
    assert model.state_dict()["input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"].shape == (
        64,
        32,
    )


def test_group_norm_32_computes_in_float32_under_bfloat16():
    norm = randomised(GroupNorm32(32, 64)).to(torch.bfloat16)
    x = torch.randn(2, 64, 4, 4).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    expected = F.group_norm(x.float(), 32, norm.weight.float(), norm.bias.float(), 1e-5)
    assert torch.equal(out, expected.to(torch.bfloat16))
    model = randomised(UNetModel(TINY)).to(torch.bfloat16).eval()
    x, t, context, _ = inputs(TINY)
    out = model(x.bfloat16(), t, context=context.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_bad_inputs_are_named():
    model = UNetModel(replace(TINY, num_classes=3)).eval()
    x, t, context, y = inputs(model.config)
    with pytest.raises(ValueError, match=r"x must have shape \(b, 4, h, w\)"):
        model(x[:, :3], t, context=context, y=y)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(x[..., :7], t, context=context, y=y)
    with pytest.raises(ValueError, match=r"timesteps must have shape \(2,\)"):
        model(x, t[:1], context=context, y=y)
    with pytest.raises(TypeError, match="timesteps"):
        model(x, [1, 2], context=context, y=y)
    with pytest.raises(ValueError, match="context .* is required"):
        model(x, t, y=y)
    with pytest.raises(ValueError, match=r"context must have shape \(2, l, 32\)"):
        model(x, t, context=context[..., :5], y=y)
    with pytest.raises(TypeError, match="y must be an integer"):
        model(x, t, context=context)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        model(x, t, context=context, y=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        model(x, t, context=context, y=y[:1])
    plain = UNetModel(ADM)
    with pytest.raises(ValueError, match="no cross-attention"):
        plain(x, t, context=context)
    with pytest.raises(ValueError, match="not class-conditional"):
        plain(x, t, y=y)
    with pytest.raises(TypeError, match="UNetConfig"):
        UNetModel({"model_channels": 32})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"context_dim": None}, "go together"),
        ({"use_spatial_transformer": False}, "go together"),
        ({"attention_resolutions": (8,)}, "down-sampling factors"),
        ({"model_channels": 40}, "32 groups"),
        ({"num_head_channels": -1}, "set num_heads or num_head_channels"),
        ({"num_head_channels": 128}, "heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"channel_mult": ()}, "channel_mult"),
        ({"num_classes": 0}, "num_classes"),
        ({"channel_mult": [1, 2]}, "tuple"),
    ],
)
def test_bad_configs_are_named(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        replace(TINY, **changes)
    with pytest.raises(ValueError, match="heads"):  # the fused qkv needs heads dividing the width
        replace(ADM, num_heads=3, num_head_channels=-1)
