"""Chapter 12's helpers: both models' views, the camera explorer and its static figure."""

import torch

from esser_lab.data import scenes
from esser_lab.geofree.baseline import ExplicitBaseline
from esser_lab.geofree.chapter import (
    camera_explorer,
    camera_sweep_figure,
    explicit_views,
    implicit_views,
    moved,
    toy_config,
)


def test_views_have_the_target_shape_and_are_seeded(model, pairs):
    baseline = ExplicitBaseline(width=8)
    a, b = implicit_views(model, pairs, seed=0), implicit_views(model, pairs, seed=0)
    assert a.shape == (8, 3, 16, 16) and torch.equal(a, b)
    assert explicit_views(baseline, pairs).shape == (8, 3, 16, 16)
    # depth_seed fixes the inputs (the depth estimate behind α) while seed redraws the codes
    c = implicit_views(model, pairs, seed=0, depth_seed=7)
    assert torch.equal(c, implicit_views(model, pairs, seed=0, depth_seed=7))
    assert not torch.equal(c, implicit_views(model, pairs, seed=1, depth_seed=7))


def test_moved_camera_shifts_sideways():
    world = scenes.sample_scenes(2, generator=torch.Generator().manual_seed(0))
    pairs = moved(world, 0.5, 16)
    torch.testing.assert_close(pairs.t, torch.tensor([[-0.5, 0.0, 0.0]] * 2))
    assert torch.equal(moved(world, 0.0, 16).target, pairs.source)


def test_explorer_and_figure_render(model):
    import matplotlib

    matplotlib.use("Agg")
    world = scenes.sample_scenes(2, generator=torch.Generator().manual_seed(0))
    baseline = ExplicitBaseline(width=8)
    fig = camera_sweep_figure(model, baseline, world, [-0.5, 0.5], 16)
    assert len(fig.axes) == 2 * 5
    box = camera_explorer(model, baseline, world, 16)
    picture = box.children[1]
    before = picture.value
    box.children[0].children[0].value = -0.5  # move the camera: the picture is redrawn
    assert picture.value != before and len(picture.value) > 0


def test_every_scale_gets_a_config_that_fits_its_first_stage():
    import pytest

    from esser_lab.geofree.model import GeoTransformer, first_stage_config
    from esser_lab.taming.model import VQModel

    sizes = {"tiny": 16, "small": 32, "full": 32}
    for scale, size in sizes.items():
        config, preset = toy_config(scale)
        with torch.device("meta"):
            first_stage = VQModel(first_stage_config(preset))
            GeoTransformer(config, first_stage)  # raises when codebook or latent grid disagree
        vq = first_stage.config
        assert vq.n_embed == config.vocab_size
        factor = 2 ** (len(vq.ddconfig.ch_mult) - 1)
        assert tuple(size // factor for _ in range(2)) == config.latent_shape
    assert toy_config("full") == toy_config("small")
    with pytest.raises(ValueError, match="'tiny', 'small' or 'full'"):
        toy_config("paper")
