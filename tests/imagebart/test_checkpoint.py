"""ImageBART's released per-scale checkpoints: files written here in the official layout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from esser_lab.imagebart.checkpoint import (
    check_schedule,
    load_first_stage,
    load_last_scale,
    load_transition,
    split_scale_checkpoint,
)
from esser_lab.imagebart.first_stage import RemappedVQModel
from esser_lab.imagebart.model import ImageBARTConfig
from esser_lab.nn.first_stage import DDConfig
from esser_lab.taming.model import VQModel, VQModelConfig
from esser_lab.training.ema import shadow_name
from esser_lab.weights import WeightsError

CONFIG = replace(
    ImageBARTConfig.paper(), num_codes=20, seq_len=16, gpt_n_layer=2, gpt_n_head=2, gpt_n_embd=16
)
VQ = VQModelConfig(
    ddconfig=DDConfig(
        double_z=False, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32,
        ch_mult=(1, 1, 2), num_res_blocks=1, attn_resolutions=(4,),
    ),
    n_embed=32,
    embed_dim=4,
)  # fmt: skip
USED = torch.tensor([1, 3, 4, 7, 8, 9, 10, 11, 12, 13, 15, 17, 19, 20, 22, 23, 25, 27, 29, 31])


def _official_scale(
    path: Path, with_ema: bool = True
) -> tuple[dict, torch.nn.Module, RemappedVQModel]:
    """A DecoderOnlyDenoiser scale as its Lightning checkpoint stores it."""
    torch.manual_seed(0)
    gpt = CONFIG.build_gpt()
    vq = RemappedVQModel(VQ, USED)
    state = {f"transformer.{k}": v for k, v in gpt.state_dict().items()}
    if with_ema:
        for name, p in gpt.named_parameters():
            state[f"transformer_ema.{shadow_name(name)}"] = p.detach() + 1.0  # distinguishable
        state["transformer_ema.num_updates"] = torch.tensor(10, dtype=torch.int)
        state["transformer_ema.decay"] = torch.tensor(0.9999)
    state.update({f"first_stage_model.{k}": v for k, v in vq.state_dict().items()})
    schedule = CONFIG.schedule_tensor()
    state["sos_token"] = torch.tensor([0])
    state["alphats"] = schedule.alphas.float()
    state["alphacum"] = schedule.alphacum.float()
    torch.save({"state_dict": state, "global_step": 7, "epoch": 0}, path)
    return state, gpt, vq


def test_last_scale_gpt_round_trips_strictly(tmp_path: Path) -> None:
    path = tmp_path / "scale4.ckpt"
    _, gpt, _ = _official_scale(path)
    loaded = load_last_scale(path, CONFIG)
    for key, value in gpt.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    ema = load_last_scale(path, CONFIG, use_ema=True)
    torch.testing.assert_close(ema.head.weight, gpt.head.weight + 1.0)
    assert torch.equal(ema.blocks[0].attn.mask, gpt.blocks[0].attn.mask)
    x = torch.randint(20, (2, 16))
    torch.testing.assert_close(loaded(x), gpt(x))


def test_first_stage_with_remap_round_trips_strictly(tmp_path: Path) -> None:
    path = tmp_path / "scale4.ckpt"
    _, _, vq = _official_scale(path)
    loaded = load_first_stage(path, VQ)
    assert torch.equal(loaded.quantize.used, USED) and loaded.num_codes == 20
    for key, value in vq.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # remap: codebook index → position in used → back
    codes = USED[torch.tensor([[0, 5, 19]])]
    positions = loaded.remap_to_used(codes)
    assert positions.tolist() == [[0, 5, 19]] and torch.equal(loaded.unmap_to_all(positions), codes)
    unknown = loaded.remap_to_used(torch.tensor([0, 2]), torch.Generator().manual_seed(0))
    assert int(unknown.min()) >= 0 and int(unknown.max()) < 20  # official "random"
    again = loaded.remap_to_used(torch.tensor([0, 2]), torch.Generator().manual_seed(0))
    assert torch.equal(unknown, again)  # drawn from the generator passed in
    assert loaded.count_unknown(torch.tensor([[0, 2], [int(USED[3]), 1]])) == sum(
        int(c) not in USED.tolist() for c in (0, 2, int(USED[3]), 1)
    )
    with pytest.raises(ValueError, match="seeded torch.Generator"):
        loaded.remap_to_used(torch.tensor([0, 2]))


def test_schedule_check_and_split(tmp_path: Path) -> None:
    path = tmp_path / "scale4.ckpt"
    _official_scale(path, with_ema=False)
    parts = split_scale_checkpoint(path)
    assert set(parts) == {"transformer", "first_stage_model", "buffers"}
    check_schedule(path, CONFIG)
    with pytest.raises(WeightsError, match="alphacum|alphats"):
        check_schedule(path, replace(CONFIG, n_scales=3, alphas=(0.0, 0.0, 1.0)))
    with pytest.raises(WeightsError, match="transformer_ema"):
        load_last_scale(path, CONFIG, use_ema=True)


def test_wrong_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "scale4.ckpt"
    state, _, _ = _official_scale(path)
    with pytest.raises(WeightsError, match="ImageBART last-scale GPT"):
        load_last_scale(path, replace(CONFIG, gpt_n_layer=3))  # a missing block is named
    odd = dict(state, **{"model.something": torch.zeros(1)})
    with pytest.raises(WeightsError, match="model.something"):
        split_scale_checkpoint(odd)
    with pytest.raises(WeightsError, match="transformer"):
        split_scale_checkpoint({"first_stage_model.x": torch.zeros(1)})
    plain = {f"first_stage_model.{k}": v for k, v in VQModel(VQ).state_dict().items()}
    with pytest.raises(WeightsError, match="quantize.used"):
        load_first_stage({**plain, "transformer.x": torch.zeros(1)}, VQ)
    with pytest.raises(ValueError, match="last_scale"):
        load_last_scale(path, replace(CONFIG, last_scale="xtransformer"))
    with pytest.raises(ValueError, match="repeat"):
        RemappedVQModel(VQ, torch.tensor([1, 1]))


def official_xtransformer_keys(enc_depth: int, dec_depth: int) -> set[str]:
    """The tensor names of the official ResidualScaledXTransformer (read from the repository's
    x-transformers copy: TransformerWrapper, AttentionLayers of [norm, block, Residual],
    Attention's to_q/to_k/to_v/to_out, FeedForward's net.0.0/net.2), written out by hand."""
    keys = {"log_scalors"}
    for part, depth, kinds in (("encoder", enc_depth, "af"), ("decoder", dec_depth, "acf")):
        keys |= {
            f"{part}.{k}"
            for k in (
                "token_emb.weight",
                "pos_emb.emb.weight",
                "norm.weight",
                "norm.bias",
                "to_logits.weight",
                "to_logits.bias",
            )
        }
        for i, kind in enumerate(kinds * depth):
            p = f"{part}.attn_layers.layers.{i}"
            keys |= {f"{p}.0.weight", f"{p}.0.bias"}
            if kind in "ac":
                keys |= {f"{p}.1.{n}.weight" for n in ("to_q", "to_k", "to_v", "to_out")}
                keys.add(f"{p}.1.to_out.bias")
            else:
                keys |= {f"{p}.1.net.{n}.{w}" for n in ("0.0", "2") for w in ("weight", "bias")}
    return keys


def test_encoder_decoder_has_the_official_names_and_shapes_at_paper_size() -> None:
    with torch.device("meta"):
        net = ImageBARTConfig.paper().build_xtransformer()
    state = net.state_dict()
    assert set(state) == official_xtransformer_keys(18, 6)
    layer = "decoder.attn_layers.layers.1.1"  # the first cross-attention
    assert state[f"{layer}.to_q.weight"].shape == (16 * 64, 752)  # dim_head 64 (the default)
    assert state[f"{layer}.to_out.weight"].shape == (752, 1024)
    assert state["encoder.pos_emb.emb.weight"].shape == (257, 752)
    assert state["decoder.to_logits.weight"].shape == (548, 752)
    assert state["log_scalors"].shape == (4,)


def test_encoder_decoder_scale_round_trips_strictly(tmp_path: Path) -> None:
    config = replace(ImageBARTConfig.tiny(20, 16), dim=16, shared=False, last_scale="gpt",
                     n_scales=4, alphas=(0.0, 0.0, 0.0, 1.0))  # fmt: skip
    torch.manual_seed(0)
    net = config.build_xtransformer()
    state = {f"transformer.{k}": v for k, v in net.state_dict().items()}
    for name, p in net.named_parameters():
        state[f"transformer_ema.{shadow_name(name)}"] = p.detach() * 0.5
    state["transformer_ema.num_updates"] = torch.tensor(3, dtype=torch.int)
    state["transformer_ema.decay"] = torch.tensor(0.9999)
    vq = RemappedVQModel(VQ, USED)
    state.update({f"first_stage_model.{k}": v for k, v in vq.state_dict().items()})
    state.update(sos_token=torch.tensor([0]), alphats=torch.ones(5), alphacum=torch.ones(5))
    path = tmp_path / "scale2.ckpt"
    torch.save({"state_dict": state, "global_step": 1}, path)
    loaded = load_transition(path, config)
    assert set(loaded.state_dict()) == official_xtransformer_keys(2, 2)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    ema = load_transition(path, config, use_ema=True)
    torch.testing.assert_close(ema.log_scalors, net.log_scalors * 0.5)
    with pytest.raises(WeightsError, match="encoder-decoder"):
        load_transition(path, replace(config, enc_depth=3))
