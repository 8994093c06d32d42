"""bench/peers.py without diffusers: the name mappings onto diffusers' layouts (now in
esser_lab.ldm.diffusers_layout), checked against pinned listings of diffusers 0.42.1's state
dicts; what cannot be mapped, the timer and the CSV merge."""

import csv
import hashlib
import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from esser_lab.ldm.diffusers_layout import (
    autoencoder_to_diffusers,
    unet_key_to_diffusers,
    unet_to_diffusers,
)
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.nn.unet import UNetConfig, UNetModel
from esser_lab.sd3.checkpoint import mmdit_to_diffusers
from esser_lab.sd3.model import MMDiT, MMDiTConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", REPO / "bench/peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listing_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the sorted "name shape" lines of a state dict."""
    lines = (f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# the listings of diffusers 0.42.1's UNet2DConditionModel / AutoencoderKL as bench/peers.py
# configures them (diffusers_unet, diffusers_autoencoder_kl), measured by instantiating them
DIFFUSERS_UNET = {
    "tiny": (208, "c8a65278a213aeb79e9b68b136a0d9856ddde7b4343d85d74c4d1ac6ef192e81"),
    "stable_diffusion_v1": (
        686,
        "5159ace1d6e60acb2ff7b9ddd73044e92771c04623d5c12ebfaaf0067d0aabb7",
    ),
}
DIFFUSERS_VAE = {
    "tiny": (148, "81d1a3bc189d7f330b30da42e2e335cdcc97e9571e81530efbfa0ab13097c91a"),
    "kl_f8": (248, "600696bc94ffc80f250f7a2b836e289ff191e5f194ce89f9aa389cfc8ef4a0ab"),
}


# diffusers 0.42.1's SD3Transformer2DModel as bench/peers.py configures it (diffusers_sd3) for
# the chapter's tiny MMDiT and the released presets, measured by instantiating it on meta
DIFFUSERS_SD3 = {
    "tiny": (67, "6abfaa1cf93e76fc010548803ee4718c69a5f3d0d949b2889779e3d73298d57f"),
    "sd3_medium": (683, "8dd0c1790d84325bbe0b2b6d85cf908333f4a1c1e227196551f6e8cca0d19188"),
    "sd35_medium": (909, "e57998fb698f8edcd517f7234dc51aac5a48c2f7b9b860e416a8e33511270d62"),
    "sd35_large": (1227, "ca8d0663f3e99f59fa5fca922d3f62c19820be9b6add48401929410faa334b7b"),
}


@pytest.mark.parametrize("preset", sorted(DIFFUSERS_SD3))
def test_mmdit_maps_onto_diffusers_sd3_names_and_shapes(peers, preset: str) -> None:
    with torch.device("meta"):
        state = MMDiT(getattr(MMDiTConfig, preset)()).state_dict()
    mapped = mmdit_to_diffusers(state)
    assert (len(mapped), listing_digest(mapped)) == DIFFUSERS_SD3[preset]


def test_diffusers_sd3_refuses_other_backbones(peers) -> None:
    with pytest.raises(ValueError, match="backbone='crossdit'"):
        peers.diffusers_sd3(replace(MMDiTConfig.tiny(), backbone="crossdit"))
    assert "chapter 17" in next(iter(peers.MMDIT_CONFIGS))


@pytest.mark.parametrize("preset", sorted(DIFFUSERS_UNET))
def test_unet_state_dict_maps_onto_diffusers_names_and_shapes(peers, preset: str) -> None:
    config = getattr(UNetConfig, preset)()
    with torch.device("meta"):
        state = UNetModel(config).state_dict()
    mapped = unet_to_diffusers(state, config)
    assert (len(mapped), listing_digest(mapped)) == DIFFUSERS_UNET[preset]


@pytest.mark.parametrize("preset", sorted(DIFFUSERS_VAE))
def test_kl_autoencoder_maps_onto_diffusers_names_and_shapes(peers, preset: str) -> None:
    config = AutoencoderKLConfig.tiny(4) if preset == "tiny" else AutoencoderKLConfig.kl_f8()
    with torch.device("meta"):
        state = AutoencoderKL(config).state_dict()
    mapped = autoencoder_to_diffusers(state, len(config.ddconfig.ch_mult))
    assert (len(mapped), listing_digest(mapped)) == DIFFUSERS_VAE[preset]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("time_embed.0.weight", "time_embedding.linear_1.weight"),
        ("input_blocks.0.0.bias", "conv_in.bias"),
        ("input_blocks.2.0.emb_layers.1.weight", "down_blocks.0.resnets.1.time_emb_proj.weight"),
        (
            "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        ),
        ("input_blocks.6.0.op.weight", "down_blocks.1.downsamplers.0.conv.weight"),
        ("input_blocks.11.0.out_layers.3.bias", "down_blocks.3.resnets.1.conv2.bias"),
        ("middle_block.1.proj_in.weight", "mid_block.attentions.0.proj_in.weight"),
        ("middle_block.2.in_layers.0.weight", "mid_block.resnets.1.norm1.weight"),
        ("output_blocks.0.0.skip_connection.weight", "up_blocks.0.resnets.0.conv_shortcut.weight"),
        ("output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"),
        ("output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"),
        (
            "output_blocks.11.1.ff.net.0.proj.weight",
            "up_blocks.3.attentions.2.ff.net.0.proj.weight",
        ),
        ("out.2.weight", "conv_out.weight"),
    ],
)
def test_stable_diffusion_unet_key_mapping(peers, ours: str, theirs: str) -> None:
    # SD: input_blocks.{3k+1, 3k+2} are level k's blocks, 3k+3 its down-sampler
    assert unet_key_to_diffusers(ours, UNetConfig.stable_diffusion_v1()) == theirs


def test_what_diffusers_cannot_express_is_refused(peers) -> None:
    with pytest.raises(KeyError, match="label_emb"):
        unet_key_to_diffusers("label_emb.weight", UNetConfig.tiny())
    legacy = replace(UNetConfig.tiny(), use_spatial_transformer=False, context_dim=None)
    with pytest.raises(KeyError, match="qkv"):
        unet_key_to_diffusers("input_blocks.2.1.qkv.weight", legacy)
    with pytest.raises(ValueError, match="use_spatial_transformer"):
        peers.diffusers_unet(legacy)
    with pytest.raises(ValueError, match="dropout"):
        peers.diffusers_unet(replace(UNetConfig.tiny(), dropout=0.1))
    with pytest.raises(ValueError, match="attn_resolutions"):
        peers.diffusers_autoencoder_kl(AutoencoderKLConfig.kl_f16())


def test_alternate_times_both_after_their_setup(peers) -> None:
    calls: list[str] = []
    row = peers.alternate(
        "fake",
        lambda: sum(range(100_000)) and calls.append("ours"),
        lambda: sum(range(1_000_000)) and calls.append("peer"),
        repeats=5,
        warmup=1,
        before=(lambda: calls.append("zero ours"), lambda: calls.append("zero peer")),
    )
    # warm-up, then ours first, then the peer first, ...
    assert calls[:8] == ["zero ours", "ours", "zero peer", "peer"] * 2
    assert calls[8:12] == ["zero peer", "peer", "zero ours", "ours"]
    assert calls.count("ours") == calls.count("peer") == 6
    assert float(row["ratio"]) > 2  # the peer sums ten times as many numbers
    assert row["repeats"] == "5"
    assert float(row["ratio"]) == pytest.approx(
        float(row["peer_s"]) / float(row["ours_s"]), rel=0.1
    )


def test_check_close_stops_on_a_mismatch(peers) -> None:
    a = torch.ones(3)
    peers._check_close("x", "outputs", a, a + 1e-6, 1e-4)
    with pytest.raises(SystemExit, match="differ"):
        peers._check_close("x", "outputs", a, a + 1e-2, 1e-4)


def test_record_replaces_the_same_row_and_keeps_the_others(peers, tmp_path: Path) -> None:
    path = tmp_path / "peers.csv"
    row = {"model": "m", "peer": "p", "config": "c", "ours_s": "1", "peer_s": "2", "ratio": "2"}
    peers.record([row, {**row, "config": "d"}], path)
    peers.record([{**row, "ratio": "3", "load": "1.50"}], path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["config"], r["ratio"], r["load"]) for r in rows] == [
        ("c", "3", "1.50"),
        ("d", "2", ""),
    ]
    assert list(rows[0]) == peers.FIELDS
