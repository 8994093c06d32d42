"""The IIN objectives, the dimension estimate, swaps, probes, pair data and the system."""

import math
from dataclasses import replace

import pytest
import torch

from esser_lab.iin import (
    FACTORS,
    FactorTransformer,
    IINConfig,
    estimate_factor_dims,
    factor_nll_loss,
    factor_pairs,
    linear_probe,
    linear_r2,
    plain_sprites,
    probe_gap,
    rerender,
    swap_coordinates,
    swap_factor,
)
from esser_lab.iin.evaluate import mask_colour_error, position_error


def test_factor_nll_matches_the_gaussian_model():
    """(I2) equals −log p(v^a) − log p(v^b | v^a) up to the constants, by torch.distributions."""
    g = torch.Generator().manual_seed(0)
    sizes, rho = (2, 3, 4), 0.9
    v_a = torch.randn(5, 9, generator=g)
    v_b = torch.randn(5, 9, generator=g)
    shared = torch.tensor([0, 1, 0, 1, 1])
    zeros = torch.zeros(5)
    loss, _ = factor_nll_loss(v_a.split(sizes, 1), zeros, v_b.split(sizes, 1), zeros, shared, rho)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = -normal.log_prob(v_a).sum(1)
    for i in range(5):
        start = sum(sizes[: shared[i]])
        mask = torch.zeros(9, dtype=torch.bool)
        mask[start : start + sizes[shared[i]]] = True
        conditional = torch.distributions.Normal(rho * v_a[i, mask], math.sqrt(1 - rho**2))
        expected[i] -= conditional.log_prob(v_b[i, mask]).sum()
        expected[i] -= normal.log_prob(v_b[i, ~mask]).sum()
    constants = 9 * math.log(2 * math.pi) + 0.5 * torch.tensor(
        [sizes[s] * math.log(1 - rho**2) for s in shared]
    )
    assert torch.allclose(loss, (expected - constants).mean(), atol=1e-5)


def test_factor_nll_bad_inputs():
    f = [torch.zeros(2, 2), torch.zeros(2, 2)]
    zeros = torch.zeros(2)
    with pytest.raises(ValueError, match="shared"):
        factor_nll_loss(f, zeros, f, zeros, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="shared"):
        factor_nll_loss(f, zeros, f, zeros, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="rho"):
        factor_nll_loss(f, zeros, f, zeros, torch.tensor([0, 1]), rho=1.5)


def test_estimate_factor_dims():
    """Pairs sharing factor 0 share 3 coordinates exactly: it scores higher than factor 1."""
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    shared = torch.arange(400) % 2
    z_b[shared == 0, :3] = z_a[shared == 0, :3]
    z_b[shared == 1, 3] = z_a[shared == 1, 3]
    estimate = estimate_factor_dims(z_a, z_b, shared, 3)
    assert estimate.scores[0] > estimate.scores[1] > 0 and estimate.scores[2] == 1.0
    assert sum(estimate.dims) == 8 and estimate.dims[0] >= estimate.dims[1]
    with pytest.raises(ValueError):
        estimate_factor_dims(z_a, z_b[:, :4], shared, 3)


def test_swaps():
    config = replace(IINConfig.tiny(), factor_sizes=(3, 3, 10))
    model = FactorTransformer(config)
    g = torch.Generator().manual_seed(0)
    z, z_src = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    model(z)
    model.eval()
    edited = swap_factor(model, z, z_src, 1)
    with torch.no_grad():
        before, after, source = model(z)[0], model(edited)[0], model(z_src)[0]
    assert torch.allclose(after[1], source[1], atol=1e-5)
    assert torch.allclose(after[0], before[0], atol=1e-5)
    assert torch.allclose(after[2], before[2], atol=1e-5)
    assert torch.allclose(swap_factor(model, z, z, 0), z, atol=1e-5)
    raw = swap_coordinates(z, z_src, slice(0, 3))
    assert torch.equal(raw[:, :3], z_src[:, :3]) and torch.equal(raw[:, 3:], z[:, 3:])
    with pytest.raises(ValueError, match="factor"):
        swap_factor(model, z, z_src, 3)


def test_probes_and_gap():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(3, (300,), generator=g)
    informative = torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(300, 3)
    noise = torch.randn(300, 3, generator=g)
    assert linear_probe(informative[:200], labels[:200], informative[200:], labels[200:], 3) > 0.95
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:], 3) < 0.6
    target = informative @ torch.tensor([1.0, -2.0, 0.5])
    assert linear_r2(informative[:200], target[:200], informative[200:], target[200:]) > 0.99
    gaps = probe_gap(torch.tensor([[1.0, 0.0], [0.1, 0.8], [0.2, 0.3]]))
    assert torch.allclose(gaps, torch.tensor([0.8, 0.5]))


def test_pairs_share_exactly_one_named_factor_and_seed_reproduces():
    pairs = factor_pairs(64, 16, generator=torch.Generator().manual_seed(0))
    again = factor_pairs(64, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pairs.second.image, again.second.image)
    colour = pairs.shared == FACTORS.index("colour")
    position = pairs.shared == FACTORS.index("position")
    assert torch.equal(pairs.first.colour[colour], pairs.second.colour[colour])
    assert torch.equal(pairs.first.position[position], pairs.second.position[position])
    assert not torch.equal(pairs.first.position[colour], pairs.second.position[colour])
    assert not torch.equal(pairs.first.shape, pairs.second.shape)


def test_edit_scores_are_zero_on_the_truth():
    test = plain_sprites(16, 16, generator=torch.Generator().manual_seed(0))
    truth = rerender(test, 16, colour=test.colour.roll(1, 0))
    assert mask_colour_error(truth.image, truth).abs().max() < 1e-6
    assert position_error(truth.image, truth).abs().max() < 1e-6
    assert mask_colour_error(test.image, truth).mean() > 0
    with pytest.raises(ValueError, match="unknown"):
        rerender(test, 16, hue=test.colour)


@pytest.mark.filterwarnings("ignore:You are trying to .self.log")
def test_lit_iin_loss_falls_and_is_reproducible():
    from esser_lab.iin.training import LitIIN

    config = replace(IINConfig.tiny(), factor_sizes=(3, 3, 10))
    g = torch.Generator().manual_seed(0)
    batch = {
        "posterior_a": torch.cat([torch.randn(64, 16, generator=g), torch.full((64, 16), -6.0)], 1),
        "posterior_b": torch.cat([torch.randn(64, 16, generator=g), torch.full((64, 16), -6.0)], 1),
        "shared": torch.arange(64) % 2,
    }
    batch["posterior_b"][:, :3] = batch["posterior_a"][:, :3] * 2 + 1

    def run() -> list[float]:
        torch.manual_seed(0)
        system = LitIIN(config)
        optimizer = system.configure_optimizers()["optimizer"]
        losses = []
        for _ in range(40):
            loss = system.training_step(batch, 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    system_losses = run()
    assert system_losses[-1] < system_losses[0] - 1.0
    assert system_losses == run()
    with pytest.raises(ValueError, match="posterior parameters"):
        LitIIN(config).training_step({"posterior": torch.zeros(2, 16)}, 0)


def test_edit_scores_and_pairs_follow_the_device_of_their_inputs():
    """Evaluation on the training device: the scores build no CPU-only tensors and the pairs
    move as one (the meta device stands in for a GPU)."""
    from esser_lab.iin.evaluate import centroid

    test = plain_sprites(4, 16, generator=torch.Generator().manual_seed(0))
    on_meta = test.to("meta")
    assert mask_colour_error(on_meta.image, on_meta).device.type == "meta"
    assert centroid(on_meta.image, test.background[0].tolist()).device.type == "meta"
    pairs = factor_pairs(4, 16, generator=torch.Generator().manual_seed(0)).to("meta")
    assert {pairs.first.image.device.type, pairs.second.colour.device.type} == {"meta"}
    assert pairs.shared.device.type == "meta"
