"""diffusers exports read into the book's classes (esser_lab.ldm.diffusers_layout).

The files are written here in diffusers' layout (names, Linear attention weights in the
autoencoder, the pre-0.14 attention names) from a model of ours; reading them back must give
the same tensors and the same outputs. That the renamed weights also compute the same function
in diffusers' own classes is checked, before every timing, by ``bench/peers.py`` (diffusers is
a benchmark-only dependency).
"""

from dataclasses import replace

import pytest
import torch

from esser_lab.ldm.diffusers_layout import (
    autoencoder_key_to_diffusers,
    autoencoder_to_diffusers,
    load_diffusers_autoencoder,
    load_diffusers_unet,
    unet_key_to_diffusers,
    unet_to_diffusers,
)
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig, DDConfig
from esser_lab.nn.unet import UNetConfig, UNetModel
from esser_lab.taming.model import VQModel, VQModelConfig
from esser_lab.weights import WeightsError, save_weights

# Stable Diffusion's UNet, shrunk: three levels so that the middle level's indices are exercised.
SD_TINY = replace(
    UNetConfig.stable_diffusion_v1(),
    image_size=8,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_heads=2,
    context_dim=16,
    use_checkpoint=False,
)


def _filled(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor random (the zero-initialised output layers too), so a misplaced one shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model.eval()


def test_sd_v1_names_match_diffusers_convention() -> None:
    """Names diffusers' SD conversion is known to use, for the released SD v1 configuration."""
    config = UNetConfig.stable_diffusion_v1()
    pairs = {
        "input_blocks.0.0.weight": "conv_in.weight",
        "time_embed.2.bias": "time_embedding.linear_2.bias",
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": (
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
        ),
        "input_blocks.3.0.op.weight": "down_blocks.0.downsamplers.0.conv.weight",
        "input_blocks.4.0.skip_connection.weight": "down_blocks.1.resnets.0.conv_shortcut.weight",
        "input_blocks.11.0.in_layers.2.weight": "down_blocks.3.resnets.1.conv1.weight",
        "middle_block.1.proj_in.weight": "mid_block.attentions.0.proj_in.weight",
        "middle_block.2.emb_layers.1.weight": "mid_block.resnets.1.time_emb_proj.weight",
        "output_blocks.2.1.conv.weight": "up_blocks.0.upsamplers.0.conv.weight",
        "output_blocks.5.2.conv.bias": "up_blocks.1.upsamplers.0.conv.bias",
        "output_blocks.3.0.skip_connection.weight": "up_blocks.1.resnets.0.conv_shortcut.weight",
        "output_blocks.11.1.transformer_blocks.0.ff.net.2.weight": (
            "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight"
        ),
        "out.0.weight": "conv_norm_out.weight",
        "out.2.bias": "conv_out.bias",
    }
    for ours, theirs in pairs.items():
        assert unet_key_to_diffusers(ours, config) == theirs
    with torch.device("meta"):
        keys = list(UNetModel(config).state_dict())
    renamed = {unet_key_to_diffusers(k, config) for k in keys}
    assert len(keys) == len(renamed) == 686  # one-to-one over SD v1's 686 tensors


def test_autoencoder_names_match_diffusers_convention() -> None:
    levels = 4  # KL-f8
    pairs = {
        "encoder.down.0.block.1.norm2.weight": "encoder.down_blocks.0.resnets.1.norm2.weight",
        "encoder.down.1.block.0.nin_shortcut.weight": (
            "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"
        ),
        "encoder.down.2.downsample.conv.bias": "encoder.down_blocks.2.downsamplers.0.conv.bias",
        "encoder.mid.attn_1.q.weight": "encoder.mid_block.attentions.0.to_q.weight",
        "encoder.mid.attn_1.norm.bias": "encoder.mid_block.attentions.0.group_norm.bias",
        "decoder.mid.block_2.conv1.weight": "decoder.mid_block.resnets.1.conv1.weight",
        "decoder.up.3.block.2.conv2.weight": "decoder.up_blocks.0.resnets.2.conv2.weight",
        "decoder.up.1.upsample.conv.weight": "decoder.up_blocks.2.upsamplers.0.conv.weight",
        "decoder.mid.attn_1.proj_out.bias": "decoder.mid_block.attentions.0.to_out.0.bias",
        "decoder.norm_out.weight": "decoder.conv_norm_out.weight",
        "encoder.conv_in.weight": "encoder.conv_in.weight",
        "quant_conv.weight": "quant_conv.weight",
        "post_quant_conv.bias": "post_quant_conv.bias",
    }
    for ours, theirs in pairs.items():
        assert autoencoder_key_to_diffusers(ours, levels) == theirs


def test_unet_file_in_diffusers_layout_loads_and_computes_the_same(tmp_path) -> None:
    torch.manual_seed(0)
    ours = _filled(UNetModel(SD_TINY))
    path = save_weights(
        unet_to_diffusers(ours.state_dict(), SD_TINY), tmp_path / "unet.safetensors"
    )
    loaded = load_diffusers_unet(path, SD_TINY)
    assert not any(t.is_meta for t in loaded.state_dict().values())
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700])
    context = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, context=context), ours(x, t, context=context))


def test_unet_of_another_configuration_is_named(tmp_path) -> None:
    ours = UNetModel(SD_TINY)
    state = unet_to_diffusers(ours.state_dict(), SD_TINY)
    wider = replace(SD_TINY, model_channels=64)
    with pytest.raises(WeightsError, match="wrong shape"):
        load_diffusers_unet(state, wider)
    deeper = replace(SD_TINY, num_res_blocks=3)
    with pytest.raises(WeightsError, match="missing keys"):
        load_diffusers_unet(state, deeper)


def test_compvis_file_handed_to_the_diffusers_reader_is_named() -> None:
    kl = AutoencoderKLConfig.tiny(4)
    with pytest.raises(WeightsError, match="does not match"):
        load_diffusers_autoencoder({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}, kl)


@pytest.mark.parametrize("legacy", [False, True])
def test_kl_autoencoder_in_diffusers_layout(tmp_path, legacy: bool) -> None:
    config = AutoencoderKLConfig.tiny(4)
    ours = _filled(AutoencoderKL(config))
    state = autoencoder_to_diffusers(ours.state_dict(), len(config.ddconfig.ch_mult))
    assert state["encoder.mid_block.attentions.0.to_q.weight"].dim() == 2  # Linear, as diffusers
    if legacy:  # exports made before diffusers 0.14
        old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
        for new, name in old.items():
            state = {k.replace(f".{new}.", f".{name}."): v for k, v in state.items()}
    path = save_weights(state, tmp_path / "vae.safetensors")
    loaded = load_diffusers_autoencoder(path, config)
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.encode(x).mean, ours.encode(x).mean)
        z = torch.randn(2, config.embed_dim, 4, 4)
        assert torch.equal(loaded.decode(z), ours.decode(z))


def test_vq_autoencoder_in_diffusers_layout() -> None:
    dd = DDConfig(
        double_z=False,
        resolution=16,
        ch=32,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(8,),
        z_channels=3,
    )  # attention at a level, not only in the middle
    config = VQModelConfig(ddconfig=dd, n_embed=16, embed_dim=3)
    ours = _filled(VQModel(config))
    state = autoencoder_to_diffusers(ours.state_dict(), len(dd.ch_mult))
    assert "encoder.down_blocks.1.attentions.0.to_k.weight" in state
    assert "quantize.embedding.weight" in state
    loaded = load_diffusers_autoencoder(state, config)
    for key, value in ours.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_wrong_config_type_is_named() -> None:
    with pytest.raises(TypeError, match="AutoencoderKLConfig"):
        load_diffusers_autoencoder({}, UNetConfig.tiny())


def test_dtype_of_the_result() -> None:
    """A float16 export gives float32 weights by default, the file's float16 with dtype=None."""
    state = unet_to_diffusers(UNetModel(SD_TINY).half().state_dict(), SD_TINY)
    default = load_diffusers_unet(state, SD_TINY)
    kept = load_diffusers_unet(state, SD_TINY, dtype=None)
    assert {p.dtype for p in default.parameters()} == {torch.float32}
    assert {p.dtype for p in kept.parameters()} == {torch.float16}
