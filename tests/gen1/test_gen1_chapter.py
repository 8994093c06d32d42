"""Chapter 16's helpers: generation from a (tiny, untrained) system is deterministic and in
range, the swap reaches the content, the figures build."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from esser_lab.data.video import sample_clips  # noqa: E402
from esser_lab.diffusion import DiscreteSchedule  # noqa: E402
from esser_lab.gen1.chapter import (  # noqa: E402
    clips_figure,
    curves_figure,
    depth_frames,
    generate,
)
from esser_lab.gen1.claims import content_code  # noqa: E402
from esser_lab.gen1.method import PixelFold  # noqa: E402
from esser_lab.gen1.model import Gen1Config, Gen1UNet  # noqa: E402
from esser_lab.gen1.training import LitGen1  # noqa: E402


def _system() -> LitGen1:
    torch.manual_seed(0)
    model = Gen1UNet(Gen1Config.tiny(content_dim=12))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return LitGen1(model, PixelFold(2), DiscreteSchedule.stable_diffusion())


def test_generate_is_deterministic_in_range_and_reads_the_content():
    clips = sample_clips(
        2, frames=4, size=16, objects=1, generator=torch.Generator().manual_seed(0)
    )
    system = _system()
    a = generate(system, clips, steps=4, seed=3)
    assert a.shape == clips.video.shape and a.abs().max() <= 1
    torch.testing.assert_close(generate(system, clips, steps=4, seed=3), a, rtol=0, atol=0)
    other = (clips.colour + 1) % 8
    # with the null content the colour asked for cannot matter; with the content it does
    null = generate(system, clips, steps=4, seed=3, null=True)
    torch.testing.assert_close(
        generate(system, clips, colour=other, steps=4, seed=3, null=True), null, rtol=0, atol=0
    )
    assert (generate(system, clips, colour=other, steps=4, seed=3) - a).abs().max() > 1e-4
    assert (null - a).abs().max() > 1e-4
    # each clip's noise is its own: clip 0 alone gets the same sample as in the pair
    torch.testing.assert_close(generate(system, clips[:1], steps=4, seed=3)[0], a[0])
    assert content_code(clips.colour, clips.texture, clips.object_depth).shape == (2, 12)


def test_the_temporal_switch_is_exactly_the_temporal_layers():
    clips = sample_clips(
        2, frames=4, size=16, objects=1, generator=torch.Generator().manual_seed(0)
    )
    system = _system()
    per_frame = generate(system, clips, temporal_scale=0.0, steps=4, seed=1)
    assert (generate(system, clips, steps=4, seed=1) - per_frame).abs().max() > 1e-4
    with torch.no_grad():  # temporal layers back at zero: the video model is the per-frame one
        for p in system.model.temporal_parameters():
            p.zero_()
    torch.testing.assert_close(generate(system, clips, steps=4, seed=1), per_frame)


def test_figures_build():
    clips = sample_clips(
        1, frames=3, size=16, objects=1, generator=torch.Generator().manual_seed(0)
    )
    grey = depth_frames(clips.depth[0])
    assert grey.shape == (3, 3, 16, 16) and grey.min() >= -1 and grey.max() <= 1
    fig = clips_figure({"clip": clips.video[0], "depth": grey})
    assert len(fig.axes) == 6
    fig = curves_figure({0: 0.5, 2: 0.4}, {0.0: 0.2, 1.0: 0.1}, {0.0: 0.9, 1.0: 0.8}, 0.01)
    assert len(fig.axes) == 3
