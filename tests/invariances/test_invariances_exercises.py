"""Chapter 7's exercise 2 checker: the share of samples wearing their input's colour."""

import torch

from esser_lab.invariances import foreground_stats, palette_rgb, shape_sprites
from esser_lab.invariances.exercises import check_colour_kept, colour_kept


def setting():
    """12 sprites as 4 images × 3 samples; each image's colour is that of its first sample."""
    sprites = shape_sprites(12, 16, generator=torch.Generator().manual_seed(0))
    samples = sprites.image.view(4, 3, *sprites.image.shape[1:])
    worn = sprites.colour[:, 0].view(4, 3)
    return samples, worn[:, 0], worn


def test_the_share_is_the_true_colours_share_and_the_solution_is_accepted():
    samples, colour, worn = setting()
    by_hand = (worn == colour[:, None]).float().mean().item()  # the sprites' true colours
    assert 1 / 3 <= by_hand < 1 and colour_kept(samples, colour) == by_hand
    nearest = torch.cdist(
        foreground_stats(samples.flatten(0, 1)).colour, palette_rgb(torch.arange(8))
    ).argmin(1)
    solution = (nearest == colour.repeat_interleave(3)).float().mean().item()
    assert check_colour_kept(samples, colour, solution)


def test_repeat_instead_of_repeat_interleave_is_refused_without_the_value():
    samples, colour, worn = setting()
    flat = worn.flatten()
    misaligned = (flat == colour.repeat(3)).float().mean().item()
    exact = colour_kept(samples, colour)
    assert (round(misaligned * 6), exact) == (1, 0.5)  # this seed's sprites, counted by hand
    wrong = check_colour_kept(samples, colour, misaligned)
    assert not wrong and "repeat_interleave" in str(wrong) and "0.5" not in str(wrong)
    count = check_colour_kept(samples, colour, exact * 12)
    assert not count and "too high" in str(count)
    assert "no answer yet" in str(check_colour_kept(samples, colour, None))
