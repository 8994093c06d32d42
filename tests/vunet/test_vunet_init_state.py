"""The VUNet's data-dependent initialisation is state: saved, loaded, and never run twice."""

from dataclasses import replace

import torch

from esser_lab.data.modules import FiguresDataModule
from esser_lab.training import load_checkpoint, save_checkpoint
from esser_lab.vunet import VUNet, VUNetConfig, figure_boxes
from esser_lab.vunet.layers import WNConv2d
from esser_lab.vunet.training import LitVUNet

CONFIG = replace(VUNetConfig.tiny(), batch_size=4)


def batch(seed: int) -> dict:
    module = FiguresDataModule(16, 4, num_train=4, num_val=1, seed=0)
    return module._generate(4, torch.Generator().manual_seed(seed))


def gains(model: VUNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith((".g", ".b"))}


def test_init_runs_once_and_a_loaded_model_keeps_its_gains(tmp_path):
    torch.manual_seed(0)
    system = LitVUNet(CONFIG, figure_boxes())
    assert not system.initialised
    with torch.no_grad():
        system.training_step(batch(1), 0)  # the first batch initialises every layer
    assert system.initialised
    flags = [m.initialised for m in system.model.modules() if isinstance(m, WNConv2d)]
    assert len(flags) > 10 and all(int(f) == 1 for f in flags)
    initial = gains(system.model)
    with torch.no_grad():
        system.training_step(batch(2), 1)  # another batch: no second initialisation
    assert all(torch.equal(v, gains(system.model)[k]) for k, v in initial.items())

    path = save_checkpoint(system.model, tmp_path / "vunet.safetensors")
    torch.manual_seed(1)
    fresh = LitVUNet(CONFIG, figure_boxes())
    load_checkpoint(fresh.model, path)
    assert fresh.initialised
    with torch.no_grad():
        fresh.training_step(batch(3), 0)  # a loaded model's first step does not re-initialise
    after = gains(fresh.model)
    assert all(torch.equal(v, after[k]) for k, v in initial.items())

    # the check can fail: a fresh model's first step does overwrite the gains
    torch.manual_seed(1)
    other = LitVUNet(CONFIG, figure_boxes())
    other.model.load_state_dict(
        {k: v for k, v in system.model.state_dict().items() if not k.endswith("initialised")},
        strict=False,
    )
    with torch.no_grad():
        other.training_step(batch(3), 0)
    assert any(not torch.equal(v, gains(other.model)[k]) for k, v in initial.items())
