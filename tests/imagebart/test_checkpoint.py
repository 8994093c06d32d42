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
