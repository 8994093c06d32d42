"""Chapter 12's shipped tiny VQGAN (esser_lab.geofree.first_stage)."""

import torch

from esser_lab.data import scenes
from esser_lab.geofree.claims import psnr
from esser_lab.geofree.first_stage import WEIGHTS, load_first_stage, train_first_stage


def test_shipped_weights_are_small_load_strictly_and_reconstruct():
    assert WEIGHTS.stat().st_size <= 5_000_000
    model = load_first_stage()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    pairs = scenes.sample_pairs(64, 16, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        reconstruction, q = model(pairs.target)
    assert q.indices.shape == (64, 4, 4)
    assert psnr(reconstruction, pairs.target) > 17.0  # 19.3 dB measured on 1,000 pairs


def test_training_is_deterministic_for_a_seed():
    a = train_first_stage(steps=2, batch_size=4)
    b = train_first_stage(steps=2, batch_size=4)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_a_missing_file_says_how_to_make_it(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="python -m esser_lab.geofree.first_stage"):
        load_first_stage(tmp_path / "absent.safetensors")
