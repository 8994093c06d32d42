"""Chapter 15's exercise checkers (the one-keyframe gate, the warp errors) and the wording of
exercise 3's solution."""

import torch

from esser_lab.data.video import sample_clips
from esser_lab.keyframe.exercises import (
    check_one_keyframe_gate,
    check_warp_errors,
    flag_verdict,
    warp_errors,
)
from esser_lab.keyframe.method import keyframe_samples


def test_the_gate_checker():
    assert check_one_keyframe_gate(1.0) and check_one_keyframe_gate(torch.tensor(1.0))
    assert not check_one_keyframe_gate(0.5)  # "half to each" is for two keyframes


def test_warp_errors_are_recomputed_and_the_valid_pixels_warp_better():
    g = torch.Generator().manual_seed(0)
    samples = keyframe_samples(sample_clips(64, generator=g), g)
    valid, invalid = warp_errors(samples)
    assert valid < invalid  # the flow is right where it is marked valid
    assert check_warp_errors(samples, valid, invalid)
    assert not check_warp_errors(samples, invalid, valid)  # swapped
    assert "no answer yet" in str(check_warp_errors(samples, None, invalid))


def test_the_flag_verdict_says_towards_only_when_the_gap_shrinks():
    level = 12.06  # the no-keyframe generator's hole PSNR
    # the recorded seed 4: local-only already above the level, the flag raises it further
    assert flag_verdict(12.30, 12.50, level) == "raises it by 0.20 dB, further above that level"
    assert flag_verdict(11.50, 11.80, level) == "raises it by 0.30 dB, towards that level"
    assert flag_verdict(11.50, 11.20, level) == "lowers it by 0.30 dB, further below that level"
    assert flag_verdict(12.50, 12.30, level) == "lowers it by 0.20 dB, towards that level"
    assert flag_verdict(11.90, 12.30, level) == "raises it by 0.40 dB, past that level"
    assert flag_verdict(12.30, 12.35, level) == "leaves it within 0.1 dB of where it was"
