"""The losses (P1)–(P8), the part IoU with Hungarian matching, the k-means baseline, training."""

import math
from dataclasses import replace

import pytest
import torch

from esser_lab.data import figures
from esser_lab.part_discovery import (
    PartDiscovery,
    PartDiscoveryConfig,
    colour_kmeans,
    colour_segments,
    compactness_loss,
    figure_labels,
    gmrf_prior,
    hard_cross_entropy,
    kl_to_uniform,
    lor_update,
    part_discovery_loss,
    part_iou,
    reconstruction_loss,
)


def test_priors_on_known_inputs():
    flat = torch.zeros(2, 3, 4, 4)
    assert gmrf_prior(flat) == 0
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 2.0  # one vertical edge of height 2 in 4 rows: ½·4·2² = 8
    assert gmrf_prior(step) == pytest.approx(8.0)
    uniform = torch.full((1, 5, 3, 3), 0.2)
    assert kl_to_uniform(uniform) == pytest.approx(0.0, abs=1e-6)
    one_hot = torch.zeros(1, 5, 3, 3)
    one_hot[:, 0] = 1
    assert kl_to_uniform(one_hot) == pytest.approx(math.log(5), rel=1e-5)
    confident = torch.zeros(1, 4, 2, 2)
    confident[:, 1] = 50.0
    assert hard_cross_entropy(confident) == pytest.approx(0.0, abs=1e-6)
    assert hard_cross_entropy(torch.zeros(1, 4, 2, 2)) == pytest.approx(math.log(4), rel=1e-5)
    x = torch.zeros(2, 3, 4, 4)
    assert reconstruction_loss(x, x + 1) == pytest.approx(0.5 * 48)


def test_compactness_prefers_concentrated_parts():
    spread = torch.zeros(1, 2, 8, 8)
    blob = torch.zeros(1, 2, 8, 8)
    blob[:, 0] = -20.0
    blob[:, 0, 3:5, 3:5] = 20.0  # part 0 only on a 2×2 blob
    assert compactness_loss(blob) < compactness_loss(spread)


def test_lor_update_clips():
    c = PartDiscoveryConfig.paper()
    assert lor_update(0.0, 0.0, c) == 0.0  # below the target: stays at lor_min
    assert lor_update(1.0, 4.0, c) == pytest.approx(1.0 + 0.05 * 2.0)
    assert lor_update(7.5, 100.0, c) == 7.5


def test_part_iou_is_invariant_to_relabelling_and_scores_consistency():
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 3, (4, 6, 6), generator=g)
    permuted = torch.tensor([2, 0, 1])[true]  # the same segments under other names
    result = part_iou(permuted, true, 3, 3)
    assert torch.allclose(result.iou, torch.ones(3)) and result.assignment.tolist() == [2, 0, 1]
    # a different naming in every image: perfect per image, not consistent over the set
    per_image = torch.stack([torch.roll(torch.arange(3), i)[t] for i, t in enumerate(true)])
    assert part_iou(per_image, true, 3, 3, per_image=True).mean(slice(None)) == 1.0
    assert part_iou(per_image, true, 3, 3).mean(slice(None)) < 0.6


def test_part_iou_errors_and_figure_labels():
    masks = figures.sample(3, 16, generator=torch.Generator().manual_seed(0)).part_masks
    labels = figure_labels(masks)
    assert labels.shape == (3, 16, 16) and labels.max() == 4
    with pytest.raises(ValueError, match="labels must lie"):
        part_iou(labels, labels, 3, 5)
    with pytest.raises(ValueError, match="bool"):
        figure_labels(masks.float())


def test_kmeans_separates_flat_colours():
    g = torch.Generator().manual_seed(0)
    images = figures.sample(4, 16, generator=g).image
    centroids = colour_kmeans(images[:1].permute(0, 2, 3, 1).reshape(-1, 3), 5, generator=g)
    segments = colour_segments(images[:1], centroids)
    truth = figure_labels(figures.sample(4, 16, generator=torch.Generator().manual_seed(0))
                          .part_masks[:1])  # fmt: skip
    assert part_iou(segments, truth, 5, 5, per_image=True).mean(slice(None)) > 0.99


def test_vgg_likelihood_needs_a_perceptual_loss():
    config = PartDiscoveryConfig.tiny()
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="VGG19FeatureLoss"):
        part_discovery_loss(x, PartDiscovery(config)(x, x), replace(config, likelihood="vgg19"), 0)


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    config = PartDiscoveryConfig.tiny()
    model = PartDiscovery(config)
    view0, view1 = figures.same_appearance_pairs(8, 16, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.5, 0.9))
    losses = []
    for _ in range(30):
        terms = part_discovery_loss(view0.image, model(view0.image, view1.image), config, 0)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        losses.append(float(terms.reconstruction))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_reconstruction_weight_scales_only_the_reconstruction():
    config = PartDiscoveryConfig.tiny()
    torch.manual_seed(0)
    model = PartDiscovery(config).eval()
    x = figures.sample(2, 16, generator=torch.Generator().manual_seed(0)).image
    output = model(x, x.flip(0))
    one = part_discovery_loss(x, output, replace(config, reconstruction_weight=1.0), 0)
    ten = part_discovery_loss(x, output, replace(config, reconstruction_weight=10.0), 0)
    assert torch.equal(one.reconstruction, ten.reconstruction)  # reported unweighted
    assert float(ten.loss - one.loss) == pytest.approx(9 * float(one.reconstruction), rel=1e-5)
    with pytest.raises(ValueError, match="reconstruction_weight"):
        replace(config, reconstruction_weight=0.0)
