"""Multinomial diffusion (chapter 13): schedules, forward process, posterior, loss."""

from __future__ import annotations

import itertools

import pytest
import torch

from esser_lab.diffusion import (
    MultinomialSchedule,
    forward_chain,
    multinomial_loss,
    multinomial_posterior,
    q_step,
    q_xt_probs,
    q_xt_sample,
)


def test_geometric_schedule_endpoints() -> None:
    s = MultinomialSchedule.geometric(4)
    assert s.T == 4
    torch.testing.assert_close(
        s.betas, torch.tensor([0, 1 / 4, 1 / 3, 1 / 2, 1], dtype=torch.float64)
    )
    # ᾱ_t = 1 − t / T: data at t = 0, pure noise at t = T
    torch.testing.assert_close(s.alphacum, 1 - torch.arange(5, dtype=torch.float64) / 4)


def test_alphacum_schedule_round_trip() -> None:
    values = [1.0, 0.9, 0.5, 0.1, 0.0]
    s = MultinomialSchedule.from_alphacum(values)
    torch.testing.assert_close(s.alphacum, torch.tensor(values, dtype=torch.float64))
    assert float(s.betas[0]) == 0.0 and float(s.betas[-1]) == 1.0


@pytest.mark.parametrize(
    "bad",
    [[0.9, 0.5], [1.0, 0.5, 0.7], [1.0]],
)
def test_alphacum_refuses_bad_lists(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="alphacum"):
        MultinomialSchedule.from_alphacum(bad)


def test_schedule_refuses_bad_betas() -> None:
    with pytest.raises(ValueError, match="β_0"):
        MultinomialSchedule(torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MultinomialSchedule(torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match="T must"):
        MultinomialSchedule.geometric(0)


def _one_step_matrix(beta: float, k: int) -> torch.Tensor:
    return (1 - beta) * torch.eye(k, dtype=torch.float64) + beta / k


def test_closed_form_equals_composed_steps() -> None:
    k, s = 5, MultinomialSchedule.from_alphacum([1.0, 0.8, 0.3, 0.05])
    x0 = torch.arange(k)
    composed = torch.eye(k, dtype=torch.float64)
    for t in range(1, s.T + 1):
        composed = composed @ _one_step_matrix(float(s.betas[t]), k)  # rows: x_0, columns: x_t
        torch.testing.assert_close(q_xt_probs(x0, t, s, k).double(), composed, atol=1e-6, rtol=0)


def test_posterior_against_brute_force_bayes() -> None:
    k, s = 4, MultinomialSchedule.geometric(3)
    for t in range(1, s.T + 1):
        step = _one_step_matrix(float(s.betas[t]), k)  # q(x_t | x_{t−1})
        prior = q_xt_probs(torch.arange(k), t - 1, s, k).double()  # q(x_{t−1} | x_0), rows x_0
        for x0, xt in itertools.product(range(k), range(k)):
            joint = prior[x0] * step[:, xt]  # over x_{t−1}
            expected = joint / joint.sum()
            got = multinomial_posterior(torch.tensor([xt]), torch.tensor([x0]), t, s, k)[0]
            torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=0)


def test_posterior_per_sample_scales() -> None:
    k, s = 6, MultinomialSchedule.geometric(4)
    x0, xt = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 5], [0, 4]])
    t = torch.tensor([1, 3])
    batched = multinomial_posterior(xt, x0, t, s, k)
    for i in range(2):
        single = multinomial_posterior(xt[i : i + 1], x0[i : i + 1], int(t[i]), s, k)
        torch.testing.assert_close(batched[i : i + 1], single)
    torch.testing.assert_close(batched.sum(-1), torch.ones(2, 2))
    # t = 1: x_{t−1} = x_0 exactly
    one = multinomial_posterior(xt, x0, 1, s, k)
    assert torch.equal(one.argmax(-1), x0) and torch.allclose(one.max(-1).values, torch.ones(2, 2))


def test_forward_chain_statistics_match_closed_form() -> None:
    k, s = 4, MultinomialSchedule.geometric(3)
    x0 = torch.zeros(20_000, dtype=torch.long)
    chain = forward_chain(x0, s, k, torch.Generator().manual_seed(0))
    assert chain.shape == (4, 20_000) and torch.equal(chain[0], x0)
    for t in range(1, 4):
        empirical = torch.bincount(chain[t], minlength=k).double() / x0.numel()
        one_shot = q_xt_sample(x0, t, s, k, torch.Generator().manual_seed(t))
        shot = torch.bincount(one_shot, minlength=k).double() / x0.numel()
        expected = q_xt_probs(x0[:1], t, s, k)[0].double()
        torch.testing.assert_close(empirical, expected, atol=0.015, rtol=0)
        torch.testing.assert_close(shot, expected, atol=0.015, rtol=0)
    # β_T = 1: the last scale is uniform whatever x_0
    assert chain[3].float().std() > 1.0


def test_q_step_deterministic_and_checked() -> None:
    x = torch.randint(0, 8, (3, 5), generator=torch.Generator().manual_seed(0))
    a = q_step(x, 0.5, 8, torch.Generator().manual_seed(1))
    b = q_step(x, 0.5, 8, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(q_step(x, 0.0, 8, torch.Generator()), x)
    with pytest.raises(TypeError, match="integer"):
        q_step(x.float(), 0.5, 8)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        q_step(x, 0.5, 4)
    with pytest.raises(ValueError, match="beta"):
        q_step(x, 1.5, 8)


def test_posterior_bad_inputs() -> None:
    s = MultinomialSchedule.geometric(2)
    x = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="t ≥ 1"):
        multinomial_posterior(x, x, 0, s, 4)
    with pytest.raises(ValueError, match="one shape"):
        multinomial_posterior(x, x[:, :2], 1, s, 4)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        q_xt_probs(x, 3, s, 4)
    with pytest.raises(ValueError, match=r"\(b,\)"):
        q_xt_probs(x, torch.tensor([1]), s, 4)


def test_loss_mixes_soft_and_hard() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=g)
    target = torch.randint(0, 5, (2, 3), generator=g)
    posterior = torch.softmax(torch.randn(2, 3, 5, generator=g), -1)
    log_p = torch.log_softmax(logits, -1)
    ce = -log_p.gather(-1, target[..., None]).squeeze(-1).mean()
    kl = (posterior * (posterior.log() - log_p)).sum(-1).mean()
    torch.testing.assert_close(multinomial_loss(logits, target, posterior, 0.0), ce)
    torch.testing.assert_close(multinomial_loss(logits, target, posterior, 1.0), kl)
    torch.testing.assert_close(
        multinomial_loss(logits, target, posterior, 0.25), 0.25 * kl + 0.75 * ce
    )
    per_sample = multinomial_loss(logits, target, posterior, torch.tensor([0.0, 1.0]))
    by_hand = 0.5 * (
        -log_p[0].gather(-1, target[0][:, None]).mean()
        + (posterior[1] * (posterior[1].log() - log_p[1])).sum(-1).mean()
    )
    torch.testing.assert_close(per_sample, by_hand)
    with pytest.raises(ValueError, match="alpha"):
        multinomial_loss(logits, target, posterior, 1.5)
    with pytest.raises(ValueError, match=r"logits \(b, l, K\)"):
        multinomial_loss(logits[0], target, posterior, 0.0)
