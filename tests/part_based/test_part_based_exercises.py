"""Chapter 2's exercise 2 checker: how far the part means move under colour jitter."""

import torch

from esser_lab.data import figures
from esser_lab.part_based import PartBased, PartBasedConfig, colour_jitter
from esser_lab.part_based.exercises import check_jitter_shift, jitter_shift


def setting():
    torch.manual_seed(0)
    config = PartBasedConfig.tiny()
    model = PartBased(config).eval()
    images = figures.sample(6, config.image_size, generator=torch.Generator().manual_seed(0)).image
    jittered = colour_jitter(
        images,
        contrast=config.contrast,
        brightness=config.brightness,
        saturation=config.saturation,
        hue=config.hue,
        generator=torch.Generator().manual_seed(6),
    )
    return model, images, jittered


def test_the_shift_by_hand_and_the_solution_is_accepted():
    model, images, jittered = setting()
    with torch.no_grad():
        reference = model.encode(images).mu
        moved = model.encode(jittered).mu - reference
    assert jitter_shift(model, images, reference) == 0.0
    by_hand = 50 * moved.norm(dim=-1).mean().item()
    assert by_hand > 0 and abs(jitter_shift(model, jittered, reference) - by_hand) < 1e-6 * by_hand
    assert check_jitter_shift(model, jittered, reference, by_hand)
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)  # new weights: encoded afresh, not remembered
    assert abs(jitter_shift(model, jittered, reference) - by_hand) > 1e-3 * by_hand
    jittered.add_(0.5)  # changed in place: encoded afresh, not the remembered means
    assert not check_jitter_shift(model, jittered, reference, by_hand)


def test_the_wrong_units_are_refused_without_the_value():
    model, images, jittered = setting()
    with torch.no_grad():
        reference = model.encode(images).mu
    exact = jitter_shift(model, jittered, reference)
    raw = check_jitter_shift(model, jittered, reference, exact / 50)  # in [-1, 1] units
    assert not raw and "too low" in str(raw) and f"{exact:.2f}" not in str(raw)
    per_cent_of_half = check_jitter_shift(model, jittered, reference, 2 * exact)  # 100 × distance
    assert not per_cent_of_half and "too high" in str(per_cent_of_half)
    assert "no answer yet" in str(check_jitter_shift(model, jittered, reference, None))
