"""The shipped teacher: loads strictly into its config, frozen, and is the recorded file."""

from __future__ import annotations

import pytest
import torch

from esser_lab.ladd.teacher import SHA256, TEACHER_CONFIG, WEIGHTS, file_sha256, load_teacher
from esser_lab.sd3.model import MMDiT
from esser_lab.weights import WeightsError, save_weights


def test_the_shipped_teacher_loads_strictly_and_matches_its_hash():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 5e6
    assert file_sha256(WEIGHTS) == SHA256
    teacher = load_teacher()
    assert teacher.config == TEACHER_CONFIG
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = {"context": torch.zeros(2, 12, 32), "pooled": torch.zeros(2, 32)}
    v = teacher(x, torch.full((2,), 0.5), cond)
    assert v.shape == x.shape and v.abs().sum() > 0  # trained: not adaLN-Zero's zero output


def test_a_broken_or_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m esser_lab.ladd.teacher"):
        load_teacher(tmp_path / "missing.safetensors")
    path = save_weights(MMDiT(TEACHER_CONFIG), tmp_path / "bare.safetensors")
    with pytest.raises(ValueError, match="config metadata"):
        load_teacher(path)
    state = dict(load_teacher().state_dict())
    del state["final_layer.linear.weight"]
    import json

    from esser_lab.ladd.teacher import METADATA_KEY
    from esser_lab.weights import read_metadata

    metadata = {METADATA_KEY: read_metadata(WEIGHTS)[METADATA_KEY]}
    assert "config" in json.loads(metadata[METADATA_KEY])
    broken = save_weights(state, tmp_path / "broken.safetensors", metadata)
    with pytest.raises(WeightsError, match="final_layer.linear.weight"):
        load_teacher(broken)
