"""Reading the official SD3 single-file layout (esser_lab.sd3.checkpoint) on tiny files."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from esser_lab.sd3.checkpoint import (
    infer_config,
    load_mmdit,
    mmdit_from_diffusers,
    mmdit_to_diffusers,
    split_sd3_checkpoint,
)
from esser_lab.sd3.model import MMDiT, MMDiTConfig
from esser_lab.weights import WeightsError, describe_layout, load_weights

# width 64·depth, depth heads: the official rule, so the config is read off the shapes alone
OFFICIAL_LIKE = replace(
    MMDiTConfig.tiny(),
    depth=2,
    hidden=None,
    num_heads=None,
    context_dim=24,
    adm_in=20,
    pos_embed_max_size=8,
)


def random_model(config: MMDiTConfig, seed: int = 0) -> MMDiT:
    model = MMDiT(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def run(model: MMDiT, h: int = 6, w: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    x = torch.randn(2, cfg.in_channels, h, w, generator=g)
    cond = {
        "context": torch.randn(2, 5, cfg.context_dim, generator=g),
        "pooled": torch.randn(2, cfg.adm_in, generator=g),
    }
    with torch.no_grad():
        return model(x, torch.tensor([0.3, 0.9]), cond)


def test_infer_config_reads_the_official_shapes():
    for config in (
        OFFICIAL_LIKE,
        replace(OFFICIAL_LIKE, depth=3, qk_norm=True, x_block_self_attn_layers=(0, 1)),
        replace(MMDiTConfig.tiny(), qk_norm=True),  # width ≠ 64·depth: heads from ln_k
    ):
        with torch.device("meta"):
            state = MMDiT(config).state_dict()
        inferred = infer_config(state)
        assert (inferred.width, inferred.heads) == (config.width, config.heads)
        assert replace(inferred, hidden=config.hidden, num_heads=config.num_heads) == config


def test_infer_config_needs_a_config_when_the_heads_are_unknown():
    state = MMDiT(MMDiTConfig.tiny()).state_dict()  # width 32 ≠ 128, no QK-norm
    with pytest.raises(WeightsError, match="pass config="):
        infer_config(state)
    model = load_mmdit(state, config=MMDiTConfig.tiny())
    assert model.config == MMDiTConfig.tiny()


@pytest.mark.parametrize("prefix", ["model.diffusion_model.", ""])
def test_fp16_file_with_and_without_prefix(tmp_path, prefix):
    ours = random_model(OFFICIAL_LIKE)
    state = {prefix + k: v.half() for k, v in ours.state_dict().items()}
    if prefix:  # the incl_clips files carry the VAE and the text encoders beside it
        state["first_stage_model.decoder.conv_in.weight"] = torch.zeros(3, 16, 3, 3).half()
        state["text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"] = torch.ones(
            4
        ).half()
    path = tmp_path / "sd3_tiny.safetensors"
    save_file(state, str(path))
    loaded = load_mmdit(path)
    assert loaded.config == OFFICIAL_LIKE and not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.state_dict().values())
    reference = random_model(OFFICIAL_LIKE).half().float()  # the same weights through float16
    torch.testing.assert_close(run(loaded), run(reference), rtol=0, atol=0)
    parts = split_sd3_checkpoint(path)
    if prefix:
        assert "1 first_stage_model.*" in parts.note and "1 text_encoders.*" in parts.note
    else:
        assert parts.note == ""
    half = load_mmdit(path, dtype=None)
    assert half.pos_embed.dtype == torch.float16
    bf16 = half.to(torch.bfloat16)  # float32 inputs, float32 velocity, as the official apply_model
    out = run(bf16)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, run(reference), rtol=0.1, atol=0.1)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = random_model(OFFICIAL_LIKE).state_dict()
    del state["joint_blocks.1.x_block.mlp.fc2.bias"]
    with pytest.raises(WeightsError, match=r"joint_blocks\.1\.x_block\.mlp\.fc2\.bias"):
        load_mmdit(state)
    state = random_model(OFFICIAL_LIKE).state_dict()
    state["joint_blocks.1.context_block.mlp.fc1.weight"] = torch.zeros(
        4, 4
    )  # last block is pre-only
    with pytest.raises(WeightsError, match=r"joint_blocks\.1\.context_block\.mlp\.fc1\.weight"):
        load_mmdit(state)
    state = {
        "model.diffusion_model." + k: v for k, v in random_model(OFFICIAL_LIKE).state_dict().items()
    }
    state["cond_stage_model.foo"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="cond_stage_model.foo"):
        load_mmdit(state)
    with pytest.raises(WeightsError, match="no 'x_embedder.proj.weight'"):
        load_mmdit({"foo.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="Fetch the file yourself|Download the released file"):
        load_mmdit(tmp_path / "absent.safetensors")


def test_diffusers_file_is_refused_with_the_expected_layout(tmp_path):
    state = mmdit_to_diffusers(random_model(OFFICIAL_LIKE).state_dict())
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(state, str(path))
    with pytest.raises(
        WeightsError, match=r"SD3Transformer2DModel layout.*official single-file layout"
    ):
        load_mmdit(path)
    back = load_mmdit(mmdit_from_diffusers(state))
    torch.testing.assert_close(run(back), run(random_model(OFFICIAL_LIKE)), rtol=0, atol=0)


def test_diffusers_names_split_qkv_and_swap_shift_scale():
    config = replace(OFFICIAL_LIKE, depth=3, qk_norm=True, x_block_self_attn_layers=(0,))
    state = random_model(config).state_dict()
    d = config.width
    theirs = mmdit_to_diffusers(state)
    q, k, v = state["joint_blocks.0.x_block.attn.qkv.weight"].chunk(3)
    assert torch.equal(theirs["transformer_blocks.0.attn.to_k.weight"], k)
    assert torch.equal(
        theirs["transformer_blocks.0.attn.add_v_proj.bias"],
        state["joint_blocks.0.context_block.attn.qkv.bias"][2 * d :],
    )
    assert torch.equal(
        theirs["transformer_blocks.0.attn2.to_q.weight"],
        state["joint_blocks.0.x_block.attn2.qkv.weight"][:d],
    )
    shift, scale = state["final_layer.adaLN_modulation.1.weight"].chunk(2)
    assert torch.equal(theirs["norm_out.linear.weight"], torch.cat([scale, shift]))
    last = state["joint_blocks.2.context_block.adaLN_modulation.1.bias"]  # pre-only: (shift, scale)
    assert torch.equal(
        theirs["transformer_blocks.2.norm1_context.linear.bias"], torch.cat([last[d:], last[:d]])
    )
    inner = state["joint_blocks.1.context_block.adaLN_modulation.1.bias"]  # six chunks: not swapped
    assert torch.equal(theirs["transformer_blocks.1.norm1_context.linear.bias"], inner)
    assert torch.equal(
        theirs["transformer_blocks.1.attn.norm_added_k.weight"],
        state["joint_blocks.1.context_block.attn.ln_k.weight"],
    )
    assert "transformer_blocks.2.attn.to_add_out.weight" not in theirs
    assert theirs["pos_embed.pos_embed"] is state["pos_embed"]
    back = mmdit_from_diffusers(theirs)
    assert set(back) == set(state) and all(torch.equal(back[n], t) for n, t in state.items())
    with pytest.raises(WeightsError, match="no diffusers name"):
        mmdit_to_diffusers({"joint_blocks.0.x_block.oops.weight": torch.zeros(1)})


def test_the_generic_loader_names_both_sd3_layouts():
    ours = random_model(OFFICIAL_LIKE).state_dict()
    theirs = mmdit_to_diffusers(ours)
    assert describe_layout(ours).startswith("official SD3 MMDiT")
    with pytest.raises(
        WeightsError, match=r"diffusers SD3 transformer.*official SD3 MMDiT.*mmdit_from_diffusers"
    ):
        load_weights(MMDiT(OFFICIAL_LIKE), theirs, what="MMDiT")


def test_sample_released_reads_a_single_file_and_decodes(tmp_path):
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.nn.first_stage import AutoencoderKL
    from esser_lab.sd3.first_stage import decode_latents, load_sd3_vae, toy_first_stage_config
    from esser_lab.sd3.method import sample_released
    from esser_lab.weights import save_weights

    torch.manual_seed(0)
    vae_config = toy_first_stage_config()  # SD3's VAE layout, tiny: f = 2, 4 channels
    vae = AutoencoderKL(vae_config)
    config = MMDiTConfig(in_channels=4, depth=1, context_dim=24, adm_in=12, pos_embed_max_size=8)
    mmdit = MMDiT(config)
    for p in mmdit.parameters():  # adaLN-Zero starts at an exact zero output: move off it
        torch.nn.init.normal_(p, std=0.05)
    single = {f"model.diffusion_model.{k}": v for k, v in mmdit.state_dict().items()}
    single |= {f"first_stage_model.{k}": v for k, v in vae.state_dict().items()}
    path = save_weights(single, tmp_path / "sd3_tiny.safetensors")
    cond = {"context": torch.randn(2, 5, 24), "pooled": torch.randn(2, 12)}
    z, images = sample_released(path, cond=cond, steps=3, size=16, seed=1, vae_config=vae_config)
    assert z.shape == (2, 4, 8, 8) and images.shape == (2, 3, 16, 16)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expect = formulation("rf").sample(mmdit.eval(), noise, 3, cond, shift=3.0)
        decoded = decode_latents(load_sd3_vae(path, config=vae_config), expect).clamp(-1, 1)
    torch.testing.assert_close(z, expect)
    torch.testing.assert_close(images, decoded)
    # guidance needs the unconditional input; a file without its VAE gives latents only
    with pytest.raises(ValueError, match="null_cond"):
        sample_released(path, cond=cond, guidance=3.0, steps=1, size=16, vae_config=vae_config)
    null = {"context": torch.zeros(1, 5, 24), "pooled": torch.zeros(1, 12)}
    guided, _ = sample_released(
        path, cond=cond, null_cond=null, guidance=3.0, steps=2, size=16, vae_config=vae_config
    )
    assert guided.shape == z.shape and not torch.allclose(guided, z)
    bare = save_weights(mmdit, tmp_path / "mmdit_only.safetensors")
    latents, none = sample_released(bare, steps=1, size=16, vae_config=vae_config)
    assert none is None and latents.shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        sample_released(bare, steps=1, size=18, vae_config=vae_config)
