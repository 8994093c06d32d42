"""Chapter 9's exercise 2 checker: the fraction called red per source colour."""

import torch
from torch import nn

from esser_lab.data import sprites
from esser_lab.data_bias.data import RED, sample_domains
from esser_lab.data_bias.exercises import check_red_by_colour, red_by_colour


class MaxChannelJudge(nn.Module):
    """Calls an image red when its mean red channel exceeds the others by 0.1: a judge we can
    follow (its logit for red is that margin, every other logit 0)."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))  # predict() reads the device from a weight

    def forward(self, x):
        logits = torch.zeros(len(x), len(sprites.COLOURS))
        mean = x.mean((2, 3))
        logits[:, RED] = self.gain * (mean[:, 0] - mean[:, 1:].amax(1) - 0.1)
        return logits


def setting():
    data = sample_domains(torch.zeros(64, dtype=torch.long), 16,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    return MaxChannelJudge(), data.image, data.colour


def test_the_fractions_by_hand_and_the_solution_is_accepted():
    judge, images, colour = setting()
    red = images.mean((2, 3))[:, 0] > images.mean((2, 3))[:, 1:].amax(1) + 0.1
    by_hand = [float(red[colour == c].float().mean()) if (colour == c).any() else 0.0
               for c in range(len(sprites.COLOURS))]  # fmt: skip
    fractions = red_by_colour(judge, images, colour)
    assert max(abs(a - b) for a, b in zip(fractions, by_hand, strict=True)) < 1e-6
    assert fractions[list(sprites.COLOURS).index("red")] == 1.0 and 0 < sum(fractions) < 8
    assert check_red_by_colour(judge, images, colour, by_hand)


def test_shares_of_the_red_calls_are_refused_without_the_values():
    judge, images, colour = setting()
    red = images.mean((2, 3))[:, 0] > images.mean((2, 3))[:, 1:].amax(1) + 0.1
    shares = (torch.bincount(colour[red], minlength=8).float() / red.sum()).tolist()
    wrong = check_red_by_colour(judge, images, colour, shares)
    assert not wrong and "over all objects of that source colour" in str(wrong)
    exact = red_by_colour(judge, images, colour)
    assert all(f"{f:.2f}"[1:] not in str(wrong) for f in exact if 0 < f < 1)
    assert not check_red_by_colour(judge, images, colour, shares[:7])
    assert "no answer yet" in str(check_red_by_colour(judge, images, colour, None))
