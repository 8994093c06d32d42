"""Released GeoFree checkpoint layouts (esser_lab.geofree.checkpoint), on tiny files written here
in the official layout: a Lightning dict whose ``state_dict`` holds ``transformer.*`` and
``emb_stage_model.fc.weight`` (stripped releases), plus ``first_stage_model.*``,
``cond_stage_model.*`` (the same VQGAN), ``depth_stage_model.*`` and ``_midas.*`` (unstripped)."""

import pytest
import torch

from esser_lab.geofree.checkpoint import depth_stage_config, load_geofree
from esser_lab.geofree.model import GeoFreeConfig, first_stage_config
from esser_lab.taming.model import VQModel
from esser_lab.weights import WeightsError


def official_file(
    make_model, tmp_path, stripped: bool, extra: dict | None = None, drop: str | None = None
):
    source = make_model(seed=3)
    state = {f"transformer.{k}": v for k, v in source.transformer.state_dict().items()}
    state["emb_stage_model.fc.weight"] = source.emb_stage_model.fc.weight.detach().clone()
    if not stripped:
        first = source.first_stage_model.state_dict()
        state.update({f"first_stage_model.{k}": v for k, v in first.items()})
        state.update({f"cond_stage_model.{k}": v.clone() for k, v in first.items()})
        torch.manual_seed(4)
        depth = VQModel(depth_stage_config(first_stage_config("tiny"))).state_dict()
        state.update({f"depth_stage_model.{k}": v for k, v in depth.items()})
        state["_midas.model.pretrained.layer1.0.weight"] = torch.zeros(2, 2)
    state.update(extra or {})
    if drop:
        state.pop(drop)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "global_step": 7, "epoch": 1}, path)
    return path, source


def test_stripped_release_loads_strictly_with_a_separate_first_stage(make_model, tmp_path):
    path, source = official_file(make_model, tmp_path, stripped=True)
    first = make_model(seed=3).first_stage_model  # the VQGAN from its own file
    loaded = load_geofree(path, GeoFreeConfig.tiny(), first).model
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with pytest.raises(WeightsError, match="pass the VQGAN loaded from its own file"):
        load_geofree(path, GeoFreeConfig.tiny())


def test_unstripped_file_loads_every_stage_and_drops_midas(make_model, tmp_path):
    path, source = official_file(make_model, tmp_path, stripped=False)
    torch.manual_seed(9)
    other = VQModel(first_stage_config("tiny"))  # different weights, overwritten by the file
    result = load_geofree(path, GeoFreeConfig.tiny(), other)
    for k, v in source.first_stage_model.state_dict().items():
        assert torch.equal(result.model.first_stage_model.state_dict()[k], v), k
    assert result.depth_stage is not None and result.depth_stage.config.in_channels == 1
    assert result.depth_stage.config.n_embed == 1024


def test_missing_and_foreign_keys_are_named(make_model, tmp_path):
    path, _ = official_file(make_model, tmp_path, stripped=True, drop="transformer.ln_f.weight")
    first = make_model().first_stage_model
    with pytest.raises(WeightsError, match="ln_f.weight"):
        load_geofree(path, GeoFreeConfig.tiny(), first)
    path, _ = official_file(
        make_model, tmp_path, stripped=True, extra={"merge_conv.weight": torch.zeros(1)}
    )
    with pytest.raises(WeightsError, match="impl_nodepth variant only"):
        load_geofree(path, GeoFreeConfig.tiny(), first)
    path, _ = official_file(
        make_model, tmp_path, stripped=True, extra={"model.diffusion_model.x": torch.zeros(1)}
    )
    with pytest.raises(WeightsError, match="outside the GeoFree layout"):
        load_geofree(path, GeoFreeConfig.tiny(), first)


def test_a_checkpoint_of_another_size_is_refused(make_model, tmp_path):
    path, _ = official_file(make_model, tmp_path, stripped=True)
    with pytest.raises(WeightsError):
        load_geofree(path, GeoFreeConfig.small(), VQModel(first_stage_config("small")))
