"""Chapter 3's exercise 1 checker: the fraction of rows satisfying the FPD triplet."""

import pytest
import torch

from esser_lab.data import art
from esser_lab.style_transfer import StyleTransferConfig, StyleTransferModel
from esser_lab.style_transfer.exercises import (
    check_fpd_fraction,
    check_mean_style_deception,
    fpd_fraction,
    mean_style_deception,
)


def setting():
    torch.manual_seed(0)
    config = StyleTransferConfig.tiny()
    model = StyleTransferModel(config).eval()
    data = art.sample(24, config.image_size, "test", generator=torch.Generator().manual_seed(7))
    return model, data.photo[:12], data.photo[12:], data.painting[:12]


def test_the_fraction_by_hand_and_the_solution_is_accepted():
    model, a, b, paintings = setting()
    with torch.no_grad():
        s_p = model.encode_style(paintings)
        back_a, back_b = (model.encode_style(model(x, s_p)) for x in (a, b))
    near = (back_a - back_b).norm(dim=1) < (back_a - s_p).norm(dim=1)
    assert fpd_fraction(model, a, b, paintings) == near.float().mean().item()
    assert fpd_fraction(model, a, a, paintings) == 1.0  # the same photo twice: distance 0
    assert check_fpd_fraction(model, a, b, paintings, near.float().mean().item())


def test_the_reversed_inequality_and_a_count_are_refused():
    model, a, _, paintings = setting()
    # with a == b every row satisfies the triplet; the reversed inequality gives 0 rows
    reversed_ = check_fpd_fraction(model, a, a, paintings, 0.0)
    assert not reversed_ and "too low" in str(reversed_) and "1.0" not in str(reversed_)
    count = check_fpd_fraction(model, a, a, paintings, 12)
    assert not count and "too high" in str(count)
    assert "no answer yet" in str(check_fpd_fraction(model, a, a, paintings, None))


def test_the_mean_style_rate_by_hand_is_accepted_and_a_count_refused():
    model, photos, _, _ = setting()
    torch.manual_seed(1)
    expert = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, art.NUM_STYLES))
    data = art.sample(40, 16, "train", generator=torch.Generator().manual_seed(5))
    targets = torch.arange(12) % art.NUM_STYLES
    with torch.no_grad():
        s = model.encode_style(data.painting)
        means = torch.stack([s[data.style == k].mean(0) for k in range(art.NUM_STYLES)])
        out = model(photos, torch.nn.functional.normalize(means, dim=1)[targets])
        by_hand = (expert(out).argmax(1) == targets).float().mean().item()
    args = (model, expert, data.painting, data.style, photos, targets)
    assert mean_style_deception(*args) == by_hand
    assert check_mean_style_deception(*args, by_hand)
    count = check_mean_style_deception(*args, by_hand * 12 + 1)
    assert not count and "too high" in str(count) and f"{by_hand:.3f}" not in str(count)
    assert "no answer yet" in str(check_mean_style_deception(*args, None))
    with pytest.raises(ValueError, match="no painting by the target artists"):
        mean_style_deception(model, expert, data.painting[:1], data.style[:1], photos, targets)
