"""Chapter 3's exercise 1 checker: the fraction of rows satisfying the FPD triplet."""

import torch

from esser_lab.data import art
from esser_lab.style_transfer import StyleTransferConfig, StyleTransferModel
from esser_lab.style_transfer.exercises import check_fpd_fraction, fpd_fraction


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
