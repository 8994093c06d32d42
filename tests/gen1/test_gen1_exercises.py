"""Chapter 16's exercise checkers: the blur's variance and the temporal guidance by hand."""

import pytest

from esser_lab.gen1.exercises import blur_variance, check_blur_variance, check_temporal_guidance


@pytest.mark.parametrize("t_s", [1, 2, 5])
def test_blur_variance_adds_one_px2_a_step(t_s):
    assert blur_variance(t_s) == pytest.approx(t_s, abs=1e-9)
    assert check_blur_variance(t_s, float(t_s))
    assert not check_blur_variance(t_s, 2.0 * t_s)  # both axes summed
    assert "too low" in str(check_blur_variance(t_s, t_s**0.5 - 0.5))  # the std, not the variance


def test_temporal_guidance_by_hand():
    assert check_temporal_guidance(2.0, 3.0, 1.0, 5.0)  # 2 ε_θ − ε_π
    assert not check_temporal_guidance(2.0, 3.0, 1.0, 7.0)  # ε_θ + ω_t (ε_θ − ε_π): wrong base
    assert check_temporal_guidance(0.0, 3.0, 1.0, 1.0)  # ω_t = 0: the per-frame model
    assert "no answer yet" in str(check_temporal_guidance(2.0, 3.0, 1.0, None))
