"""Classifier-free guidance as a denoiser wrapper, and label dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esser_lab.diffusion import DiscreteSchedule, classifier_free_guidance, ddim_sample, drop_labels

NULL = 10  # the null class of a 10-class model (cin256-v2 style: n_classes + 1 embeddings)


class ClassModel(nn.Module):
    """A tiny conditional ε-model: an MLP of (x, t, class embedding)."""

    def __init__(self, classes=11, dim=3):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(classes, 8)
        self.net = nn.Sequential(nn.Linear(dim + 1 + 8, 32), nn.SiLU(), nn.Linear(32, dim))
        self.calls = []

    def forward(self, x, t, cond):
        self.calls.append((x.shape[0], cond.clone()))
        return self.net(torch.cat((x, t[:, None], self.embed(cond)), dim=1))


class ContextModel(nn.Module):
    """Conditioned on an embedding sequence (b, l, d), like cross-attention."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Linear(4 + 6, 4)

    def forward(self, x, t, context):
        return self.net(torch.cat((x, context.mean(dim=1)), dim=1)) * t[:, None]


def _inputs(b=5, dim=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, dim, generator=g), torch.rand(b, generator=g)


@torch.no_grad()
def test_scale_one_is_the_conditional_model_in_one_call():
    model = ClassModel()
    x, t = _inputs()
    labels = torch.tensor([0, 3, 3, 9, 1])
    guided = classifier_free_guidance(model, 1.0, NULL)
    out = guided(x, t, labels)
    assert len(model.calls) == 1
    batch, cond = model.calls[0]
    assert batch == 10 and torch.equal(cond, torch.tensor([NULL] * 5 + labels.tolist()))
    torch.testing.assert_close(out, model(x, t, labels), atol=1e-6, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("scale", [0.0, 1.5, 4.0])
def test_guidance_extrapolates(scale):
    model = ClassModel()
    x, t = _inputs()
    labels = torch.tensor([2, 2, 7, 0, 5])
    conditional = model(x, t, labels)
    unconditional = model(x, t, torch.full_like(labels, NULL))
    got = classifier_free_guidance(model, scale, torch.tensor(NULL))(x, t, labels)
    expected = unconditional + scale * (conditional - unconditional)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_guidance_with_embedding_conditions():
    model = ContextModel()
    x, t = _inputs(dim=4)
    context = torch.randn(5, 7, 6)
    empty = torch.zeros(1, 7, 6)  # one null row (the empty prompt), repeated for the batch
    got = classifier_free_guidance(model, 1.0, empty)(x, t, context)
    torch.testing.assert_close(got, model(x, t, context), atol=1e-6, rtol=0)
    got = classifier_free_guidance(model, 3.0, empty.expand(5, 7, 6))(x, t, context)
    u, c = model(x, t, empty.expand(5, 7, 6)), model(x, t, context)
    torch.testing.assert_close(got, u + 3.0 * (c - u), atol=1e-5, rtol=0)


@torch.no_grad()
def test_guided_model_drives_a_sampler():
    model = ClassModel(dim=2)
    guided = classifier_free_guidance(model, 2.0, NULL)
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    out = ddim_sample(
        guided, noise, DiscreteSchedule.ldm(), steps=10, cond=torch.tensor([1, 2, 3, 4])
    )
    assert out.shape == (4, 2) and len(model.calls) == 10


def test_guidance_errors():
    model = ClassModel()
    x, t = _inputs()
    guided = classifier_free_guidance(model, 2.0, NULL)
    with pytest.raises(TypeError, match="cond as a tensor"):
        guided(x, t, None)
    with pytest.raises(ValueError, match=r"batch of x \(5\)"):
        guided(x, t, torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="integer class labels"):
        classifier_free_guidance(model, 2.0, 0)(x, t, torch.zeros(5, 7, 6))
    with pytest.raises(ValueError, match=r"cond's shape \(5, 7, 6\)"):
        classifier_free_guidance(model, 2.0, torch.zeros(1, 3, 6))(x, t, torch.zeros(5, 7, 6))
    with pytest.raises(TypeError, match="scale must be a number"):
        classifier_free_guidance(model, "7.5", NULL)


def test_drop_labels():
    labels = torch.arange(10_000) % 10
    g = torch.Generator().manual_seed(0)
    assert torch.equal(drop_labels(labels, 0.0, NULL, g), labels)
    assert bool((drop_labels(labels, 1.0, NULL, g) == NULL).all())
    dropped = drop_labels(labels, 0.1, NULL, torch.Generator().manual_seed(1))
    fraction = float((dropped == NULL).float().mean())
    assert 0.09 < fraction < 0.11
    kept = dropped != NULL
    assert torch.equal(dropped[kept], labels[kept])
    assert torch.equal(dropped, drop_labels(labels, 0.1, NULL, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        drop_labels(labels, 1.5, NULL)
    with pytest.raises(TypeError, match=r"integer tensor \(b,\)"):
        drop_labels(labels.float(), 0.1, NULL)
