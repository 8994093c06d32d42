"""Chapter 11's claims, readouts and full-scale inputs on small synthetic cases."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from esser_lab.cards import Card
from esser_lab.shape_texture.claims import RegimeResult, early_fraction, file_claims
from esser_lab.shape_texture.data import (
    concat_pairs,
    iter_stylized_voc_pairs,
    stylized_voc_pairs,
)
from esser_lab.shape_texture.method import StageDims
from esser_lab.shape_texture.pretrained import resnet50
from esser_lab.shape_texture.readout import (
    ReadoutScore,
    fit_readout,
    mean_iou,
    pixel_patches,
    score_readout,
)


def _dims(shape: int, texture: int, width: int = 64, stage: str = "res5") -> StageDims:
    return StageDims(stage, (0.5, 0.1, 1.0), (shape, texture, width - shape - texture))


def _file(sin=(26, 8), early=0.8, binary=0.9, accuracy_in=0.5, untrained_last=11,
          untrained_binary=0.5, untrained_semantic=0.1) -> Card:  # fmt: skip
    card = Card("11_shape_texture", "tiny", 0, 0.0, seeds_file=None)
    shortcut = RegimeResult("shortcut", [_dims(2, 5, 16, "res1"), _dims(19, 12)], accuracy_in)
    randomised = RegimeResult("randomised", [_dims(2, 5, 16, "res1"), _dims(*sin)], 0.73)
    untrained = [_dims(2, 5, 16, "res1"), _dims(untrained_last, 12)]
    readouts = {
        ("features", "binary"): ReadoutScore(binary, 0.4),
        ("features", "semantic"): ReadoutScore(0.6, 0.15),
        ("untrained", "binary"): ReadoutScore(untrained_binary, 0.4),
        ("untrained", "semantic"): ReadoutScore(untrained_semantic, 0.15),
        ("pixels", "binary"): ReadoutScore(0.8, 0.4),
        ("pixels", "semantic"): ReadoutScore(0.3, 0.15),
    }
    file_claims(card, shortcut, randomised, untrained, early, 0.25, readouts, 4)
    return card


def test_claims_hold_in_the_papers_direction_and_can_fail():
    card = _file()
    assert all(c.holds for c in card.claims)
    for key in ("above-chance", "binary-features-vs-pixels-sanity",
                "semantic-features-vs-pixels-sanity"):  # fmt: skip
        assert card[key].kind == "sanity", key
    # depth: the trained difference (19/64 - 2/16) against the untrained one (11/64 - 2/16)
    depth = card["training-grows-shape-with-depth"]
    assert depth.our_value == pytest.approx(19 / 64 - 2 / 16, abs=1e-4)
    assert depth.baseline_value == pytest.approx(11 / 64 - 2 / 16, abs=1e-4)
    worse = _file(sin=(10, 20), early=0.3, binary=0.45, accuracy_in=0.9, untrained_last=25,
                  untrained_binary=0.95, untrained_semantic=0.9)  # fmt: skip
    for key in ("sin-shape-dims", "sin-texture-dims", "shape-early", "binary-vs-semantic",
                "training-grows-shape-with-depth", "binary-features-vs-untrained",
                "semantic-features-vs-untrained", "binary-features-vs-pixels-sanity",
                "texture-bias"):  # fmt: skip
        assert not worse[key].holds, key
    # an untrained network whose last stage already has the trained share: no gain, no claim
    assert not _file(untrained_last=19)["training-grows-shape-with-depth"].holds
    with pytest.raises(ValueError, match="readouts lack"):
        file_claims(card, None, None, [], 0.5, 0.25, {}, 4)
    full = {(s, t): ReadoutScore(0.5, 0.1) for s in ("features", "untrained", "pixels")
            for t in ("binary", "semantic")}  # fmt: skip
    shortcut = RegimeResult("shortcut", [_dims(2, 5, 16, "res1"), _dims(19, 12)], 0.5)
    with pytest.raises(ValueError, match="one estimate per stage"):
        file_claims(card, shortcut, shortcut, [_dims(2, 5)], 0.5, 0.25, full, 4)


def test_early_fraction():
    records = {0: [_dims(10, 5)], 30: [_dims(16, 5)], 120: [_dims(18, 5)]}
    assert early_fraction(records, 30) == pytest.approx(0.75)
    assert early_fraction({0: [_dims(10, 5)], 30: [_dims(9, 5)], 60: [_dims(8, 5)]}, 30) == 0.0
    with pytest.raises(ValueError, match="steps 0 and 45"):
        early_fraction(records, 45)


def test_mean_iou_and_chance():
    target = torch.tensor([[0, 0, 1, 1]])
    assert mean_iou(target, target, 2) == 1.0
    assert mean_iou(torch.zeros_like(target), target, 2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        mean_iou(target, target[:, :2], 2)
    assert ReadoutScore(0.625, 0.25).normalised == pytest.approx(0.5)


def test_a_readout_learns_a_pixel_rule_and_patches_have_the_neighbourhood():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 8, 8, generator=g)
    target = (images[:, 0] > 0).long()
    head = fit_readout(images, target, 2, steps=100, generator=g)
    score = score_readout(head, images, target, 2)
    assert score.miou > 0.9 and score.normalised > 0.8
    patches = pixel_patches(images)
    assert patches.shape == (16, 27, 8, 8)
    assert torch.equal(patches[:, 4], images[:, 0])  # the centre of channel 0's 3x3 patch
    with pytest.raises(ValueError, match="must match"):
        fit_readout(images, target[:, :4], 2, generator=g)


def test_stylized_voc_folder(tmp_path):
    for texture in (1, 2):
        for label, image_id in ((3, "2008_000001"), (7, "2008_000002")):
            Image.new("RGB", (10, 10), (texture * 60, label * 20, 0)).save(
                tmp_path / f"{texture}_{label}_{image_id}.png"
            )
    pairs = stylized_voc_pairs(tmp_path, 6, 8, generator=torch.Generator().manual_seed(0))
    assert pairs.a.image.shape == (6, 3, 8, 8) and pairs.factor.tolist() == [0, 1] * 3
    # shape pairs: same image id and class in another texture -> same green channel
    same = pairs.factor == 0
    assert torch.allclose(pairs.a.image[same, 1], pairs.b.image[same, 1])
    assert not torch.allclose(pairs.a.image[same, 0], pairs.b.image[same, 0])
    # read a chunk at a time: the same pairs in the same order, at most `chunk` at once
    chunks = list(
        iter_stylized_voc_pairs(tmp_path, 6, 8, generator=torch.Generator().manual_seed(0), chunk=4)
    )
    assert [len(c.factor) for c in chunks] == [4, 2]
    joined = concat_pairs(chunks)
    assert torch.equal(joined.a.image, pairs.a.image) and torch.equal(joined.b.image, pairs.b.image)
    assert torch.equal(joined.factor, pairs.factor)
    with pytest.raises(ValueError, match="chunk"):
        next(iter_stylized_voc_pairs(tmp_path, 2, 8, generator=torch.Generator(), chunk=0))
    with pytest.raises(FileNotFoundError, match="generate_stylized_voc"):
        stylized_voc_pairs(tmp_path / "absent", 2, 8, generator=torch.Generator())
    (tmp_path / "bad.png").write_bytes(b"")
    with pytest.raises(ValueError, match="texture"):
        stylized_voc_pairs(tmp_path, 2, 8, generator=torch.Generator())


def test_resnet50_stand_in_is_seeded_and_refuses_bad_choices(tmp_path):
    with pytest.raises(ValueError, match="published"):
        resnet50("downloaded")
    a, b = resnet50("stand-in", seed=3), resnet50("stand-in", seed=3)
    assert torch.equal(a.resnet.conv1.weight, b.resnet.conv1.weight)
    # [-1, 1] images standardised as torchvision's ImageNet weights expect; keys unchanged
    a.eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(a(x), a.resnet(((x + 1) / 2 - mean) / std), atol=1e-5)
    assert not any(k.startswith("pixel_") for k in a.state_dict())
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="missing"):
        resnet50("published", tmp_path / "w.pth")
