"""The RoDi networks at tiny size, the paper configuration's sizes, and input checks."""

import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.losses.kl import gaussian_kl
from esser_lab.rodi import MIEstimator, Posterior, RoDi, RoDiConfig


def images(config: RoDiConfig, b: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = config.image_size
    return torch.rand(b, 3, s, s, generator=g) * 2 - 1, torch.rand(b, 3, s, s, generator=g) * 2 - 1


def test_paper_configuration():
    c = RoDiConfig.paper()
    assert c.encoder_channels() == [16, 32, 128, 256, 256]  # the official growth rule
    assert c.decoder_channels() == [256, 128, 64, 32, 16]
    assert (c.image_size, c.latent_size, c.pi_channels, c.alpha_channels) == (64, 4, 16, 16)
    assert (c.epsilon, c.mu, c.l_gamma, c.b_gamma, c.warmup_steps) == (0.1, 0.1, 0.01, 0.01, 1000)
    assert (c.estimator_width, c.estimator_lr_factor, c.betas) == (512, 2.0, (0.5, 0.9))
    assert (c.learning_rate, c.batch_size, c.gamma_init) == (2e-4, 16, 1.0)


def test_paper_model_shapes():
    config = RoDiConfig.paper()
    model = RoDi(config).eval()
    x, x_alpha = images(config, b=1)
    with torch.no_grad():
        out = model(x, x_alpha)
    assert out.posterior.mean.shape == out.posterior.logvar.shape == (1, 16, 4, 4)
    assert out.alpha.shape == (1, 16, 4, 4) and out.pi.shape == (1, 16, 4, 4)
    assert out.image.shape == out.aux_alpha.shape == out.aux_pi.shape == (1, 3, 64, 64)
    logits = MIEstimator(config)(out.pi, out.alpha)
    assert logits.shape == (1,)


def test_tiny_shapes_and_presets_only_shrink():
    config = RoDiConfig.tiny()
    out = RoDi(config)(*images(config))
    assert out.image.shape == (3, 3, 16, 16)
    assert out.posterior.mean.shape == (3, config.pi_channels, 4, 4)
    assert MIEstimator(config)(out.pi, out.alpha).shape == (3,)
    paper = RoDiConfig.paper()
    for preset in (RoDiConfig.small(), config):
        assert (preset.mu, preset.b_gamma, preset.gamma_init) == (paper.mu, 0.01, paper.gamma_init)
        assert preset.objective == "rodi" and preset.betas == paper.betas
    # tiny: γ's step 10× the official, as its learning rate (400 steps instead of 100k)
    assert (RoDiConfig.small().l_gamma, config.l_gamma) == (paper.l_gamma, 10 * paper.l_gamma)


def test_kl_against_closed_form():
    mean = torch.tensor([[[[0.5]], [[-1.0]]]])  # (1, 2, 1, 1)
    logvar = torch.tensor([[[[0.0]], [[torch.log(torch.tensor(0.25))]]]])
    posterior = Posterior(mean, logvar)
    # ½ Σ (μ² + σ² − 1 − log σ²)
    by_hand = 0.5 * ((0.25 + 1 - 1 - 0) + (1.0 + 0.25 - 1 - torch.log(torch.tensor(0.25))))
    assert torch.allclose(posterior.kl(), by_hand.reshape(1))
    zeros = torch.zeros_like(mean)
    assert torch.allclose(posterior.kl(), gaussian_kl(mean, logvar, zeros, zeros))
    assert torch.allclose(Posterior(zeros, zeros).kl(), torch.zeros(1))


def test_posterior_samples_are_seeded():
    p = Posterior(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))
    a = p.sample(torch.Generator().manual_seed(3))
    assert torch.equal(a, p.sample(torch.Generator().manual_seed(3)))
    assert not torch.equal(a, p.sample(torch.Generator().manual_seed(4)))


def test_same_seed_same_model_and_output():
    config = RoDiConfig.tiny()
    torch.manual_seed(0)
    a = RoDi(config)
    torch.manual_seed(0)
    b = RoDi(config)
    x, x_alpha = images(config)
    out_a = a(x, x_alpha, generator=torch.Generator().manual_seed(1))
    out_b = b(x, x_alpha, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out_a.image, out_b.image)


@pytest.mark.parametrize(
    "shape_x, shape_alpha, match",
    [
        ((2, 3, 32, 32), (2, 3, 16, 16), r"x must have shape \(b, 3, 16, 16\)"),
        ((2, 1, 16, 16), (2, 3, 16, 16), "x must have shape"),
        ((2, 3, 16, 16), (2, 3, 16), "x_alpha must have shape"),
        ((2, 3, 16, 16), (3, 3, 16, 16), "batch sizes differ"),
    ],
)
def test_bad_inputs_are_named(shape_x, shape_alpha, match):
    model = RoDi(RoDiConfig.tiny())
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape_x), torch.zeros(shape_alpha))


def test_integer_input_is_rejected():
    model = RoDi(RoDiConfig.tiny())
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2, 3, 16, 16))


def test_estimator_batch_mismatch():
    config = RoDiConfig.tiny()
    with pytest.raises(ValueError, match="batch sizes differ"):
        MIEstimator(config)(torch.zeros(2, 8, 4, 4), torch.zeros(3, 8, 4, 4))


def test_config_validation_and_unknown_fields():
    with pytest.raises(ValueError, match="unknown RoDiConfig field"):
        RoDiConfig.from_dict({"image_size": 16, "epsilo": 0.1})
    with pytest.raises(ValueError, match="multiple of"):
        RoDiConfig(image_size=24)
    with pytest.raises(ValueError, match="objective"):
        replace(RoDiConfig.tiny(), objective="beta")
    with pytest.raises(ValueError, match="mu > 0"):
        replace(RoDiConfig.tiny(), mu=0.0)
    tiny = RoDiConfig.tiny()
    assert RoDiConfig.from_dict(asdict(tiny)) == tiny
    baseline = tiny.fixed(1.0)
    assert (baseline.objective, baseline.gamma_init) == ("fixed", 1.0)


def test_model_modules_do_not_import_lightning():
    code = (
        "import sys, esser_lab.rodi.model, esser_lab.rodi.method, esser_lab.rodi; "
        "print('lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
