"""Chapter 6's claims: the conditional Gaussian baseline, the scores and the card they fill."""

import math

import pytest
import torch
from torch import nn

from esser_lab.cards import Card
from esser_lab.metrics.fid import FeatureNet
from esser_lab.net2net.baselines import GaussianTranslator
from esser_lab.net2net.claims import KEYS, SANITY_KEYS, file_claims
from esser_lab.net2net.evaluate import (
    caption_fd,
    diversity_gap,
    every_caption,
    within_caption_diversity,
)


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return c @ self.weight


def gaussian_data(n: int = 4000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 4, generator=g)
    scale_tril = torch.tensor(
        [[1.0, 0, 0, 0], [0.5, 0.8, 0, 0], [0.0, -0.3, 0.6, 0], [0.2, 0.1, 0.0, 0.4]]
    )
    c = torch.randn(n, 3, generator=g)
    z = c @ weight + torch.randn(n, 4, generator=g) @ scale_tril.T
    return Linear(weight), scale_tril, z, c


def test_gaussian_translator_recovers_the_residual_covariance_and_its_density():
    mean, scale_tril, z, c = gaussian_data()
    model = GaussianTranslator.fit(mean, z, c)
    assert torch.allclose(
        model.scale_tril @ model.scale_tril.T, scale_tril @ scale_tril.T, atol=0.06
    )
    reference = torch.distributions.MultivariateNormal(mean(c), scale_tril=model.scale_tril)
    assert model.nll_per_dim(z, c) == pytest.approx(-reference.log_prob(z).mean().item() / 4)


def test_gaussian_translator_samples_spread_and_shift_keeps_the_residual():
    mean, _, z, c = gaussian_data(n=500)
    model = GaussianTranslator.fit(mean, z, c)
    one = c[:1].expand(2000, -1)
    draws = model.sample(one, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(draws.mean(0), mean(c[:1])[0], atol=0.1)
    assert draws.std(0).min() > 0.2
    shifted = model.shift(z, c, c.flip(0))
    assert torch.allclose(shifted - mean(c.flip(0)), z - mean(c), atol=1e-5)
    with pytest.raises(ValueError, match="equal shapes"):
        model.shift(z, c, c[:3])
    with pytest.raises(ValueError, match="more than 4 codes"):
        GaussianTranslator.fit(mean, z[:4], c[:4])


def test_gaussian_translator_moves_its_mean_and_covariance_together():
    _, _, z, c = gaussian_data(n=200)
    mean = nn.Linear(3, 4)
    model = GaussianTranslator.fit(mean, z, c)
    cpu_factor = model.scale_tril
    moved = model.to("meta")  # a device without data: where the tensors are is all it checks
    assert moved.scale_tril.device.type == "meta" and moved.mean.weight.device.type == "meta"
    assert moved.mean is mean  # moved in place, as nn.Module.to
    assert model.scale_tril is cpu_factor and cpu_factor.device.type == "cpu"


def test_every_caption_groups_the_48_captions():
    real = every_caption(3, 16, generator=torch.Generator().manual_seed(0))
    assert real.image.shape == (144, 3, 16, 16)
    assert len(set(real.caption)) == 48
    assert all(len(set(real.caption[i : i + 3])) == 1 for i in range(0, 144, 3))


def test_diversity_scores_tell_narrow_wide_and_matching_samples_apart():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(48 * 8, 3, 4, 4, generator=g)
    same_spread = torch.randn(48 * 8, 3, 4, 4, generator=g)
    assert diversity_gap(real, real, 8) == 0
    assert diversity_gap(same_spread, real, 8) < 0.1
    assert diversity_gap(0.5 * same_spread, real, 8) > diversity_gap(same_spread, real, 8)
    assert diversity_gap(2 * same_spread, real, 8) > diversity_gap(same_spread, real, 8)
    constant = real.reshape(48, 8, -1).mean(1, keepdim=True).expand(-1, 8, -1)
    assert within_caption_diversity(constant.reshape(real.shape), 8).max() == 0
    assert diversity_gap(constant.reshape(real.shape), real, 8) > 5
    with pytest.raises(ValueError, match="groups of 8"):
        within_caption_diversity(real[:-1], 8)


def test_caption_fd_is_zero_for_the_same_images_and_grows_for_other_ones():
    torch.manual_seed(0)
    net = FeatureNet().eval()
    real = every_caption(4, 16, generator=torch.Generator().manual_seed(0)).image[:40]
    other = every_caption(4, 16, generator=torch.Generator().manual_seed(1)).image[:40]
    assert caption_fd(real, real, 4, net) == pytest.approx(0, abs=1e-6)
    assert caption_fd(other.flip(0), real, 4, net) > caption_fd(real, real, 4, net)


def scores(net_fd=5.0, gauss_fd=8.0, net_gap=0.2, gauss_gap=0.3, shift=(0.1, 0.15, 0.3)):
    samples = {
        "Net2Net": {"fd": net_fd, "gap": net_gap, "diversity": 0.2, "both": 0.5},
        "conditional Gaussian": {"fd": gauss_fd, "gap": gauss_gap, "diversity": 0.25, "both": 0.4},
        "regression": {"fd": 11.0, "gap": 12.0, "diversity": 0.0, "both": 0.7},
        "Θ alone": {"fd": None, "gap": 0.6, "diversity": 0.5, "both": 0.02},
    }
    edits = dict(zip(("Net2Net", "conditional Gaussian", "regression"), shift, strict=True))
    return samples, edits, {"Net2Net": 1.8, "conditional Gaussian": 2.5}


def card() -> Card:
    return Card("06_net2net", "tiny", 0, 0.0, seeds_file=None)


def test_file_claims_files_every_key_in_the_claimed_direction():
    filled = file_claims(card(), *scores(), per_caption=64)
    assert [c.key for c in filled.claims] == [*KEYS, *SANITY_KEYS]
    assert all(c.holds for c in filled.claims)
    assert {c.key for c in filled.claims if c.kind == "sanity"} == set(SANITY_KEYS)
    assert all(c.better == "lower" for c in filled.claims if c.key in KEYS)
    assert filled["text-to-image"].margin == pytest.approx(3.0)


def test_a_baseline_that_wins_makes_the_claim_fail():
    samples, edits, nll = scores(net_fd=9.0, net_gap=0.4, shift=(0.2, 0.15, 0.3))
    nll = {"Net2Net": 2.6, "conditional Gaussian": 2.5}
    filled = file_claims(card(), samples, edits, nll, per_caption=64)
    assert not any(filled[key].holds for key in KEYS)
    assert filled["shift-regression"].holds


def test_file_claims_names_what_is_missing():
    samples, edits, nll = scores()
    del samples["conditional Gaussian"]
    with pytest.raises(KeyError, match="conditional Gaussian"):
        file_claims(card(), samples, edits, nll, per_caption=64)
    samples, edits, nll = scores()
    del samples["Net2Net"]["gap"]
    with pytest.raises(KeyError, match="gap"):
        file_claims(card(), samples, edits, nll, per_caption=64)
    assert math.isfinite(file_claims(card(), *scores(), per_caption=64)["nll"].margin)
