"""Chapter 15's exercise checkers: the one-keyframe gate and the warp errors."""

import torch

from esser_lab.data.video import sample_clips
from esser_lab.keyframe.exercises import check_one_keyframe_gate, check_warp_errors, warp_errors
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
