"""The MMDiT of SD3 and its CrossDiT / DiT comparisons (esser_lab.sd3.model, esser_lab.nn.dit)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from esser_lab.nn.dit import JointBlock, joint_attention, sincos_pos_embed_2d
from esser_lab.sd3.model import MMDiT, MMDiTConfig, count_parameters, matched_config

BACKBONES = ("mmdit", "crossdit", "dit")


def inputs(cfg: MMDiTConfig, b: int = 2, h: int = 8, w: int = 8, tokens: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, cfg.in_channels, h, w, generator=g)
    t = torch.rand(b, generator=g)
    cond = {
        "context": torch.randn(b, tokens, cfg.context_dim, generator=g),
        "pooled": torch.randn(b, cfg.adm_in, generator=g),
    }
    return x, t, cond


def randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("hw", [(8, 8), (6, 12)])
def test_shapes_square_and_non_square(backbone, hw):
    cfg = replace(MMDiTConfig.tiny(), backbone=backbone)
    model = MMDiT(cfg)
    randomise(model)
    x, t, cond = inputs(cfg, h=hw[0], w=hw[1])
    v = model(x, t, cond)
    assert v.shape == x.shape and torch.isfinite(v).all() and v.abs().max() > 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_adaln_zero_init(backbone):
    """At init every gate and the final linear are zero: the output is exactly 0, and with a
    non-zero final linear it depends on x but on neither context nor pooled (the blocks are the
    identity and the final adaLN is zero)."""
    cfg = replace(MMDiTConfig.tiny(), backbone=backbone)
    model = MMDiT(cfg)
    x, t, cond = inputs(cfg)
    assert model(x, t, cond).abs().max() == 0
    torch.nn.init.normal_(model.final_layer.linear.weight)
    v = model(x, t, cond)
    _, t2, cond2 = inputs(cfg, seed=1)
    torch.testing.assert_close(model(x, t2, cond2), v, rtol=0, atol=0)
    assert (model(x + torch.randn_like(x), t, cond) - v).abs().max() > 1e-3


def test_joint_attention_is_one_softmax_over_both_streams():
    torch.manual_seed(0)
    b, lc, lx, nh, hd = 2, 3, 5, 2, 4
    ctx = tuple(torch.randn(b, lc, nh * hd) for _ in range(3))
    img = tuple(torch.randn(b, lx, nh * hd) for _ in range(3))
    y_ctx, y_img = joint_attention(ctx, img, heads=nh)
    q, k, v = (
        torch.cat([c, i], dim=1).view(b, lc + lx, nh, hd) for c, i in zip(ctx, img, strict=True)
    )
    for head in range(nh):
        logits = q[:, :, head] @ k[:, :, head].transpose(1, 2) / math.sqrt(hd)  # (b, l, l)
        by_hand = logits.softmax(-1) @ v[:, :, head]  # one softmax over all lc + lx keys
        sl = slice(head * hd, (head + 1) * hd)
        torch.testing.assert_close(y_ctx[..., sl], by_hand[:, :lc])
        torch.testing.assert_close(y_img[..., sl], by_hand[:, lc:])
    separate = torch.softmax(logits[:, lc:, lc:], -1) @ v[:, lc:, nh - 1]
    assert (separate - y_img[..., sl]).abs().max() > 1e-3  # not two per-stream softmaxes


def test_joint_block_streams_talk_both_ways():
    block = JointBlock(16, 2)
    randomise(block)
    c = torch.randn(2, 16)
    ctx, x = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    ctx_out, x_out = block(ctx, x, c)
    ctx_out2, x_out2 = block(
        ctx + torch.randn_like(ctx), x, c
    )  # (+1 would vanish in the LayerNorm)
    assert (x_out2 - x_out).abs().max() > 1e-3  # the image reads the context
    ctx_out3, _ = block(ctx, x + torch.randn_like(x), c)
    assert (ctx_out3 - ctx_out).abs().max() > 1e-3  # and the context the image


def test_last_block_context_is_pre_only():
    cfg = replace(MMDiTConfig.tiny(), depth=3)
    keys = MMDiT(cfg).state_dict()
    d = cfg.width
    last = "joint_blocks.2.context_block."
    assert not any(k.startswith((last + "attn.proj", last + "mlp", last + "norm2")) for k in keys)
    assert keys[last + "adaLN_modulation.1.weight"].shape == (2 * d, d)
    assert keys["joint_blocks.1.context_block.adaLN_modulation.1.weight"].shape == (6 * d, d)
    assert "joint_blocks.1.context_block.attn.proj.weight" in keys
    assert "joint_blocks.2.x_block.mlp.fc2.weight" in keys


def test_attn2_only_in_listed_blocks_and_qk_norm_keys():
    cfg = replace(MMDiTConfig.tiny(), depth=4, qk_norm=True, x_block_self_attn_layers=(0, 2))
    keys = MMDiT(cfg).state_dict()
    with_attn2 = sorted({int(k.split(".")[1]) for k in keys if ".x_block.attn2." in k})
    assert with_attn2 == [0, 2]
    assert not any("context_block.attn2" in k for k in keys)
    assert keys["joint_blocks.0.x_block.adaLN_modulation.1.weight"].shape[0] == 9 * cfg.width
    assert keys["joint_blocks.1.x_block.adaLN_modulation.1.weight"].shape[0] == 6 * cfg.width
    hd = cfg.width // cfg.heads
    assert keys["joint_blocks.3.context_block.attn.ln_k.weight"].shape == (hd,)
    assert keys["joint_blocks.0.x_block.attn2.ln_q.weight"].shape == (hd,)
    plain = MMDiT(MMDiTConfig.tiny()).state_dict()
    assert not any(".ln_q." in k or ".ln_k." in k for k in plain)
    randomise(model := MMDiT(cfg))
    x, t, cond = inputs(cfg)
    assert torch.isfinite(model(x, t, cond)).all()


def test_pos_embed_table_and_centre_crop():
    table = sincos_pos_embed_2d(8, 5)  # (25, 8): [sin w, cos w (ω = 1, 1e-2)] [sin h, cos h]
    row, col = 3, 1
    i = row * 5 + col
    expected = [math.sin(col), math.sin(col / 100), math.cos(col), math.cos(col / 100)]
    expected += [math.sin(row), math.sin(row / 100), math.cos(row), math.cos(row / 100)]
    torch.testing.assert_close(table[i], torch.tensor(expected))
    model = MMDiT(MMDiTConfig.tiny())  # 16×16 table
    crop = model.cropped_pos_embed(2, 4).view(2, 4, -1)
    full = model.pos_embed.view(16, 16, -1)
    torch.testing.assert_close(crop, full[7:9, 6:10])


def test_time_is_embedded_as_1000_t():
    model = MMDiT(MMDiTConfig.tiny())
    seen = []
    model.t_embedder.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x, t, cond = inputs(model.config)
    model(x, t, cond)
    torch.testing.assert_close(seen[0], 1000 * t)


def test_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.tiny())
    x, t, cond = inputs(model.config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = (model(x, t, cond) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)


def test_qk_norm_bounds_the_attention_logits():
    """SD3 §5.3.1: with RMS-normalised q, k (unit scale) every logit is ≤ √hd whatever the
    weights; without it the logits grow with them."""
    stats = {}
    for qk_norm in (False, True):
        cfg = replace(MMDiTConfig.tiny(), qk_norm=qk_norm)
        model = MMDiT(cfg)
        randomise(model, std=1.0)
        for module in model.modules():
            if isinstance(module, torch.nn.RMSNorm):
                torch.nn.init.ones_(module.weight)
        x, t, cond = inputs(cfg, tokens=7)
        stats[qk_norm] = model.attention_logits_stats(x, t, cond, blocks=2)
    hd = MMDiTConfig.tiny().width // MMDiTConfig.tiny().heads
    assert len(stats[True]) == 2
    assert all(s.max_logit <= math.sqrt(hd) + 1e-4 for s in stats[True])
    assert all(s.max_logit > 10 * math.sqrt(hd) for s in stats[False])
    tokens = 7 + 16  # context + 4×4 patches
    assert all(0 <= s.entropy <= math.log(tokens) + 1e-5 for s in stats[True] + stats[False])
    assert not any(block.record_stats for block in model.layers)


def test_tiny_parameter_counts_and_matched_backbones():
    tiny = MMDiTConfig.tiny()
    assert count_parameters(tiny) == sum(p.numel() for p in MMDiT(tiny).parameters()) == 77_648
    target = count_parameters(tiny)
    for backbone in ("crossdit", "dit"):
        matched = matched_config(tiny, backbone)
        assert matched.backbone == backbone and matched.heads == tiny.heads
        assert abs(count_parameters(matched) / target - 1) < 0.05
    small = MMDiTConfig.small()
    assert abs(count_parameters(matched_config(small, "dit")) / count_parameters(small) - 1) < 0.05


def test_presets():
    assert MMDiTConfig.paper() == MMDiTConfig.sd3_medium()
    medium = MMDiTConfig.sd3_medium()
    assert (medium.width, medium.heads, medium.qk_norm) == (1536, 24, False)
    m35 = MMDiTConfig.sd35_medium()
    assert m35.x_block_self_attn_layers == tuple(range(13)) and m35.pos_embed_max_size == 384
    large = MMDiTConfig.sd35_large()
    assert (large.width, large.heads, large.qk_norm, large.pos_embed_max_size) == (
        2432,
        38,
        True,
        192,
    )
    assert MMDiTConfig.from_dict(
        {"depth": 3, "x_block_self_attn_layers": [0]}
    ).x_block_self_attn_layers == (0,)


def test_bad_config():
    with pytest.raises(ValueError, match="unknown MMDiTConfig field"):
        MMDiTConfig.from_dict({"dept": 3})
    with pytest.raises(ValueError, match="x_block_self_attn_layers"):
        replace(MMDiTConfig.tiny(), x_block_self_attn_layers=(2,))  # depth 2: blocks 0 and 1
    # the last block's image stream is not pre-only: attn2 there is legal, as in the official code
    last = MMDiT(replace(MMDiTConfig.tiny(), x_block_self_attn_layers=(1,)))
    keys = last.state_dict().keys()
    assert "joint_blocks.1.x_block.attn2.qkv.weight" in keys
    assert "joint_blocks.1.context_block.attn.proj.weight" not in keys
    x = torch.randn(2, last.config.in_channels, 4, 4)
    cond = {
        "context": torch.randn(2, 3, last.config.context_dim),
        "pooled": torch.randn(2, last.config.adm_in),
    }
    assert last(x, torch.rand(2), cond).shape == x.shape
    with pytest.raises(ValueError, match="backbone"):
        replace(MMDiTConfig.tiny(), backbone="unet")
    with pytest.raises(ValueError, match="divisible"):
        replace(MMDiTConfig.tiny(), hidden=30)


def test_bad_inputs():
    model = MMDiT(MMDiTConfig.tiny())
    x, t, cond = inputs(model.config)
    with pytest.raises(ValueError, match=r"x must be \(b, 4, h, w\)"):
        model(x[:, :3], t, cond)
    with pytest.raises(ValueError, match="multiples of patch_size 2"):
        model(x[:, :, :7], t, cond)
    with pytest.raises(ValueError, match="exceeds the positional table of 16×16"):
        model(torch.randn(2, 4, 34, 8), t, cond)
    with pytest.raises(ValueError, match="keys 'context' and 'pooled'"):
        model(x, t, {"context": cond["context"]})
    with pytest.raises(ValueError, match=r"cond\['context'\] must be \(2, L, 32\)"):
        model(x, t, {**cond, "context": cond["context"][..., :5]})
    with pytest.raises(ValueError, match=r"t must be a \(2,\) tensor"):
        model(x, t[:1], cond)


def test_crossdit_reads_the_context_only_through_cross_attention():
    cfg = replace(MMDiTConfig.tiny(), backbone="crossdit")
    model = MMDiT(cfg)
    randomise(model)
    keys = model.state_dict()
    assert "blocks.0.cross_kv.weight" in keys and not any("context_block" in k for k in keys)
    x, t, cond = inputs(cfg)
    _, _, other = inputs(cfg, seed=1)
    mixed = {"context": other["context"], "pooled": cond["pooled"]}
    assert (model(x, t, mixed) - model(x, t, cond)).abs().max() > 1e-3
    for block in model.blocks:
        torch.nn.init.zeros_(block.cross_proj.weight)
        torch.nn.init.zeros_(block.cross_proj.bias)
    torch.testing.assert_close(model(x, t, mixed), model(x, t, cond), rtol=0, atol=0)


def test_dit_concat_runs_one_weight_set_over_both_token_kinds():
    cfg = replace(MMDiTConfig.tiny(), backbone="dit")
    model = MMDiT(cfg)
    randomise(model)
    block = model.blocks[0]
    assert not any("context" in k for k, _ in block.named_parameters())
    g = torch.Generator().manual_seed(3)
    context, tokens, c = (torch.randn(2, n, cfg.width, generator=g) for n in (3, 5, 1))
    out_context, out_tokens = block(context, tokens, c[:, 0])
    together = block.forward(context[:, :0], torch.cat([context, tokens], 1), c[:, 0])[1]
    torch.testing.assert_close(torch.cat([out_context, out_tokens], 1), together)


def test_output_equals_the_official_mmditx_on_pinned_numbers():
    """Pinned from the official ``mmditx.MMDiTX`` (Stability-AI/sd3.5 fbf8f48) in float64: the
    same state dict (every tensor filled from one seeded generator in sorted key order, our
    pos_embed table) loaded strictly into both, QK-RMSNorm, attn2 in both blocks (the last one
    too), a non-square 6×10 latent, timestep 1000·t; max |ours − official| was 0.0."""
    config = MMDiTConfig(
        in_channels=4,
        depth=2,
        context_dim=24,
        adm_in=12,
        pos_embed_max_size=8,
        qk_norm=True,
        x_block_self_attn_layers=(0, 1),
    )
    model = MMDiT(config).double()
    g = torch.Generator().manual_seed(1234)
    filled = {}
    for key, value in sorted(model.state_dict().items()):
        if key.endswith("pos_embed"):
            filled[key] = value
            continue
        u = torch.rand(value.shape, generator=g, dtype=torch.float64) * 2 - 1
        scale = 0.5 / max(1, value.shape[-1]) ** 0.5 if value.dim() > 1 else 0.2
        filled[key] = (u.float() * scale).double()
    model.load_state_dict(filled, strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, 10, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    cond = {
        "context": torch.randn(2, 5, 24, generator=g, dtype=torch.float64),
        "pooled": torch.randn(2, 12, generator=g, dtype=torch.float64),
    }
    with torch.no_grad():
        out = model(x, t, cond)
    assert out.sum().item() == pytest.approx(-54.543851766687524, abs=1e-9)
    assert out.abs().sum().item() == pytest.approx(115.21476925001267, abs=1e-9)
    picks = [out[0, 0, 0, 0].item(), out[1, 3, 5, 9].item(), out[0, 2, 3, 4].item()]
    assert picks == pytest.approx(
        [-0.540804555962432, -0.09094358579613672, -0.3853724228690316], abs=1e-12
    )


def test_qk_rmsnorm_is_torchs_in_float32_and_quiet_under_bf16_autocast():
    import warnings

    from esser_lab.nn.dit import RMSNorm

    ours, theirs = RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        theirs.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 2, 16)
    torch.testing.assert_close(ours(x), theirs(x))
    model = MMDiT(replace(MMDiTConfig.tiny(), qk_norm=True))
    x = torch.randn(2, 4, 4, 4)
    cond = {"context": torch.randn(2, 3, 32), "pooled": torch.randn(2, 32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's RMSNorm warned on a bf16 input, float weight
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, torch.rand(2), cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
