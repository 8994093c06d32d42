"""Chapter 6's exercise 3 checker: ½‖v‖² under a caption, on a tiny Net2Net."""

from dataclasses import replace

import pytest
import torch

from esser_lab.net2net import AutoencoderExpert, Net2Net, Net2NetConfig, WordEmbeddingEncoder
from esser_lab.net2net.exercises import (
    check_half_norm,
    check_v_statistics,
    half_norm,
    v_statistics,
)
from esser_lab.nn.autoencoder import DenseAutoencoder

VOCABULARY = ["a", "an", "red", "blue", "orange", "circle", "square"]


def setting():
    torch.manual_seed(0)
    config = replace(Net2NetConfig.tiny(), cond_in=8, n_flows=2, hidden_dim=16)
    autoencoder = DenseAutoencoder(in_size=16, in_channels=3, n_down=2, z_dim=16, width=4)
    net = Net2Net(config, WordEmbeddingEncoder(VOCABULARY, 8), AutoencoderExpert(autoencoder))
    c = net.encode_condition(["a red circle", "a blue square", "an orange circle"] * 2)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(1))
    net.flow.train()
    net(z, c)  # data-dependent ActNorm initialisation
    net.flow.eval()
    return net.flow, z, c


def test_the_solution_is_accepted_and_matches_the_hand_computation():
    flow, z, c = setting()
    with torch.no_grad():
        v, _ = flow(z, c)
    by_hand = sum(0.5 * float(row @ row) for row in v) / len(v)
    assert abs(half_norm(flow, z, c) - by_hand) < 1e-5 * by_hand
    assert check_half_norm(flow, z, c, 0.5 * v.pow(2).sum(1).mean().item())


def test_the_typical_mistakes_are_refused_without_the_value():
    flow, z, c = setting()
    exact = half_norm(flow, z, c)
    no_half = check_half_norm(flow, z, c, 2 * exact)
    assert not no_half and "too high" in str(no_half) and f"{exact:.2f}" not in str(no_half)
    mean_over_dims = check_half_norm(flow, z, c, exact / 16)
    assert not mean_over_dims and "too low" in str(mean_over_dims)
    assert "no answer yet" in str(check_half_norm(flow, z, c, None))


def test_the_v_statistics_by_hand_are_accepted_and_a_test_on_the_fitting_half_refused():
    flow, z, c = setting()
    colour = torch.tensor([0, 1, 0, 1, 0, 1])
    with torch.no_grad():
        v, _ = flow(z, c)
    means = torch.stack([v[:3][colour[:3] == k].mean(0) for k in (0, 1)])
    accuracy = (torch.cdist(v[3:], means).argmin(1) == colour[3:]).float().mean().item()
    by_hand = (v.mean().item(), v.std(0).mean().item(), accuracy)
    assert v_statistics(flow, z, c, colour) == pytest.approx(by_hand, abs=1e-6)
    assert check_v_statistics(flow, z, c, colour, by_hand)
    on_fit = (torch.cdist(v[:3], means).argmin(1) == colour[:3]).float().mean().item()
    assert (on_fit, round(accuracy, 3)) == (1.0, 0.333)  # this seed: the fitting half is easy
    wrong = check_v_statistics(flow, z, c, colour, (*by_hand[:2], on_fit))
    assert not wrong and "colour accuracy" in str(wrong) and "0.33" not in str(wrong)
    pooled_std = check_v_statistics(flow, z, c, colour, (by_hand[0], v.std().item(), accuracy))
    assert not pooled_std and "std per dimension" in str(pooled_std)  # one std over all entries
    assert "no answer yet" in str(check_v_statistics(flow, z, c, colour, None))
