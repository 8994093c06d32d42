"""Classifier-free guidance with a dict cond (SD3's {"context", "pooled"}) in one batched call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esser_lab.diffusion import classifier_free_guidance
from esser_lab.diffusion.formulations import formulation


class DictModel(nn.Module):
    """A tiny velocity model of (x, t, mean context token, pooled vector)."""

    def __init__(self, dim=3, context_dim=6, pooled_dim=4):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(dim + 1 + context_dim + pooled_dim, dim)
        self.calls = []

    def forward(self, x, t, cond):
        self.calls.append({key: value.clone() for key, value in cond.items()})
        features = (x, t[:, None], cond["context"].mean(dim=1), cond["pooled"])
        return self.net(torch.cat(features, dim=1))


def _inputs(b=5):
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(b, 3, generator=g), torch.rand(b, generator=g)
    cond = {"context": torch.randn(b, 7, 6, generator=g), "pooled": torch.randn(b, 4, generator=g)}
    null = {"context": torch.zeros(1, 7, 6), "pooled": torch.full((1, 4), 0.5)}
    return x, t, cond, null


@torch.no_grad()
def test_dict_cond_at_scale_one_is_the_conditional_model_in_one_call():
    model = DictModel()
    x, t, cond, null = _inputs()
    out = classifier_free_guidance(model, 1.0, null)(x, t, cond)
    assert len(model.calls) == 1
    seen = model.calls[0]
    assert seen["context"].shape == (10, 7, 6) and seen["pooled"].shape == (10, 4)
    assert torch.equal(seen["context"][5:], cond["context"])
    assert bool((seen["context"][:5] == 0).all()) and bool((seen["pooled"][:5] == 0.5).all())
    torch.testing.assert_close(out, model(x, t, cond), atol=1e-6, rtol=0)


@torch.no_grad()
def test_dict_cond_extrapolates_with_a_full_batch_null():
    model = DictModel()
    x, t, cond, null = _inputs()
    null = {key: value.expand(5, *value.shape[1:]) for key, value in null.items()}
    got = classifier_free_guidance(model, 3.0, null)(x, t, cond)
    u, c = model(x, t, null), model(x, t, cond)
    torch.testing.assert_close(got, u + 3.0 * (c - u), atol=1e-5, rtol=0)


@torch.no_grad()
def test_guided_dict_model_drives_the_rf_sampler():
    model = DictModel()
    _, _, cond, null = _inputs(4)
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    guided = classifier_free_guidance(model, 2.0, null)
    out = formulation("rf/lognorm(0.00,1.00)").sample(guided, noise, 6, cond=cond, shift=3.0)
    assert out.shape == (4, 3) and len(model.calls) == 6


def test_dict_cond_errors_name_the_key():
    model = DictModel()
    x, t, cond, null = _inputs()
    with pytest.raises(ValueError, match="same keys"):
        classifier_free_guidance(model, 2.0, {"context": null["context"]})(x, t, cond)
    with pytest.raises(ValueError, match="same keys"):
        classifier_free_guidance(model, 2.0, torch.zeros(1, 4))(x, t, cond)
    bad = {"context": torch.zeros(1, 3, 6), "pooled": null["pooled"]}
    with pytest.raises(ValueError, match=r"null_cond\['context'\]"):
        classifier_free_guidance(model, 2.0, bad)(x, t, cond)
    with pytest.raises(ValueError, match=r"cond\['pooled'\]"):
        classifier_free_guidance(model, 2.0, null)(x, t, {**cond, "pooled": torch.zeros(2, 4)})
    with pytest.raises(TypeError, match="non-empty dict"):
        classifier_free_guidance(model, 2.0, null)(x, t, {})
