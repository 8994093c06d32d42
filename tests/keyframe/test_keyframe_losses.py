"""LaMa's losses (the paper's objective): the terms by hand, the discriminator's layout and
shapes, a discriminator loss that falls."""

import pytest
import torch
import torch.nn.functional as F

from esser_lab.keyframe.losses import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LamaNLayerDiscriminator,
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    feature_matching_loss,
    lama_generator_loss,
    masked_l1_loss,
    r1_penalty,
    resnet_perceptual_loss,
)
from esser_lab.keyframe.method import PAPER_LOSS


def _softplus(t: float) -> float:
    return float(torch.log1p(torch.exp(torch.tensor(t, dtype=torch.float64))))


def test_r1_penalty_by_hand():
    # D(x) = Σ w·x² per image: ∇ₓ = 2·w·x, so R1 = mean_b Σ (2 w x_b)²
    w = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, -1.0], [1.0, 0.5]]]])
    real = x.clone().requires_grad_(True)
    logits = (w * real**2).sum(dim=(1, 2, 3))
    penalty = r1_penalty(logits, real)
    by_hand = ((2 * w * x) ** 2).sum(dim=(1, 2, 3)).mean()
    assert float(penalty.detach()) == pytest.approx(float(by_hand))
    # it keeps the graph: its gradient in w is ∂/∂w mean_b Σ 4 w² x² = mean_b 8 w x²
    w_param = w.clone().requires_grad_(True)
    real = x.clone().requires_grad_(True)
    r1_penalty((w_param * real**2).sum(dim=(1, 2, 3)), real).backward()
    assert torch.allclose(w_param.grad, (8 * w * x**2).mean(0, keepdim=True))
    with torch.no_grad():
        assert float(r1_penalty(logits.detach(), real)) == 0.0  # as LaMa's make_r1_gp


def test_r1_penalty_against_autograd_on_a_discriminator():
    torch.manual_seed(0)
    disc = LamaNLayerDiscriminator(3, 4, 2).eval()
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    logits, _ = disc(x)
    penalty = r1_penalty(logits, x)
    rows = []  # each image's own gradient, one image at a time (eval: no batch coupling)
    for b in range(3):
        xb = x.detach()[b : b + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(disc(xb)[0].sum(), xb)
        rows.append(g.pow(2).sum())
    assert float(penalty.detach()) == pytest.approx(float(torch.stack(rows).mean()), rel=1e-5)


def test_adversarial_losses_by_hand():
    fake_logits = torch.tensor([[[[1.0, -0.5], [0.0, 3.0]]]])
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # the top-left patch (nearest: logit (0, 0)) is the hole
    real = torch.zeros(1, 3, 4, 4, requires_grad=True)
    # each of the 4 logits is base + 0.5·Σx: ∇ₓ Σ D = 4·0.5 per element, R1 = 2²·48 = 192
    real_logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]]) + 0.5 * real.sum()
    loss, penalty = adversarial_discriminator_loss(
        real_logits, fake_logits, real, mask, gp_coef=0.001
    )
    assert float(penalty) == pytest.approx(192.0)
    real_terms = [_softplus(-v) for v in (0.5, -1.0, 2.0, 0.0)]
    fake_terms = [_softplus(1.0), _softplus(0.5), _softplus(-0.0), _softplus(-3.0)]
    by_hand = (sum(real_terms + fake_terms) + 4 * 0.001 * 192) / 4
    assert float(loss.detach()) == pytest.approx(by_hand, rel=1e-6)
    gen = adversarial_generator_loss(fake_logits)  # every patch: softplus(−D(x̂))
    assert float(gen) == pytest.approx(sum(_softplus(-v) for v in (1.0, -0.5, 0.0, 3.0)) / 4)
    with pytest.raises(ValueError, match="must match"):
        adversarial_discriminator_loss(real_logits, fake_logits[..., :1], real, mask, gp_coef=0)


def test_feature_matching_and_masked_l1_by_hand():
    fake = [torch.tensor([[1.0, 2.0]]), torch.tensor([[[0.0, 0.0, 3.0]]])]
    real = [torch.tensor([[0.0, 0.0]]), torch.tensor([[[1.0, 0.0, 0.0]]])]
    # layer 1: (1 + 4) / 2 = 2.5; layer 2: (1 + 0 + 9) / 3 = 10/3; mean of the two
    assert float(feature_matching_loss(fake, real)) == pytest.approx((2.5 + 10 / 3) / 2)
    with pytest.raises(ValueError, match="as many"):
        feature_matching_loss(fake, real[:1])
    prediction = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    image = torch.zeros(1, 2, 1, 2)
    mask = torch.tensor([[[[1.0, 0.0]]]])  # the first pixel is the hole
    # weights: hole 0, known 10; |errors| 1, 2, 0, 0 → (0·1 + 10·2 + 0 + 0) / 4
    assert float(masked_l1_loss(prediction, image, mask, 10.0, 0.0)) == pytest.approx(5.0)


def test_resnet_perceptual_loss_normalises_and_sums():
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    seen = []

    def encoder(x):
        seen.append(x)
        return [x, 2 * x[:, :1]]

    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    value = resnet_perceptual_loss(encoder, a, b)
    d = (a - b) / std
    assert torch.allclose(seen[0], (a - mean) / std)
    assert float(value) == pytest.approx(float(d.pow(2).mean() + (2 * d[:, :1]).pow(2).mean()))


def test_discriminator_layout_and_shapes():
    disc = LamaNLayerDiscriminator()  # the paper's: input 3, ndf 64, 4 layers
    # the official layout: model0 = [conv, LeakyReLU], model1..4 = [conv, BatchNorm, LeakyReLU],
    # model5 = [conv] (keys discriminator.model{i}.{j}.* of a released checkpoint)
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = ["model0.0.weight", "model0.0.bias"]
    for i in range(1, 5):
        expected += [f"model{i}.0.weight", f"model{i}.0.bias"] + [f"model{i}.1.{k}" for k in norm]
    expected += ["model5.0.weight", "model5.0.bias"]
    assert list(disc.state_dict()) == expected
    assert disc.model0[0].weight.shape == (64, 3, 4, 4) and disc.model0[0].bias is not None
    widths = [disc.get_submodule(f"model{i}")[0].out_channels for i in range(6)]
    assert widths == [64, 128, 256, 512, 512, 1]
    assert isinstance(disc.model4[1], torch.nn.BatchNorm2d) and disc.model4[0].stride == (1, 1)
    x = torch.rand(2, 3, 64, 64)
    logits, features = disc(x)
    side = disc.output_size(64)
    assert side == 7 and logits.shape == (2, 1, side, side)  # 64 → 33 → 17 → 9 → 5 → 6 → 7
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in features] == [33, 17, 9, 5, 6]


def test_generator_loss_weights_and_errors():
    torch.manual_seed(0)
    disc = LamaNLayerDiscriminator(3, 4, 2)
    prediction, image = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:10, 4:10] = 1

    def encoder(x):
        return [F.avg_pool2d(x, 2)]

    with torch.no_grad():
        terms = lama_generator_loss(prediction, image, mask, disc, encoder, PAPER_LOSS)
    expected = terms.l1 + 10 * terms.adversarial + 100 * terms.feature_matching
    assert float(terms.loss) == pytest.approx(float(expected + 30 * terms.perceptual), rel=1e-6)
    with pytest.raises(ValueError, match="perceptual encoder"):
        lama_generator_loss(prediction, image, mask, disc, None, PAPER_LOSS)
    no_pl = {**PAPER_LOSS, "resnet_perceptual_weight": 0.0}
    assert float(lama_generator_loss(prediction, image, mask, disc, None, no_pl).perceptual) == 0


def test_discriminator_loss_falls_on_fixed_real_and_fake():
    torch.manual_seed(0)
    disc = LamaNLayerDiscriminator(3, 8, 2)
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-3)
    real_images = torch.rand(4, 3, 16, 16)
    fake_images = torch.rand(4, 3, 16, 16).pow(3)  # darker: separable
    mask = torch.ones(4, 1, 16, 16)
    losses = []
    for _ in range(30):
        real = real_images.clone().requires_grad_(True)
        loss, _ = adversarial_discriminator_loss(
            disc(real)[0], disc(fake_images)[0], real, mask, gp_coef=0.001
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    assert losses[-1] < 0.7 * losses[0]  # from 2·log 2 (chance)
