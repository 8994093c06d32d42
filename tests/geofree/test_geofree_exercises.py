"""Chapter 12's exercise 3 checker: the sample variance on disoccluded and visible codes."""

import torch

from esser_lab.geofree.exercises import check_sample_variance


def setting():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(4, 2, 3, 8, 8, generator=g)
    samples[..., :, 4:] *= 3  # the right half of every view varies 3x as much
    disoccluded = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    disoccluded[..., 4:] = True  # ... and is disoccluded
    return samples, disoccluded


def test_the_variances_by_hand_are_accepted():
    samples, disoccluded = setting()
    per_code = samples.var(0).mean(1).view(2, 2, 4, 2, 4).mean((2, 4))  # (b, 2, 2) codes
    by_hand = (float(per_code[..., 1].mean()), float(per_code[..., 0].mean()))
    assert 6 < by_hand[0] / by_hand[1] < 12  # about 9: the hidden half varies 3x as much
    assert check_sample_variance(samples, disoccluded, (2, 2), by_hand)


def test_swapped_or_unpooled_answers_are_refused_without_the_values():
    samples, disoccluded = setting()
    per_code = samples.var(0).mean(1).view(2, 2, 4, 2, 4).mean((2, 4))
    hidden, seen = float(per_code[..., 1].mean()), float(per_code[..., 0].mean())
    swapped = check_sample_variance(samples, disoccluded, (2, 2), (seen, hidden))
    assert not swapped and "disoccluded and visible" in str(swapped)
    assert f"{hidden:.3f}" not in str(swapped)
    std = check_sample_variance(samples, disoccluded, (2, 2), (hidden**0.5, seen**0.5))
    assert not std
    assert not check_sample_variance(samples, disoccluded, (2, 2), hidden)
    assert "no answer yet" in str(check_sample_variance(samples, disoccluded, (2, 2), None))
