"""The ADE20k ResNet-50 (dilated) of the perceptual loss: its architecture against torchvision's
ResNet-50, the loader on a file written in the release's layout, the stand-in, the errors."""

import pytest
import torch

from esser_lab.keyframe.pretrained import (
    ADE20K_ENCODER_FILE,
    ADE20kResNet50Dilated,
    ade20k_encoder,
    default_ade20k_path,
)


@pytest.fixture(scope="module")
def stand_in():
    return ade20k_encoder("stand-in", seed=3)


def test_architecture_is_resnet50_with_a_deep_stem_and_dilations():
    from torchvision.models import resnet50

    with torch.device("meta"):
        ours = ADE20kResNet50Dilated().state_dict()
        theirs = resnet50().state_dict()
    # the stages are torchvision's ResNet-50 but for the 128-channel stem feeding layer1
    stem_fed = {
        "layer1.0.conv1.weight": (64, 128, 1, 1),
        "layer1.0.downsample.0.weight": (256, 128, 1, 1),
    }
    stages = [k for k in theirs if k.startswith("layer")]
    assert stages == [k for k in ours if k.startswith("layer")]
    for key in stages:
        assert tuple(ours[key].shape) == stem_fed.get(key, tuple(theirs[key].shape)), key
    assert [tuple(ours[f"conv{i}.weight"].shape) for i in (1, 2, 3)] == [
        (64, 3, 3, 3),
        (64, 64, 3, 3),
        (128, 64, 3, 3),
    ]
    assert not any(k.startswith("fc.") for k in ours)
    net = ADE20kResNet50Dilated()
    conv2 = {n: m for n, m in net.named_modules() if n.endswith("conv2") and "layer" in n}
    assert (conv2["layer2.0.conv2"].stride, conv2["layer2.0.conv2"].dilation) == ((2, 2), (1, 1))
    assert (conv2["layer3.0.conv2"].stride, conv2["layer3.0.conv2"].dilation) == ((1, 1), (1, 1))
    assert conv2["layer3.5.conv2"].dilation == (2, 2) and conv2["layer4.0.conv2"].dilation == (2, 2)
    assert conv2["layer4.2.conv2"].dilation == conv2["layer4.2.conv2"].padding == (4, 4)
    assert net.layer4[0].downsample[0].stride == (1, 1)


def test_features_shapes_and_frozen_stand_in(stand_in):
    features = stand_in(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [
        (2, 256, 8, 8),
        (2, 512, 4, 4),
        (2, 1024, 4, 4),
        (2, 2048, 4, 4),
    ]  # output stride 8: the last two stages dilated, not strided
    assert all(torch.isfinite(f).all() and f.abs().max() < 1e3 for f in features)
    assert not any(p.requires_grad for p in stand_in.parameters())
    stand_in.train()
    assert not stand_in.training  # BatchNorm keeps its statistics
    again = ade20k_encoder("stand-in", seed=3)
    assert all(
        torch.equal(a, b)
        for a, b in zip(stand_in.state_dict().values(), again.state_dict().values(), strict=True)
    )
    other = ade20k_encoder("stand-in", seed=4)
    assert not torch.equal(other.conv1.weight, stand_in.conv1.weight)


def test_loader_reads_a_file_in_the_release_layout(stand_in, tmp_path):
    state = {k: v.clone() for k, v in stand_in.state_dict().items()}
    # the release was written by an old torch: no BatchNorm step counters
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["bn1.running_mean"] = torch.linspace(-1, 1, 64)  # statistics a stand-in does not have
    path = tmp_path / "lama" / ADE20K_ENCODER_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = ade20k_encoder("published", path)
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert (
        default_ade20k_path()
        .as_posix()
        .endswith("data/checkpoints/keyframe/" + ADE20K_ENCODER_FILE)
    )


def test_loader_errors(stand_in, tmp_path):
    with pytest.raises(
        FileNotFoundError, match="encoder_epoch_20.pth.*not downloaded|not downloaded"
    ):
        ade20k_encoder("published", tmp_path / "absent.pth")
    from torchvision.models import resnet18

    wrong = tmp_path / "torchvision.pth"
    torch.save(resnet18().state_dict(), wrong)
    with pytest.raises(ValueError, match="ADE20k ResNet-50"):
        ade20k_encoder("published", wrong)
    bad = {k: v for k, v in stand_in.state_dict().items()}
    bad["conv1.weight"] = torch.zeros(64, 3, 7, 7)  # torchvision's stem
    shape = tmp_path / "shape.pth"
    torch.save(bad, shape)
    with pytest.raises(ValueError, match="conv1.weight has shape"):
        ade20k_encoder("published", shape)
    with pytest.raises(ValueError, match="pretrained"):
        ade20k_encoder("imagenet")
