"""esser_lab.pretrained: stand-ins are seeded, published weights come from a file or a fetcher.

Nothing downloads here: the fetchers are replaced by fakes (and the network is blocked anyway).
"""

import hashlib

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from esser_lab import pretrained
from esser_lab.losses.lpips import LPIPS


def _vgg_keys(config: str) -> set[str]:
    return {f"features.{k}" for k in make_layers(cfgs[config]).state_dict()}


def _fake_vgg16(seed: int = 1) -> dict[str, torch.Tensor]:
    """torchvision's VGG16 layout (the trunk, plus a classifier key the loader must drop)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        f"features.{k}": torch.randn(v.shape, generator=g)
        for k, v in make_layers(cfgs["D"]).state_dict().items()
    }
    state["classifier.0.weight"] = torch.zeros(2, 2)
    return state


def _fake_lin(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
        for k, c in enumerate(pretrained.LPIPS_CHANNELS)
    }


@pytest.mark.parametrize(
    ("fetch", "config"), [("vgg16_state_dict", "D"), ("vgg19_state_dict", "E")]
)
def test_stand_in_vgg_is_seeded_with_torchvisions_keys(fetch, config):
    state_before = torch.random.get_rng_state()
    a = getattr(pretrained, fetch)("stand-in", seed=0)
    b = getattr(pretrained, fetch)("stand-in", seed=0)
    c = getattr(pretrained, fetch)("stand-in", seed=1)
    assert torch.equal(torch.random.get_rng_state(), state_before)  # global RNG untouched
    assert set(a) == _vgg_keys(config)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])
    assert a["features.0.weight"].std() > 0 and torch.all(a["features.0.bias"] == 0)


def test_stand_in_lpips_is_seeded_and_non_negative():
    a = pretrained.lpips_lin_state_dict("stand-in", seed=0)
    b = pretrained.lpips_lin_state_dict("stand-in", seed=0)
    assert set(a) == set(LPIPS(pretrained=False).state_dict()) & set(_fake_lin())
    assert all(torch.equal(a[k], b[k]) and a[k].min() >= 0 for k in a)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    one, two = pretrained.lpips("stand-in"), pretrained.lpips("stand-in")
    assert torch.equal(one(x, x.flip(-1)), two(x, x.flip(-1)))
    assert one(x, x).abs().max() == 0 and (one(x, x.flip(-1)) > 0).all()
    assert not any(p.requires_grad for p in one.parameters())


def test_published_reads_the_users_files(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "checkpoint_folder", lambda: tmp_path)
    (tmp_path / "lpips").mkdir()
    vgg, lin = _fake_vgg16(), _fake_lin()
    torch.save(vgg, tmp_path / "lpips" / "vgg16.pth")
    torch.save(lin, tmp_path / "lpips" / "vgg.pth")

    def no_fetch(*args, **kwargs):
        raise AssertionError("a present file must not be fetched")

    monkeypatch.setattr(pretrained, "_fetch_torchvision", no_fetch)
    monkeypatch.setattr(pretrained, "_download", no_fetch)
    state = pretrained.vgg16_state_dict("published")
    assert set(state) == _vgg_keys("D")  # the classifier is dropped
    assert torch.equal(state["features.28.weight"], vgg["features.28.weight"])
    module = pretrained.lpips("published")
    assert torch.equal(module.state_dict()["net.slice5.28.weight"], vgg["features.28.weight"])
    assert torch.equal(module.lin3.model[1].weight, lin["lin3.model.1.weight"])


def test_published_fetches_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "checkpoint_folder", lambda: tmp_path)
    fetched, downloads = [], []
    fake_vgg = _fake_vgg16(seed=2)

    def fake_fetch(name):
        fetched.append(name)
        return fake_vgg

    payload = tmp_path / "payload.pth"
    torch.save(_fake_lin(seed=3), payload)
    md5 = hashlib.md5(payload.read_bytes()).hexdigest()

    def fake_download(url, destination, progress=True):
        downloads.append(url)
        with open(destination, "wb") as handle:
            handle.write(payload.read_bytes())

    monkeypatch.setattr(pretrained, "_fetch_torchvision", fake_fetch)
    monkeypatch.setattr(pretrained.torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(pretrained, "LPIPS_LIN_MD5", md5)
    module = pretrained.lpips("published")
    assert fetched == ["vgg16"] and downloads == [pretrained.LPIPS_LIN_URL]
    assert torch.equal(module.state_dict()["net.slice1.0.weight"], fake_vgg["features.0.weight"])
    assert (tmp_path / "lpips" / "vgg.pth").is_file()  # kept: the next run reads it
    pretrained.lpips_lin_state_dict("published")
    assert len(downloads) == 1


def test_bad_checksum_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "checkpoint_folder", lambda: tmp_path)

    def corrupt_download(url, destination, progress=True):
        with open(destination, "wb") as handle:
            handle.write(b"not the weights")

    monkeypatch.setattr(pretrained.torch.hub, "download_url_to_file", corrupt_download)
    with pytest.raises(ValueError, match="checksum mismatch .* expected d507d7349b931f06"):
        pretrained.lpips_lin_state_dict("published")
    assert not any((tmp_path / "lpips").iterdir())  # nothing half-written is left


def test_wrong_layout_and_choice_are_named(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="not torchvision's vgg19 state dict"):
        pretrained.vgg19_state_dict("published", tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="'published' or 'stand-in', got 'yes'"):
        pretrained.vgg16_state_dict("yes")
    assert "STAND-IN" in pretrained.describe("stand-in", "LPIPS")


def test_vgg19_feature_loss_from_a_stand_in():
    loss = pretrained.vgg19_feature_loss("stand-in", layers=("input", "block1_conv2"))
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert loss(x, x).item() == 0.0 and loss(x, x.flip(-1)).item() > 0.0
