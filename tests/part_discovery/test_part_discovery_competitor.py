"""Chapter 8's competitor: Lorenz'19's landmarks turned into segments, its config and data."""

import math

import pytest
import torch

from esser_lab.part_based import PartBased
from esser_lab.part_based.method import part_based_loss
from esser_lab.part_discovery import PartDiscoveryConfig, part_iou
from esser_lab.part_discovery.competitor import (
    ViewZeroDataModule,
    competitor_config,
    dense_crf,
    landmark_probabilities,
    remapped_miou,
    segments_from_landmarks,
)
from esser_lab.part_discovery.training import PartPairsDataModule


def test_probabilities_put_background_first_and_peak_at_each_landmark():
    mu = torch.tensor([[[-0.5625, -0.5625], [0.4375, 0.4375]]])  # two pixel centres at 16 px
    p = landmark_probabilities(mu, 16)
    assert p.shape == (1, 3, 16, 16)
    assert p[0, 1, 3, 3] == pytest.approx(1.0) and p[0, 2, 11, 11] == pytest.approx(1.0)
    assert p[0, 0].max() <= 1 and p[0, 0].min() == pytest.approx(0.0)
    assert torch.allclose(p[0, 0], 1 - p[0, 1:].amax(0))


def test_without_the_crf_a_pixel_joins_its_landmark_within_the_official_radius():
    mu = torch.tensor([[[0.0625, 0.0625]]])  # the centre of pixel (8, 8)
    labels = segments_from_landmarks(torch.zeros(1, 3, 16, 16), mu, crf_steps=0)[0]
    radius = math.sqrt(2 * 0.1 * math.log(2))  # where the Gaussian falls to ½
    line = (torch.arange(16) * 2 + 1) / 16 - 1
    y, x = torch.meshgrid(line, line, indexing="ij")
    inside = (x - 0.0625) ** 2 + (y - 0.0625) ** 2 < radius**2
    assert torch.equal(labels == 1, inside)
    assert inside.sum() > 1 and (~inside).sum() > 1


def test_segments_label_each_landmark_and_the_background():
    mu = torch.tensor([[[-0.5, -0.5], [0.5, 0.5]]]).repeat(3, 1, 1)
    labels = segments_from_landmarks(torch.zeros(3, 3, 16, 16), mu)
    assert labels.shape == (3, 16, 16) and labels.dtype == torch.long
    assert set(labels.unique().tolist()) == {0, 1, 2}
    assert labels[0, 4, 4] == 1 and labels[0, 12, 12] == 2 and labels[0, 0, 15] == 0


def test_crf_marginals_are_distributions_and_zero_steps_is_the_unary():
    p = torch.rand(2, 4, 8, 8).softmax(1)
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    q0 = dense_crf(image, p, steps=0)
    assert torch.allclose(q0, (p + 1e-6) / (p + 1e-6).sum(1, keepdim=True), atol=1e-6)
    q = dense_crf(image, p, steps=5, pixel_scale=0.125)
    assert q.shape == p.shape and torch.allclose(q.sum(1), torch.ones(2, 8, 8), atol=1e-5)


def test_crf_relabels_a_stray_pixel_to_its_same_coloured_neighbours():
    p = torch.full((1, 2, 8, 8), 0.1)
    p[:, 0] = 0.9
    p[0, :, 4, 4] = torch.tensor([0.4, 0.6])  # one pixel mildly prefers label 1
    image = torch.zeros(1, 3, 8, 8)  # one colour everywhere
    assert dense_crf(image, p, steps=0).argmax(1)[0, 4, 4] == 1
    assert (dense_crf(image, p, steps=5, pixel_scale=0.125).argmax(1) == 0).all()


def test_crf_follows_colour_edges():
    # label 1's landmark sits on the left half's edge; the left half is red, the right blue
    image = torch.zeros(1, 3, 8, 8)
    image[:, 0, :, :4] = 1
    image[:, 2, :, 4:] = 1
    p = torch.zeros(1, 2, 8, 8)
    p[:, 1, :, :5] = 0.55  # the unary spills one column into the blue half
    p[:, 0] = 1 - p[:, 1]
    crf = dense_crf(image, p, steps=5, pixel_scale=0.125).argmax(1)[0]
    assert (crf[:, :4] == 1).all() and (crf[:, 4:] == 0).all()


@pytest.mark.parametrize("size, scale", [((12, 20), 0.3), ((16, 16), 0.125), ((9, 7), 1.0)])
def test_factorised_crf_equals_the_dense_one_on_images_of_few_colours(size, scale):
    generator = torch.Generator().manual_seed(sum(size))
    palette = torch.rand(4, 3, generator=generator) * 2 - 1
    image = palette[torch.randint(0, 4, (2, *size), generator=generator)].permute(0, 3, 1, 2)
    p = torch.rand(2, 5, *size, generator=generator).softmax(1)
    dense = dense_crf(image, p, pixel_scale=scale, method="dense")
    factorised = dense_crf(image, p, pixel_scale=scale, method="factorised")
    assert torch.allclose(dense, factorised, atol=1e-4)  # float32 rounding only
    assert not torch.allclose(dense, dense_crf(image, p, steps=0), atol=1e-3)  # the CRF acts


def test_factorised_crf_equals_the_dense_one_on_figures_at_64_px():
    from esser_lab.data import figures

    sample = figures.sample(2, 64, generator=torch.Generator().manual_seed(0))
    mu = torch.rand(2, 4, 2, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    p = landmark_probabilities(mu, 64)
    dense = dense_crf(sample.image, p, pixel_scale=0.5, method="dense")
    assert torch.allclose(dense, dense_crf(sample.image, p, pixel_scale=0.5), atol=1e-4)


def test_crf_method_is_checked():
    with pytest.raises(ValueError, match="method"):
        dense_crf(torch.zeros(1, 3, 4, 4), torch.ones(1, 2, 4, 4), method="lattice")


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="mu"):
        landmark_probabilities(torch.zeros(2, 3), 16)
    with pytest.raises(ValueError, match="disagree"):
        dense_crf(torch.zeros(1, 3, 8, 8), torch.ones(2, 2, 8, 8))
    with pytest.raises(ValueError, match="variance"):
        landmark_probabilities(torch.zeros(1, 2, 2), 16, variance=0.0)


def test_config_matches_chapter_8s_size_batch_and_segment_count():
    config = PartDiscoveryConfig.tiny()
    lorenz = competitor_config(config, 200)
    assert lorenz.image_size == config.image_size and lorenz.batch_size == config.batch_size
    assert lorenz.n_parts + 1 == config.num_parts and lorenz.total_steps == 200
    assert lorenz.part_map_size == 8
    small = competitor_config(PartDiscoveryConfig.small(), 20_000)
    assert small.image_size == 64 and small.n_parts == 7
    paper = competitor_config(PartDiscoveryConfig.paper(), 10)
    assert paper.image_size == 128 and paper.n_parts == 24
    with torch.device("meta"):
        PartBased(paper)  # the full-scale competitor builds
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    loss = part_based_loss(PartBased(lorenz), x, torch.Generator().manual_seed(0)).loss
    assert torch.isfinite(loss)


def test_view_zero_data_are_chapter_8s_first_views():
    pairs = PartPairsDataModule(16, 8, 32, 8, seed=3)
    views = ViewZeroDataModule(16, 8, 32, 8, seed=3)
    pairs.setup()
    views.setup()
    index = torch.arange(32)
    assert torch.equal(views.train_set[index]["image"], pairs.train_set[index]["view0"])
    assert set(views.train_set[index]) == {"image"}


def test_view_zero_data_share_chapter_8s_sets_once_made():
    pairs = PartPairsDataModule(16, 8, 32, 8, seed=3)
    fresh = ViewZeroDataModule.of(pairs)  # nothing made yet: it makes its own, the same
    pairs.setup()
    shared = ViewZeroDataModule.of(pairs)
    assert shared.train_set is not None and fresh.train_set is None
    assert shared.train_set.fields["image"] is pairs.train_set.fields["view0"]
    fresh.setup()
    index = torch.arange(32)
    assert torch.equal(fresh.train_set[index]["image"], shared.train_set[index]["image"])
    assert torch.equal(
        fresh.val_set[torch.arange(8)]["image"], pairs.val_set[torch.arange(8)]["view0"]
    )


def test_remapping_merges_pieces_that_one_to_one_matching_splits():
    true = torch.zeros(2, 4, 4, dtype=torch.long)
    true[:, :, 2:] = 1  # class 1 on the right half
    pred = torch.zeros_like(true)
    pred[:, :2, 2:] = 1  # two segments cover class 1: top and bottom
    pred[:, 2:, 2:] = 2
    assert remapped_miou(pred, true, 3, 2) == pytest.approx(1.0)
    assert part_iou(pred, true, 3, 2).mean() == pytest.approx(0.5)  # one-to-one: half of it
    # a class absent from an image does not count for that image
    true[1] = 0
    pred[1] = 0
    assert remapped_miou(pred, true, 3, 2) == pytest.approx(1.0)
