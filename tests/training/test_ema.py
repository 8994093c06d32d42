"""The EMA of latent diffusion: the warm-up decay, the official buffer names, swapping weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esser_lab.training.ema import EMA


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_buffers_are_named_like_the_official_checkpoints():
    ema = EMA(_model())
    assert set(ema.state_dict()) == {"decay", "num_updates", "0weight", "0bias", "2weight", "2bias"}


def test_update_follows_the_warm_up_formula():
    model = _model()
    ema = EMA(model, decay=0.9999)
    start = model[0].weight.detach().clone()
    for n in (1, 2, 3):
        shadow = ema._buffers["0weight"].clone()
        with torch.no_grad():
            model[0].weight.add_(1.0)
        ema.update(model)
        d = min(0.9999, (1 + n) / (10 + n))
        expected = shadow - (1 - d) * (shadow - model[0].weight)
        torch.testing.assert_close(ema._buffers["0weight"], expected)
    assert int(ema.num_updates) == 3
    assert not torch.equal(ema._buffers["0weight"], start)


def test_average_of_swaps_in_and_back():
    model = _model()
    ema = EMA(model)
    own = model[2].weight.detach().clone()
    with torch.no_grad():
        model[2].weight.add_(5.0)
    ema.update(model)
    changed = model[2].weight.detach().clone()
    with ema.average_of(model):
        torch.testing.assert_close(model[2].weight, ema._buffers["2weight"])
        assert not torch.equal(model[2].weight, changed)
    torch.testing.assert_close(model[2].weight, changed)
    assert not torch.equal(own, changed)


def test_frozen_parameters_are_not_tracked_and_bad_decay_is_refused():
    model = _model()
    model[0].requires_grad_(False)
    assert "0weight" not in EMA(model).state_dict()
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.5)
