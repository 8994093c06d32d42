"""KL terms against closed forms; the VGG19 feature loss on a weights file the test writes."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from esser_lab.losses.kl import gaussian_kl, unit_variance_kl
from esser_lab.losses.perceptual import VGG19FeatureLoss


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, mp, lq, lp = (torch.randn(4, 3, 2, 2, generator=g) for _ in range(4))
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp()))
    assert torch.allclose(gaussian_kl(mq, lq, mp, lp), expected.flatten(1).sum(1), atol=1e-5)


def test_unit_variance_kl_is_the_closed_form():
    g = torch.Generator().manual_seed(1)
    q = [torch.randn(5, 4, 2, 2, generator=g), torch.randn(5, 4, 4, 4, generator=g)]
    p = [torch.randn(5, 4, 2, 2, generator=g), torch.randn(5, 4, 4, 4, generator=g)]
    expected = sum(
        kl_divergence(Normal(a, 1.0), Normal(b, 1.0)).flatten(1).sum(1)
        for a, b in zip(q, p, strict=True)
    )
    assert torch.allclose(unit_variance_kl(q, p), expected.mean(), atol=1e-5)
    zeros = [torch.zeros(1, 2, 2, 2)]
    assert torch.allclose(gaussian_kl(zeros[0], zeros[0], zeros[0], zeros[0]), torch.zeros(1))
    with pytest.raises(ValueError, match="differ"):
        unit_variance_kl([torch.zeros(1, 2)], [torch.zeros(1, 3)])
    with pytest.raises(ValueError, match="scales"):
        unit_variance_kl(q, p[:1])


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


def test_vgg_feature_loss(vgg_file):
    loss = VGG19FeatureLoss(vgg_file, layers=("input", "block1_conv2", "block2_conv2"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, x.flip(-1)).item() > 0.0
    assert not any(p.requires_grad for p in loss.parameters())
    with pytest.raises(ValueError, match="expected two"):
        loss(x, x[:, :1])


def test_vgg_feature_loss_errors(vgg_file, tmp_path):
    with pytest.raises(ValueError, match="never downloads"):  # a WeightsError
        VGG19FeatureLoss(tmp_path / "nothing.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read"):
        VGG19FeatureLoss(broken)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        VGG19FeatureLoss(vgg_file, layers=("block9_conv1",))
    empty = tmp_path / "empty.pth"
    torch.save({"classifier.0.weight": torch.zeros(1)}, empty)
    with pytest.raises(ValueError, match="missing VGG19"):
        VGG19FeatureLoss(empty)
