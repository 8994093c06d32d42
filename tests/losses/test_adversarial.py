"""PatchGAN layout and initialisation, GAN losses, disc_start and the adaptive weight λ."""

import pytest
import torch
from torch import nn

from esser_lab.losses.adversarial import (
    NLayerDiscriminator,
    adaptive_weight,
    adopt_weight,
    hinge_d_loss,
    vanilla_d_loss,
)


def test_official_key_layout_and_shapes():
    d3 = NLayerDiscriminator().state_dict()  # the f16-1024 release: n_layers 3
    weights = sorted(int(k.split(".")[1]) for k in d3 if k.endswith("weight"))
    assert weights == [0, 2, 3, 5, 6, 8, 9, 11]
    assert "main.0.bias" in d3 and "main.2.bias" not in d3 and "main.11.bias" in d3
    assert "main.9.running_var" in d3 and "main.9.num_batches_tracked" in d3
    assert d3["main.8.weight"].shape == (512, 256, 4, 4) and d3["main.11.weight"].shape == (
        1,
        512,
        4,
        4,
    )
    d2 = NLayerDiscriminator(n_layers=2).state_dict()  # the f16-16384 release
    assert sorted({int(k.split(".")[1]) for k in d2}) == [0, 2, 3, 5, 6, 8]
    assert d2["main.8.weight"].shape == (1, 256, 4, 4)
    tiny = NLayerDiscriminator(ndf=16, n_layers=2)
    assert tiny(torch.zeros(2, 3, 16, 16)).shape == (2, 1, 2, 2)
    assert NLayerDiscriminator()(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="side ≥ 24"):
        NLayerDiscriminator()(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(batch, 3, h, w\)"):
        tiny(torch.zeros(1, 1, 16, 16))


def test_initialisation_is_the_official_one():
    torch.manual_seed(0)
    d = NLayerDiscriminator()
    conv, norm = d.main[5].weight.detach(), d.main[6].requires_grad_(False)
    assert abs(float(conv.std()) - 0.02) < 2e-3 and abs(float(conv.mean())) < 1e-3
    assert abs(float(norm.weight.mean()) - 1.0) < 5e-3 and float(norm.bias.abs().max()) == 0.0


def test_gan_losses_and_adopt_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: ½(mean(0, 0.5) + mean(0, 1)) = ½(0.25 + 0.5)
    assert torch.isclose(hinge_d_loss(real, fake), torch.tensor(0.375))
    softplus = torch.nn.functional.softplus
    expected = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    assert torch.isclose(vanilla_d_loss(real, fake), expected)
    assert adopt_weight(0.8, 9, threshold=10) == 0.0 and adopt_weight(0.8, 10, threshold=10) == 0.8


def test_adaptive_weight_against_a_hand_computation():
    # toy last layer w; nll = mean((w·a)²), g = sum(w·b): ∇nll = 2(w·a)·a/n, ∇g = b
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.5])
    nll = (w * a).pow(2).mean()
    g = (w * b).sum()
    grad_nll = 2 * (w * a) * a / 2  # (9, 32)
    expected = grad_nll.norm() / (b.norm() + 1e-4) * 0.8
    lam = adaptive_weight(nll, g, w, disc_weight=0.8)
    assert torch.isclose(lam, expected.detach()) and not lam.requires_grad
    huge = adaptive_weight((w * a).pow(2).mean(), (w * 0).sum(), w)  # ∇g = 0 → clamped at 1e4
    assert float(huge) == pytest.approx(1e4)
    (nll + lam * g).backward()  # the graphs were retained for the step's backward
    assert w.grad is not None
    with pytest.raises(ValueError, match="requires grad"):
        adaptive_weight(nll, g, torch.ones(2), 1.0)
