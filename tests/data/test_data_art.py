"""The procedural art set: determinism, ranges, recoverable style and content, errors."""

import pytest
import torch

from esser_lab.data import art


def test_sample_is_deterministic_and_in_range() -> None:
    a = art.sample(64, 16, generator=torch.Generator().manual_seed(0))
    b = art.sample(64, 16, generator=torch.Generator().manual_seed(0))
    c = art.sample(64, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.painting, b.painting) and not torch.equal(a.painting, c.painting)
    assert a.painting.shape == (64, 3, 16, 16) and a.painting.dtype == torch.float32
    assert a.painting.min() >= -1 and a.painting.max() <= 1
    assert a.style.min() >= 0 and a.style.max() < art.NUM_STYLES
    assert a.content.min() >= 0 and a.content.max() <= 9
    assert len(a[:5]) == 5


def test_style_is_recoverable_by_mean_colour() -> None:
    """A nearest-centroid rule on the mean RGB of a painting names its artist."""
    fit = art.sample(800, 16, generator=torch.Generator().manual_seed(0))
    check = art.sample(800, 16, "test", generator=torch.Generator().manual_seed(1))
    centroids = torch.stack(
        [fit.painting[fit.style == k].mean(dim=(0, 2, 3)) for k in range(art.NUM_STYLES)]
    )
    predicted = torch.cdist(check.painting.mean(dim=(2, 3)), centroids).argmin(dim=1)
    assert (predicted == check.style).float().mean() > 0.95


def test_content_is_preserved() -> None:
    """The painting's luminance follows the photo's ink mask in every style."""
    s = art.sample(256, 16, generator=torch.Generator().manual_seed(2))
    luminance = s.painting.mean(dim=1).flatten(1)
    ink = s.photo[:, 0].flatten(1)
    corr = torch.stack(
        [torch.corrcoef(torch.stack([x, y]))[0, 1] for x, y in zip(luminance, ink, strict=True)]
    )
    assert corr.abs().mean() > 0.7
    for k in range(art.NUM_STYLES):
        assert corr[s.style == k].abs().min() > 0.4


def test_paint_keeps_style_ids_and_photos_split() -> None:
    photos, labels = art.load_photos(16, "train")
    test_photos, _ = art.load_photos(16, "test")
    assert photos.shape == (art.NUM_TRAIN_DIGITS, 3, 16, 16) and len(labels) == len(photos)
    assert len(test_photos) == 1797 - art.NUM_TRAIN_DIGITS
    styles = torch.arange(8) % art.NUM_STYLES
    a = art.paint(photos[:8], styles, torch.Generator().manual_seed(0))
    b = art.paint(photos[:8], (styles + 1) % art.NUM_STYLES, torch.Generator().manual_seed(0))
    assert (a - b).abs().mean() > 0.2  # another artist paints differently


def test_pairs_have_different_artists() -> None:
    rows = art.sample_pairs(128, 16, generator=torch.Generator().manual_seed(0))
    assert set(rows) == {
        "photo",
        "photo_negative",
        "content",
        "painting",
        "style",
        "painting_negative",
        "style_negative",
    }
    assert (rows["style"] != rows["style_negative"]).all()
    assert rows["painting"].shape == rows["photo"].shape == (128, 3, 16, 16)


@pytest.mark.parametrize(
    "content, styles, match",
    [
        (torch.zeros(2, 2, 8, 8), torch.zeros(2, dtype=torch.long), "1 or 3 channels"),
        (torch.zeros(2, 1, 8), torch.zeros(2, dtype=torch.long), "float"),
        (torch.zeros(2, 1, 8, 8), torch.zeros(2), "integer tensor"),
        (torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.long), r"shape \(2,\)"),
        (torch.zeros(2, 1, 8, 8), torch.full((2,), 9), "style ids must be in"),
    ],
)
def test_paint_errors(content, styles, match) -> None:
    with pytest.raises(ValueError, match=match):
        art.paint(content, styles, torch.Generator())


def test_sample_errors() -> None:
    with pytest.raises(ValueError, match="generator"):
        art.sample(4, 16, generator=None)
    with pytest.raises(ValueError, match="split"):
        art.load_photos(16, "val")
    with pytest.raises(ValueError, match="n must be"):
        art.sample(0, 16, generator=torch.Generator())
