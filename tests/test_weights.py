"""The one weights loader (esser_lab.weights): formats, strictness, safety and layout messages."""

import json
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from esser_lab.weights import (
    WeightsError,
    describe_layout,
    load_weights,
    read_metadata,
    read_state_dict,
    save_weights,
)


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 1))


def lightning_ckpt(state_dict: dict, path) -> None:
    """A file shaped like a Lightning 1.x ``last.ckpt``, whose callback class is a dict key."""
    names = [
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.callbacks.model_checkpoint",
    ]
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update({name: types.ModuleType(name) for name in names})
    callback = type("ModelCheckpoint", (), {"__module__": names[-1]})
    sys.modules[names[-1]].ModelCheckpoint = callback
    try:
        torch.save(
            {
                "epoch": 2,
                "global_step": 3,
                "pytorch-lightning_version": "1.4.2",
                "callbacks": {callback: {"best_model_score": np.float64(0.25)}},
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}],
                "lr_schedulers": [],
                "state_dict": state_dict,
            },
            path,
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_safetensors_round_trip_with_metadata(tmp_path):
    net = tiny_net(0)
    path = save_weights(net, tmp_path / "net.safetensors", {"config": json.dumps({"width": 4})})
    other = load_weights(tiny_net(1), path, what="tiny net")
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    assert json.loads(read_metadata(path)["config"]) == {"width": 4}
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(net(x), other(x))


def test_tied_weights_are_saved_as_copies(tmp_path):
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    net[1].weight = net[0].weight
    path = save_weights(net, tmp_path / "tied.safetensors")
    state = read_state_dict(path)
    assert torch.equal(state["0.weight"], state["1.weight"])


def test_lightning_checkpoint_loads_with_prefix_and_drop(tmp_path):
    net = tiny_net(0)
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["loss.logvar"] = torch.zeros(())
    path = tmp_path / "last.ckpt"
    lightning_ckpt(state, path)
    assert set(read_state_dict(path)) == set(state)
    assert set(read_state_dict(path, drop=("loss.",))) == {f"model.{k}" for k in net.state_dict()}
    loaded = load_weights(tiny_net(1), path, what="system", prefix="model.")
    assert torch.equal(loaded[0].weight, net[0].weight)


def test_bare_pt_and_key_map(tmp_path):
    net = tiny_net(0)
    path = tmp_path / "bare.pt"
    torch.save({f"body.{k}": v for k, v in net.state_dict().items()}, path)
    renamed = load_weights(tiny_net(1), path, what="bare", key_map=lambda k: k[len("body.") :])
    assert torch.equal(renamed[2].bias, net[2].bias)
    table = {f"body.{k}": k for k in net.state_dict()}
    assert torch.equal(
        load_weights(tiny_net(2), path, what="bare", key_map=table)[2].bias, net[2].bias
    )
    with pytest.raises(WeightsError, match="key_map sends two keys of the file to 'x'"):
        load_weights(tiny_net(1), path, what="bare", key_map=lambda k: "x")


def test_strict_errors_name_missing_unexpected_and_shapes(tmp_path):
    net = tiny_net(0)
    state = net.state_dict()
    state.pop("2.weight")
    state["3.weight"] = torch.zeros(1)
    with pytest.raises(
        WeightsError,
        match=r"my file does not match Sequential \(strict\): 1 missing keys \['2\.weight'\], "
        r"1 unexpected keys \['3\.weight'\]",
    ):
        load_weights(tiny_net(1), state, what="my file")
    wide = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 2, 1))
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(
        WeightsError, match=r"0\.weight: file \(4, 3, 3, 3\) vs model \(8, 3, 3, 3\)"
    ):
        load_weights(wide, net.state_dict(), what="my file")
    # nothing was copied, not even 2.bias whose shape fits: the module is as it was
    assert all(torch.equal(before[k], v) for k, v in wide.state_dict().items())


def test_long_key_lists_are_cut_with_a_count():
    big = nn.Sequential(*[nn.Linear(1, 1) for _ in range(12)])
    with pytest.raises(WeightsError, match=r"24 missing keys \[.*\] … and 14 more, 0 unexpected"):
        load_weights(big, {}, what="empty")


def test_corrupted_missing_and_unknown_files(tmp_path):
    with pytest.raises(WeightsError, match=r"not found: .*absent\.safetensors\. Fetch the file"):
        read_state_dict(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match=r"not found: .*absent\.ckpt\. get it from X"):
        read_state_dict(tmp_path / "absent.ckpt", hint="get it from X")
    path = save_weights(tiny_net(), tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(WeightsError, match="cut.safetensors is not a readable safetensors file"):
        read_state_dict(tmp_path / "cut.safetensors")
    torch.save(tiny_net().state_dict(), tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:100])
    with pytest.raises(WeightsError, match="could not read .*cut.pt as a weights-only PyTorch"):
        read_state_dict(tmp_path / "cut.pt")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"unknown weights format '\.npz'"):
        read_state_dict(tmp_path / "weights.npz")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds a list, expected a dict of tensors"):
        read_state_dict(tmp_path / "list.pt")
    torch.save({"state_dict": {"a": torch.zeros(1), "b": 3}}, tmp_path / "odd.ckpt")
    with pytest.raises(WeightsError, match=r"1 entries are not tensors, e\.g\. \['b'\]"):
        read_state_dict(tmp_path / "odd.ckpt")
    with pytest.raises(
        WeightsError, match=r"no keys under the prefix 'ema\.'.*\['0\.', '1\.', '2\.'\]"
    ):
        read_state_dict(path, prefix="ema.")
    with pytest.raises(WeightsError, match="saved as .safetensors files, got 'x.pt'"):
        save_weights(tiny_net(), tmp_path / "x.pt")
    with pytest.raises(WeightsError, match="metadata maps strings to strings"):
        save_weights(tiny_net(), tmp_path / "m.safetensors", {"width": 4})


class Custom:  # an arbitrary class: the loader must refuse its global, never build it
    built = 0

    def __init__(self) -> None:
        Custom.built += 1


def test_a_pickle_naming_another_global_is_refused(tmp_path):
    path = tmp_path / "custom.ckpt"
    torch.save({"state_dict": tiny_net().state_dict(), "extra": Custom()}, path)
    built = Custom.built
    with pytest.raises(
        WeightsError, match=r"allow-list.*test_weights\.Custom\); it is not unpickled"
    ):
        read_state_dict(path)
    assert Custom.built == built


def test_a_diffusers_layout_names_both_layouts():
    class OriginalUNet(nn.Module):  # stand-in with the original CompVis names
        def __init__(self) -> None:
            super().__init__()
            self.time_embed = nn.Sequential(nn.Linear(2, 2))
            self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(1, 2, 1))])

    diffusers = {
        "time_embedding.linear_1.weight": torch.zeros(2, 2),
        "conv_in.weight": torch.zeros(2, 1, 1, 1),
        "down_blocks.0.resnets.0.conv1.weight": torch.zeros(2, 2, 3, 3),
    }
    with pytest.raises(
        WeightsError,
        match=r"follow the diffusers UNet .* layout .* but OriginalUNet expects the original "
        r"CompVis UNet",
    ):
        load_weights(OriginalUNet(), diffusers, what="UNet")
    assert describe_layout({"encoder.down_blocks.0.resnets.0.conv1.weight"}).startswith(
        "diffusers autoencoder"
    )
    assert describe_layout({"encoder.down.0.block.0.conv1.weight"}).startswith("original taming")
    with pytest.raises(WeightsError, match=r"DataParallel / DDP .*pass prefix='module\.'"):
        load_weights(
            tiny_net(), {f"module.{k}": v for k, v in tiny_net().state_dict().items()}, what="ddp"
        )
