"""The released-checkpoint loader, on files written here in the official Lightning 1.x layout."""

import sys
import types

import numpy as np
import pytest
import torch

from esser_lab.taming import CheckpointError, VQGANConfig, VQModel, load_vqgan
from esser_lab.taming.checkpoint import split_transformer_checkpoint

SMALL = VQGANConfig(
    resolution=16,
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
    z_channels=8,
    embed_dim=8,
    n_embed=16,
)


class _FakeModule(types.ModuleType):
    pass


def _official_ckpt(state_dict: dict, path, *, with_loss: bool = True) -> None:
    """A file shaped like a PL 1.x ``last.ckpt``: the callback class is a dict key."""
    names = [
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.callbacks.model_checkpoint",
    ]
    modules = {name: _FakeModule(name) for name in names}
    model_checkpoint = type("ModelCheckpoint", (), {"__module__": names[-1]})
    modules[names[-1]].ModelCheckpoint = model_checkpoint
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(modules)
    try:
        sd = dict(state_dict)
        if with_loss:
            sd["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
            sd["loss.perceptual_loss.scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
        torch.save(
            {
                "epoch": 3,
                "global_step": 1234,
                "pytorch-lightning_version": "1.0.8",
                "callbacks": {
                    model_checkpoint: {"best_model_score": np.float64(0.5), "best_model_path": "x"}
                },
                "optimizer_states": [
                    {"state": {}, "param_groups": [{"lr": 4.5e-6, "params": [0]}]}
                ],
                "lr_schedulers": [],
                "state_dict": sd,
            },
            path,
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    assert "pytorch_lightning" not in sys.modules or saved["pytorch_lightning"] is not None


def test_vqgan_round_trip_official_layout(tmp_path):
    torch.manual_seed(0)
    model = VQModel(SMALL).eval()
    path = tmp_path / "last.ckpt"
    _official_ckpt(model.state_dict(), path)
    loaded = load_vqgan(path, SMALL)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def test_released_config_is_inferred_from_the_codebook(tmp_path):
    # the real f16-1024 layout (72 M parameters): keys and shapes of the released file
    model = VQModel(VQGANConfig.paper(1024))
    assert len(model.state_dict()) == 343  # 398 in the file minus 55 loss tensors
    state = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
    path = tmp_path / "f16_1024.ckpt"
    _official_ckpt(state, path)
    loaded = load_vqgan(path)
    assert loaded.config.n_embed == 1024 and loaded.config.factor == 16


def test_mismatched_keys_and_shapes_are_named(tmp_path):
    model = VQModel(SMALL)
    state = model.state_dict()
    state.pop("quant_conv.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.ckpt"
    _official_ckpt(state, path)
    with pytest.raises(
        CheckpointError, match=r"1 missing keys \['quant_conv.weight'\].*extra.weight"
    ):
        load_vqgan(path, SMALL)
    _official_ckpt(VQModel(SMALL.with_codebook(32)).state_dict(), path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_vqgan(path, SMALL)


def test_missing_corrupted_and_unsafe_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*never"):
        load_vqgan(tmp_path / "absent.ckpt")
    corrupted = tmp_path / "corrupted.ckpt"
    corrupted.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="could not read"):
        load_vqgan(corrupted)

    class Payload:  # an arbitrary class: must never be instantiated by the loader
        def __reduce__(self):
            return (print, ("unpickled!",))

    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "evil": Payload()}, unsafe)
    with pytest.raises(CheckpointError, match=r"allow-list.*GLOBAL print.*nothing in it ran"):
        load_vqgan(unsafe)


def test_split_transformer_checkpoint(tmp_path):
    vq = VQModel(SMALL).state_dict()
    state = {
        "transformer.tok_emb.weight": torch.zeros(16, 8),
        "transformer.blocks.0.attn.mask": torch.ones(1, 1, 4, 4),
    }
    state |= {f"first_stage_model.{k}": v for k, v in vq.items()}
    state |= {f"cond_stage_model.{k}": v for k, v in vq.items()}
    path = tmp_path / "transformer.ckpt"
    _official_ckpt(state, path, with_loss=False)
    parts = split_transformer_checkpoint(path)
    assert set(parts) == {"transformer", "first_stage_model", "cond_stage_model"}
    assert set(parts["first_stage_model"]) == set(vq)
    VQModel(SMALL).load_state_dict(parts["cond_stage_model"], strict=True)
    with pytest.raises(CheckpointError, match="not a Net2NetTransformer"):
        split_transformer_checkpoint(_vq_only(tmp_path, vq))


def _vq_only(tmp_path, vq):
    path = tmp_path / "vq_only.ckpt"
    _official_ckpt(vq, path)
    return path
