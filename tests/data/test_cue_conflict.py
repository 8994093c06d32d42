"""The cue-conflict generator of chapter 11: deterministic, factors and maps consistent."""

from __future__ import annotations

import pytest
import torch

from esser_lab.data import cue_conflict as cc


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_images_and_ranges():
    a = cc.sample(64, 16, generator=_g(), regime="shortcut")
    b = cc.sample(64, 16, generator=_g(), regime="shortcut")
    assert torch.equal(a.image, b.image) and torch.equal(a.texture, b.texture)
    assert a.image.shape == (64, 3, 16, 16) and a.image.dtype == torch.float32
    assert a.image.min() >= -1 and a.image.max() <= 1
    assert not torch.equal(a.image, cc.sample(64, 16, generator=_g(1)).image)


def test_masks_and_semantic_maps_match_the_factors():
    s = cc.sample(128, 16, generator=_g())
    assert s.mask.shape == (128, 16, 16) and s.mask.dtype == torch.bool
    assert (s.mask.sum((1, 2)) > 5).all()  # every object is visible
    assert torch.equal(s.semantic > 0, s.mask)
    on_object = s.semantic[s.mask].view(-1)
    per_image = s.semantic.amax((1, 2)) - 1
    assert torch.equal(per_image, s.shape) and on_object.min() >= 1


def test_the_background_is_textured_like_the_object():
    # the whole image is stylised: the background is the same two-tone rendering of its own
    # texture, so off the object the image is exactly that texture alone
    s = cc.sample(64, 16, generator=_g())
    alone = cc.render(s.shape, s.background_texture, s.background_hue, s.background_phase,
                      s.position, s.scale, s.rotation, s.background_texture, s.background_hue,
                      s.background_phase, size=16)  # fmt: skip
    outside = ~s.mask[:, None].expand(-1, 3, -1, -1)
    assert torch.equal(s.image[outside], alone.image[outside])
    # no pixel statistic tells object from background: both are coloured, equally bright
    pixels = s.image.permute(0, 2, 3, 1)
    on, off = pixels[s.mask], pixels[~s.mask]
    assert (off.std(1) > 0.1).float().mean() > 0.9  # coloured, not grey
    for stat in (lambda p: p.abs().mean(), lambda p: p.std(1).mean()):
        assert abs(float(stat(on) - stat(off))) < 0.05
    # a plain 3x3 pixel neighbourhood cannot know which textured region is the object


def test_the_background_is_drawn_independently_of_the_object():
    for regime in cc.REGIMES:
        s = cc.sample(4000, 8, generator=_g(), regime=regime)
        same = float((s.background_texture == s.texture).float().mean())
        tied = float((s.background_texture == s.shape).float().mean())
        assert abs(same - 0.25) < 0.03 and abs(tied - 0.25) < 0.03  # not a class cue
        assert abs(float((s.background_hue - s.hue).abs().mean()) - 1 / 3) < 0.02


def test_regimes_tie_or_free_the_texture():
    shortcut = cc.sample(2000, 8, generator=_g(), regime="shortcut")
    free = cc.sample(2000, 8, generator=_g(), regime="randomised")
    tied = (shortcut.texture == shortcut.shape).float().mean()
    assert 0.88 < tied < 0.96  # 0.9 + 0.1 / 4
    assert abs(float((free.texture == free.shape).float().mean()) - 0.25) < 0.04
    assert torch.equal(shortcut.shape, free.shape)  # the same stream: only texture differs


def test_pairs_share_exactly_their_factor():
    pairs = cc.factor_pairs(200, 16, generator=_g())
    a, b, f = pairs.a, pairs.b, pairs.factor
    shape_pairs, texture_pairs = f == 0, f == 1
    assert shape_pairs.sum() == texture_pairs.sum() == 100
    assert torch.equal(a.shape[shape_pairs], b.shape[shape_pairs])
    assert torch.equal(a.mask[shape_pairs], b.mask[shape_pairs])  # the same object
    assert (a.texture[shape_pairs] != b.texture[shape_pairs]).all()
    assert torch.equal(a.texture[texture_pairs], b.texture[texture_pairs])
    assert torch.equal(a.hue[texture_pairs], b.hue[texture_pairs])
    assert (a.shape[texture_pairs] != b.shape[texture_pairs]).all()
    # the style is the whole image's: a texture pair keeps the background's texture and colour,
    # a shape pair draws a new one
    for name in ("background_texture", "background_hue"):
        assert torch.equal(getattr(a, name)[texture_pairs], getattr(b, name)[texture_pairs])
    assert (a.background_hue[shape_pairs] != b.background_hue[shape_pairs]).all()
    assert (a.background_phase != b.background_phase).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="regime"):
        cc.sample(4, 16, generator=_g(), regime="imagenet")
    with pytest.raises(ValueError, match="generator"):
        cc.sample(4, 16, generator=0)
    with pytest.raises(ValueError, match="shortcut_p"):
        cc.sample(4, 16, generator=_g(), shortcut_p=1.5)
    with pytest.raises(ValueError, match="at least 4"):
        cc.factor_pairs(2, 16, generator=_g())
    s = cc.sample(2, 8, generator=_g())
    background = (s.background_texture, s.background_hue, s.background_phase)
    with pytest.raises(ValueError, match="shape indices"):
        cc.render(s.shape + 7, s.texture, s.hue, s.phase, s.position, s.scale, s.rotation,
                  *background, size=8)  # fmt: skip
    with pytest.raises(ValueError, match=r"background_phase must have shape \(2, 2\)"):
        cc.render(s.shape, s.texture, s.hue, s.phase, s.position, s.scale, s.rotation,
                  s.background_texture, s.background_hue, torch.zeros(2), size=8)  # fmt: skip
    with pytest.raises(ValueError, match="background_texture indices"):
        cc.render(s.shape, s.texture, s.hue, s.phase, s.position, s.scale, s.rotation,
                  s.background_texture + 4, *background[1:], size=8)  # fmt: skip
    with pytest.raises(ValueError, match="size"):
        cc.render(s.shape, s.texture, s.hue, s.phase, s.position, s.scale, s.rotation,
                  *background, size=0)  # fmt: skip
