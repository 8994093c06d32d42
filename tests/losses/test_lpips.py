"""LPIPS on weight files the test writes: official key names, loading, distance properties."""

import pytest
import torch

from esser_lab.losses.lpips import LPIPS, VGG16_SLICE_ENDS


def _write_weights(tmp_path, seed: int = 0):
    """A torchvision-layout VGG16 file (``features.N.*``, a classifier) and an LPIPS ``vgg.pth``."""
    from torchvision.models.vgg import cfgs, make_layers

    g = torch.Generator().manual_seed(seed)
    features = make_layers(cfgs["D"])
    vgg = {
        f"features.{k}": torch.randn(v.shape, generator=g) * 0.05
        for k, v in features.state_dict().items()
    }
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
        for k, c in enumerate((64, 128, 256, 512, 512))
    }
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    return vgg, lin


def test_official_key_layout():
    keys = LPIPS(pretrained=False).state_dict()
    assert keys["scaling_layer.shift"].shape == (1, 3, 1, 1)
    assert torch.allclose(keys["scaling_layer.scale"].flatten(), torch.tensor([0.458, 0.448, 0.45]))
    convs = sorted(int(k.split(".")[2]) for k in keys if k.startswith("net.") and "weight" in k)
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # notes: slice1.0 … slice5.28
    assert "net.slice1.0.weight" in keys and "net.slice5.28.bias" in keys
    assert keys["lin4.model.1.weight"].shape == (1, 512, 1, 1)
    assert len(keys) == 2 + 26 + 5 and VGG16_SLICE_ENDS[-1] == 30


def test_loads_files_and_measures_a_distance(tmp_path):
    vgg, lin = _write_weights(tmp_path)
    lpips = LPIPS(tmp_path / "vgg16.pth", tmp_path / "vgg.pth")
    assert torch.equal(lpips.state_dict()["net.slice3.12.weight"], vgg["features.12.weight"])
    assert torch.equal(lpips.lin2.model[1].weight, lin["lin2.model.1.weight"])
    assert not any(p.requires_grad for p in lpips.parameters())
    lpips.train()  # a fixed metric: stays in eval mode (dropout off)
    assert not lpips.training and not lpips.lin0.model[0].training
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = x + 0.3 * torch.randn(x.shape, generator=g)
    same = lpips(x, x)
    assert same.shape == (2, 1, 1, 1) and torch.allclose(same, torch.zeros_like(same))
    d = lpips(x, y)
    assert (d > 0).all() and torch.allclose(d, lpips(y, x), atol=1e-6)  # symmetric
    y.requires_grad_(True)
    lpips(x, y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0  # gradients reach the image


def test_missing_and_wrong_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data/checkpoints/lpips/vgg16\.pth"):
        LPIPS()
    _write_weights(tmp_path)
    with pytest.raises(FileNotFoundError, match="vgg.pth"):
        LPIPS(tmp_path / "vgg16.pth", tmp_path / "nothing" / "vgg.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "half.pth")
    with pytest.raises(ValueError, match=r"missing \['lin1"):
        LPIPS(tmp_path / "vgg16.pth", tmp_path / "half.pth")
    with pytest.raises(ValueError, match=r"\(b, 3, h, w\)"):
        LPIPS(pretrained=False)(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
