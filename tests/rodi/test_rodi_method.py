"""The RoDi method: the ELBO, the MI critic, the Lagrangian and γ updates, training, checkpoints."""

import math
from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.data import figures
from esser_lab.rodi import (
    MIEstimator,
    Posterior,
    RoDi,
    RoDiConfig,
    RoDiOutput,
    appearance_pairs,
    constraint_penalty,
    critic_loss,
    dual_update,
    elbo_loss,
    ema_update,
    gamma_update,
    jitter_appearance,
    mi_logits,
    reconstruct,
    shuffle_pairs,
    transfer,
    transfer_scores,
    transfer_triplets,
)
from esser_lab.rodi.method import at_least
from esser_lab.training import load_checkpoint, save_checkpoint


def pairs(n: int = 8, seed: int = 0):
    return appearance_pairs(n, 16, 0.1, generator=torch.Generator().manual_seed(seed))


def test_elbo_terms_by_hand():
    x = torch.zeros(2, 3, 2, 2)
    mean, logvar = torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)
    mean[0] = 2.0  # KL of image 0 = ½·4 = 2, image 1 = 0 → batch mean 1
    out = RoDiOutput(
        posterior=Posterior(mean, logvar),
        pi=mean,
        alpha=mean,
        image=torch.ones(2, 3, 2, 2),  # Σ (x − x̂)² = 12 per image
        aux_alpha=torch.ones(2, 3, 2, 2),  # ½ · 12
        aux_pi=torch.zeros(2, 3, 2, 2),
    )
    terms = elbo_loss(x, out, gamma=0.5)
    assert (terms.reconstruction.item(), terms.kl.item(), terms.auxiliary.item()) == (12, 1, 6)
    assert terms.loss.item() == pytest.approx(12 + 0.5 * 1 + 6)
    with pytest.raises(ValueError, match="differ"):
        elbo_loss(torch.zeros(2, 3, 4, 4), out, 1.0)


def test_critic_loss_by_hand():
    joint, marginal = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])
    terms = critic_loss(joint, marginal)
    softplus = torch.nn.functional.softplus
    expected = 0.5 * (softplus(-joint) + softplus(marginal)).mean()
    assert torch.allclose(terms.loss, expected)
    assert terms.mi.item() == pytest.approx(0.5)  # mean joint logit
    assert terms.accuracy.item() == pytest.approx(0.5 * (0.5 + 0.0))
    assert torch.equal(shuffle_pairs(torch.arange(4.0)), torch.tensor([3.0, 2.0, 1.0, 0.0]))


def train_critic(dependent: bool, steps: int = 150) -> tuple[float, float]:
    """Train T on (π, α) pairs; return (MI estimate, accuracy) on fresh pairs."""
    torch.manual_seed(0)
    config = replace(RoDiConfig.tiny(), pi_channels=2, alpha_channels=2)
    estimator = MIEstimator(config)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)

    def sample(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = torch.randn(n, 2, 4, 4, generator=g)
        noise = torch.randn(n, 2, 4, 4, generator=g)
        return (alpha + 0.3 * noise if dependent else noise), alpha

    for _ in range(steps):
        loss = critic_loss(*mi_logits(estimator, *sample())).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        terms = critic_loss(*mi_logits(estimator, *sample(512)))
    return terms.mi.item(), terms.accuracy.item()


def test_mi_logits_reuse_branches_and_equal_two_estimator_calls():
    estimator = MIEstimator(replace(RoDiConfig.tiny(), pi_channels=2, alpha_channels=3))
    g = torch.Generator().manual_seed(0)
    pi, alpha = torch.randn(5, 2, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    joint, shuffled = mi_logits(estimator, pi, alpha)
    torch.testing.assert_close(joint, estimator(pi, alpha))
    torch.testing.assert_close(shuffled, estimator(pi, shuffle_pairs(alpha)))
    assert not torch.allclose(joint, shuffled)
    with pytest.raises(ValueError, match="batch sizes differ"):
        estimator.pair_logits(pi, alpha[:4])


def test_transfer_triplets_and_scores():
    test = transfer_triplets(6, 16, seed=3)
    again = transfer_triplets(6, 16, seed=3)
    assert torch.equal(test.truth.image, again.truth.image)
    # the truth has x's pose and y's appearance
    torch.testing.assert_close(test.truth.keypoints, test.x.keypoints)
    torch.testing.assert_close(test.truth.appearance.colours, test.y.appearance.colours)
    model = RoDi(RoDiConfig.tiny()).eval()
    scores = transfer_scores(model, test)
    assert set(scores) == {"transfer", "reconstruction", "leak"}
    out = transfer(model, test.x.image, test.y_view.image)
    assert scores["transfer"] == pytest.approx((out - test.truth.image).pow(2).mean().item())
    assert scores["leak"] == pytest.approx(scores["transfer"] - scores["reconstruction"])


def test_critic_separates_dependent_pairs_and_reads_zero_on_independent_ones():
    mi, accuracy = train_critic(dependent=True)
    assert accuracy > 0.9 and mi > 1.0
    mi, accuracy = train_critic(dependent=False)
    assert abs(mi) < 0.3 and abs(accuracy - 0.5) < 0.1


def test_constraint_penalty_by_hand():
    mi = torch.tensor(0.5, requires_grad=True)
    penalty, c = constraint_penalty(mi, epsilon=0.1, lambda_=0.2, mu=0.1, warm=True)
    assert c.item() == pytest.approx(0.4)
    assert penalty.item() == pytest.approx(0.2 * 0.4 + 0.5 * 0.1 * 0.4**2)
    penalty.backward()
    assert mi.grad.item() == pytest.approx(0.2 + 0.1 * 0.4)  # λ + μc
    # inactive branch: μc + λ < 0 → no penalty
    penalty, c = constraint_penalty(torch.tensor(0.0), 0.1, 0.0, 0.1, warm=True)
    assert penalty.item() == 0.0 and c.item() == pytest.approx(-0.1)
    # warm-up: no penalty at all
    penalty, _ = constraint_penalty(torch.tensor(5.0), 0.1, 1.0, 0.1, warm=False)
    assert penalty.item() == 0.0


def test_dual_and_gamma_updates_by_hand():
    assert dual_update(0.2, 0.4, 0.1, warm=True) == pytest.approx(0.24)
    assert dual_update(0.01, -0.5, 0.1, warm=True) == 0.0  # λ ≥ 0
    assert dual_update(0.2, 0.4, 0.1, warm=False) == 0.2
    assert gamma_update(1.0, 0.5, 0.2, 0.01, 0.01, warm=True) == pytest.approx(1.0029)
    assert gamma_update(0.001, 0.0, 0.5, 0.01, 0.01, warm=True) == 0.0  # γ ≥ 0
    assert gamma_update(1.0, 0.5, 0.2, 0.01, 0.01, warm=False) == 1.0
    # agreeing estimators: γ decays by l_γ · b_γ per step
    assert gamma_update(1.0, 0.3, 0.3, 0.01, 0.01, warm=True) == pytest.approx(0.9999)


def test_ema_is_bias_corrected():
    average, count = ema_update(0.0, 0, 3.0, 0.99)
    assert (average, count) == (pytest.approx(3.0), 1)
    average, count = ema_update(average, count, 1.0, 0.99)
    assert average == pytest.approx((0.99 * 3.0 + 1.0) / 1.99) and count == 2


def _old_updates(buffers: dict, honest: float, attacked: float, constraint: float, warm: bool):
    """The Python-float bookkeeping of ``LitRoDi`` before it moved onto the device, verbatim."""
    c = RoDiConfig.tiny()
    gamma, lambda_ = float(buffers["gamma"]), float(buffers["lambda_"])
    count, decay = int(buffers["ema_count"]), c.ema_decay
    power = decay ** (count + 1)
    honest_avg = ((decay - power) * float(buffers["mi_honest_avg"]) + (1.0 - decay) * honest) / (
        1.0 - power
    )
    attacked_avg = (
        (decay - power) * float(buffers["mi_attacked_avg"]) + (1.0 - decay) * attacked
    ) / (1.0 - power)
    buffers["mi_honest_avg"].fill_(honest_avg)
    buffers["mi_attacked_avg"].fill_(attacked_avg)
    buffers["lambda_"].fill_(max(0.0, lambda_ + c.mu * constraint) if warm else lambda_)
    gap = honest_avg - attacked_avg - c.b_gamma
    buffers["gamma"].fill_(max(0.0, gamma + c.l_gamma * gap) if warm else gamma)
    buffers["ema_count"].fill_(count + 1)
    return honest_avg, attacked_avg


def _new_updates(buffers: dict, honest: torch.Tensor, attacked: torch.Tensor, constraint, warm):
    """The same with the package's functions on float64 tensors, as ``LitRoDi`` does now."""
    c = RoDiConfig.tiny()
    gamma, lambda_ = buffers["gamma"].clone(), buffers["lambda_"].clone()
    count = buffers["ema_count"].double()
    honest_avg, _ = ema_update(
        buffers["mi_honest_avg"].double(), count, honest.double(), c.ema_decay
    )
    attacked_avg, _ = ema_update(
        buffers["mi_attacked_avg"].double(), count, attacked.double(), c.ema_decay
    )
    buffers["mi_honest_avg"].copy_(honest_avg)
    buffers["mi_attacked_avg"].copy_(attacked_avg)
    buffers["lambda_"].copy_(dual_update(lambda_.double(), constraint.double(), c.mu, warm))
    buffers["gamma"].copy_(
        gamma_update(gamma.double(), honest_avg, attacked_avg, c.l_gamma, c.b_gamma, warm)
    )
    buffers["ema_count"].add_(1)
    return honest_avg, attacked_avg


def test_device_updates_give_bitwise_the_python_float_numbers():
    """λ, γ and the running means updated on float64 tensors (no host sync) equal, bit for bit,
    the Python-float code they replaced: 400 steps of random float32 readings, with negative
    values (λ and γ clipped at 0), zeros, NaN and infinities among them."""
    generator = torch.Generator().manual_seed(0)
    readings = torch.randn(400, 3, generator=generator) * torch.tensor([1.0, 1.0, 0.3])
    readings[torch.rand(400, 3, generator=generator) < 0.02] = 0.0
    readings[50, 0], readings[51, 1], readings[52, 2] = float("nan"), float("inf"), float("-inf")

    def buffers() -> dict:
        values = {"gamma": 0.5, "lambda_": 0.1, "mi_attacked_avg": 0.0, "mi_honest_avg": 0.0}
        return {k: torch.tensor(v) for k, v in (values | {"ema_count": 0.0}).items()}

    def same(a: float, b: float) -> bool:  # bitwise, NaN included
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or a != a and b != b

    old, new, clipped = buffers(), buffers(), 0
    for step, (honest, attacked, constraint) in enumerate(readings):
        warm = step >= 20
        if step == 60:  # past the non-finite readings: start again from finite averages
            old, new = buffers(), buffers()
        expected = _old_updates(old, float(honest), float(attacked), float(constraint), warm)
        got = _new_updates(new, honest, attacked, constraint, warm)
        assert all(same(a, b.item()) for a, b in zip(expected, got, strict=True)), step
        for key in old:
            assert same(old[key].item(), new[key].item()), (step, key)
        clipped += warm and old["lambda_"].item() == 0.0
    assert clipped > 10  # the max(0, ·) branch was taken


def test_at_least_is_max_for_floats_and_tensors():
    for value in (-1.0, -0.0, 0.0, 1e-300, 2.5, float("nan"), float("inf"), float("-inf")):
        expected = max(0.0, value)
        got = at_least(0.0, torch.tensor(value, dtype=torch.float64)).item()
        assert math.copysign(1.0, got) == math.copysign(1.0, expected)
        assert got == expected or (math.isnan(got) and math.isnan(expected))
        assert at_least(0.0, value) == expected or math.isnan(value)


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    config = RoDiConfig.tiny()
    model = RoDi(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=config.betas)
    p = pairs(16)
    losses = []
    for _ in range(40):
        terms = elbo_loss(p.image, model(p.image, p.alpha_image), gamma=0.1)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        losses.append(terms.loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_transfer_is_deterministic_and_uses_both_inputs():
    torch.manual_seed(0)
    model = RoDi(RoDiConfig.tiny()).eval()
    p = pairs(4)
    out = transfer(model, p.image, p.alpha_image)
    assert out.shape == (4, 3, 16, 16)
    assert torch.equal(out, reconstruct(model, p.image, p.alpha_image))
    assert not torch.allclose(out, transfer(model, p.image, p.alpha_image.flip(0)))
    assert not torch.allclose(out, transfer(model, p.image.flip(0), p.alpha_image))


def test_pairs_share_appearance_and_jitter_is_bounded():
    exact = appearance_pairs(6, 16, 0.0, generator=torch.Generator().manual_seed(2))
    first, second = figures.same_appearance_pairs(6, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(exact.image, first.image) and torch.equal(exact.alpha_image, second.image)
    appearance = first.appearance
    jittered = jitter_appearance(appearance, 0.1, generator=torch.Generator().manual_seed(0))
    delta = (jittered.colours - appearance.colours).abs()
    assert 0 < delta.max() <= 0.1 + 1e-6 and jittered.colours.abs().max() <= 1
    with pytest.raises(ValueError, match="amount"):
        jitter_appearance(appearance, 2.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="jitter"):
        appearance_pairs(2, 16, -0.1, generator=torch.Generator())


def test_checkpoint_round_trip(tmp_path):
    config = RoDiConfig.tiny()
    model = RoDi(config).eval()
    path = save_checkpoint(model, tmp_path / "rodi.safetensors", asdict(config))
    restored = RoDi(RoDiConfig.tiny()).eval()
    assert RoDiConfig.from_dict(load_checkpoint(restored, path)) == config
    p = pairs(3)
    assert torch.equal(
        transfer(model, p.image, p.alpha_image), transfer(restored, p.image, p.alpha_image)
    )


def test_lit_rodi_trains_and_updates_after_warmup():
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer

    config = replace(RoDiConfig.tiny(), warmup_steps=2, batch_size=8, num_steps=4, gamma_init=0.5)
    data = FigurePairsDataModule(16, 8, num_train=32, num_val=8, jitter=0.1, seed=0)
    torch.manual_seed(0)
    system = LitRoDi(config)
    make_trainer(profile("tiny"), 4, progress_every=2).fit(system, datamodule=data)
    assert len(system.history) == 4 and float(system.ema_count) == 4
    assert float(system.lambda_) >= 0 and float(system.gamma) >= 0
    # λ and γ stay at their initial values during the warm-up (steps 0 and 1)
    assert [h["gamma"] for h in system.history[:3]] == [0.5, 0.5, 0.5]
    assert [h["lambda"] for h in system.history[:3]] == [0.0, 0.0, 0.0]
    assert system.history[3]["gamma"] != 0.5  # updated after step 2
    baseline = LitRoDi(config.fixed(1.0))
    assert baseline.estimator_attacked is None and len(baseline.configure_optimizers()) == 2


def test_fit_rodi_is_seeded_and_returns_eval_mode():
    from esser_lab.rodi.training import FigurePairsDataModule, fit_rodi
    from esser_lab.scale import profile

    config = replace(RoDiConfig.tiny(), warmup_steps=1, batch_size=8, num_steps=3)
    data = FigurePairsDataModule(16, 8, num_train=24, num_val=8, jitter=0.1, seed=0)
    first, second = (fit_rodi(config, data, profile("tiny"), seed=5) for _ in range(2))
    other = fit_rodi(config, data, profile("tiny"), seed=6)
    assert not first.training and len(first.history) == 3
    assert first.history[-1]["loss"] == second.history[-1]["loss"]
    assert first.history[-1]["loss"] != other.history[-1]["loss"]


def test_mimin_keeps_gamma_fixed_and_matches_rodi_during_the_warmup():
    """The official ``MIMin``: RoDi's constraint with γ fixed at γ₀ (no adaptive γ)."""
    from esser_lab.rodi.training import FigurePairsDataModule, fit_rodi
    from esser_lab.scale import profile

    config = replace(RoDiConfig.tiny(), warmup_steps=2, batch_size=8, num_steps=5, gamma_init=0.5)
    data = FigurePairsDataModule(16, 8, num_train=40, num_val=8, jitter=0.1, seed=0)
    mimin_config = config.mimin(0.5)  # γ fixed at RoDi's γ₀: identical through the warm-up
    assert mimin_config.constrained and config.constrained and not config.fixed(1.0).constrained
    assert config.mimin().gamma_init == 1.0  # the official MIMin's kl_weight
    rodi = fit_rodi(config, data, profile("tiny"), seed=1)
    mimin = fit_rodi(mimin_config, data, profile("tiny"), seed=1)
    assert mimin.estimator_attacked is not None and len(mimin.configure_optimizers()) == 3
    assert [h["gamma"] for h in mimin.history] == [0.5] * 5 and float(mimin.gamma) == 0.5
    assert max(h["lambda"] for h in mimin.history) >= 0
    assert float(rodi.gamma) != 0.5  # RoDi's γ moved after the warm-up, MIMin's did not
    # identical until the constraint and the γ update act (steps 0 and 1 are the warm-up)
    for a, b in zip(rodi.history[:3], mimin.history[:3], strict=True):
        assert a["loss"] == b["loss"]
    with pytest.raises(ValueError, match="objective"):
        replace(config, objective="adversarial")


def test_rodi_starts_where_its_ablations_stay_at_every_scale():
    """Official ``RoDi``: ``gamma_init`` defaults to the ELBO's ``kl_weight`` (1.0), which
    ``Elbo`` and ``MIMin`` keep fixed; only the toy's γ step is larger (10×, as its lr)."""
    for config in (RoDiConfig.paper(), RoDiConfig.small(), RoDiConfig.tiny()):
        assert config.gamma_init == config.mimin().gamma_init == 1.0
        assert (config.epsilon, config.mu, config.b_gamma) == (0.1, 0.1, 0.01)
    assert RoDiConfig.paper().l_gamma == RoDiConfig.small().l_gamma == 0.01
    tiny = RoDiConfig.tiny()
    assert tiny.l_gamma == 0.1 and tiny.learning_rate / RoDiConfig.paper().learning_rate == 10
