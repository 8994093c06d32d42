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


def test_device_updates_give_bitwise_the_python_float_numbers():
    """loa, lor and e^lor computed on float64 tensors (no host sync), as ``LitPartDiscovery``
    now does, equal bit for bit the Python-float code they replaced, over 400 random steps that
    hit both of lor's clips and loa's clip at 0 (NaN and infinities included)."""
    from esser_lab.rodi.method import dual_update

    c = PartDiscoveryConfig.tiny()
    generator = torch.Generator().manual_seed(0)
    readings = torch.randn(400, 2, generator=generator) * torch.tensor([0.3, 40.0]) + 2.0
    readings[100, 1], readings[101, 0], readings[102, 1] = float("nan"), float("inf"), -1e30
    kl = torch.rand(400, generator=generator) * 10

    def same(a: float, b: float) -> bool:  # bitwise, NaN included
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or a != a and b != b

    old = {"loa": torch.tensor(float(c.loa_init)), "lor": torch.tensor(float(c.lor_init))}
    new = {k: v.clone() for k, v in old.items()}
    seen = set()
    for step, (gain, mi_independent) in enumerate(readings):
        if step == 110:  # past the non-finite readings
            old = {k: torch.tensor(0.5) for k in old}
            new = {k: v.clone() for k, v in old.items()}
        # the weight e^lor of kl_pi: math.exp then, torch.exp in float64 now, cast to kl's dtype
        assert torch.equal(
            math.exp(float(old["lor"])) * kl[step],
            torch.exp(new["lor"].double()).to(kl.dtype) * kl[step],
        ) or math.isnan(float(old["lor"]))
        # the updates: verbatim the old code, then the package's functions on tensors
        loa, lor = float(old["loa"]), float(old["lor"])
        old["loa"].fill_(max(0.0, loa + c.loa_lr * float(gain)))
        value = lor + c.lor_lr * (float(mi_independent) - c.mi_target)
        old["lor"].fill_(min(max(value, c.lor_min), c.lor_max))
        new["loa"].copy_(dual_update(new["loa"].double(), gain.double(), c.loa_lr, True))
        new["lor"].copy_(lor_update(new["lor"].double(), mi_independent.double(), c))
        for key in old:
            assert same(old[key].item(), new[key].item()), (step, key)
        seen |= {old["lor"].item(), old["loa"].item()} & {c.lor_min, c.lor_max, 0.0}
    assert seen == {c.lor_min, c.lor_max, 0.0}  # every clip was taken
    assert lor_update(torch.tensor(1.0, dtype=torch.float64), 4.0, c).item() == lor_update(
        1.0, 4.0, c
    )


def test_the_float32_weight_e_to_the_lor_is_math_exp_s():
    """torch's float64 exp (vectorised, within 1 ulp) differs from ``math.exp`` in the last bit of
    about 0.5% of doubles, but the loss uses e^lor rounded to float32 (as a Python scalar times a
    float32 tensor was), and that rounding agrees: 10⁵ float32 lor values over [lor_min, lor_max]
    (10⁶ checked by hand, none differ; a differing float32 needs a double within 1 ulp of a float32
    tie, odds about 1 in 10⁹ per value)."""
    c = PartDiscoveryConfig.tiny()
    lor = torch.rand(100_000, generator=torch.Generator().manual_seed(1)) * c.lor_max
    expected = torch.tensor([math.exp(v) for v in lor.tolist()], dtype=torch.float64).float()
    assert torch.equal(torch.exp(lor.double()).float(), expected)
