"""First stages: DDConfig, AutoencoderKL (shapes, posterior, key layout), FirstStage."""

import math
from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.nn.autoencoder import DiagonalGaussian
from esser_lab.nn.first_stage import (
    AutoencoderKL,
    AutoencoderKLConfig,
    DDConfig,
    FirstStage,
)
from esser_lab.taming.model import VQGANConfig, VQModel, VQModelConfig


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_kl_autoencoder_shapes_at_every_factor(factor):
    torch.manual_seed(0)
    config = AutoencoderKLConfig.tiny(factor)
    assert config.factor == factor and len(config.ddconfig.ch_mult) == int(math.log2(factor)) + 1
    model = AutoencoderKL(config).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    posterior = model.encode(x)
    side = 16 // factor
    assert posterior.mean.shape == posterior.logvar.shape == (2, 4, side, side)
    z = posterior.sample(torch.Generator().manual_seed(1))
    assert model.decode(z).shape == (2, 3, 16, 16)
    x_hat, _ = model(x, sample_posterior=False)
    assert torch.allclose(x_hat, model.decode(posterior.mode()))
    assert model.latent_channels == 4 and model.factor == factor


def test_kl_f8_key_layout_is_the_official_one():
    with torch.device("meta"):
        model = AutoencoderKL(AutoencoderKLConfig.kl_f8())
    state = model.state_dict()
    assert len(state) == 248  # 304 in the released file, less its 56 loss.* tensors
    assert sum(k.startswith("encoder.") for k in state) == 106
    assert sum(k.startswith("decoder.") for k in state) == 138
    assert state["quant_conv.weight"].shape == (8, 8, 1, 1)
    assert state["post_quant_conv.weight"].shape == (4, 4, 1, 1)
    assert state["encoder.conv_out.weight"].shape == (8, 512, 3, 3)
    assert state["decoder.conv_in.weight"].shape == (512, 4, 3, 3)
    assert state["encoder.down.1.block.0.nin_shortcut.weight"].shape == (256, 128, 1, 1)
    assert "encoder.down.2.downsample.conv.weight" in state
    assert "encoder.down.3.downsample.conv.weight" not in state  # the last level keeps its size
    assert "decoder.up.3.upsample.conv.weight" in state  # up.0 is the highest resolution
    assert not any(k.startswith("decoder.up.0.upsample") for k in state)


def test_released_presets():
    f4, f8, f16, f32 = (getattr(AutoencoderKLConfig, f"kl_f{f}")() for f in (4, 8, 16, 32))
    assert [c.factor for c in (f4, f8, f16, f32)] == [4, 8, 16, 32]
    assert [c.embed_dim for c in (f4, f8, f16, f32)] == [3, 4, 16, 64]
    assert f16.ddconfig.attn_resolutions == (16,) and f32.ddconfig.attn_resolutions == (16, 8)
    assert AutoencoderKLConfig.paper() == f8 == AutoencoderKLConfig()
    vq4, vq8 = VQModelConfig.vq_f4(), VQModelConfig.vq_f8()
    assert (vq4.factor, vq4.embed_dim, vq4.n_embed) == (4, 3, 8192)
    assert (vq8.factor, vq8.embed_dim, vq8.n_embed, vq8.ddconfig.attn_resolutions) == (
        8, 4, 16384, (32,),
    )  # fmt: skip
    assert VQModelConfig.vq_f8(256).n_embed == 256
    assert VQModelConfig.paper(16384) == VQGANConfig.paper(16384).architecture


def test_diagonal_gaussian_against_hand_formulas():
    mean = torch.tensor([[0.5, -1.0], [2.0, 0.0]]).view(2, 2, 1, 1)
    logvar = torch.tensor([[0.0, math.log(4.0)], [-2.0, 1.0]]).view(2, 2, 1, 1)
    posterior = DiagonalGaussian(torch.cat([mean, logvar], 1), logvar_range=(-30.0, 20.0))
    assert torch.equal(posterior.mode(), mean)
    noise = torch.randn(2, 2, 1, 1, generator=torch.Generator().manual_seed(5))
    sample = posterior.sample(torch.Generator().manual_seed(5))
    assert torch.allclose(sample, mean + (0.5 * logvar).exp() * noise)
    # KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²), summed over c, h, w
    kl = [0.5 * ((0.25 + 1 - 1 - 0) + (1 + 4 - 1 - math.log(4.0)))]
    kl += [0.5 * ((4 + math.exp(-2) - 1 + 2) + (0 + math.e - 1 - 1))]
    assert torch.allclose(posterior.kl(), torch.tensor(kl))
    # −log q(s) = ½ Σ (log 2π + log σ² + (s − μ)² / σ²)
    s = torch.zeros_like(mean)
    nll = [0.5 * (2 * math.log(2 * math.pi) + math.log(4) + 0.25 + 1 / 4)]
    nll += [0.5 * (2 * math.log(2 * math.pi) - 2 + 1 + 4 / math.exp(-2) + 0)]
    assert torch.allclose(posterior.nll(s), torch.tensor(nll))
    normal = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    assert torch.allclose(posterior.nll(sample), -normal.log_prob(sample).flatten(1).sum(1))


def test_logvar_clamp_and_its_range():
    params = torch.tensor([0.0, 0.0, 50.0, -50.0]).view(1, 4, 1, 1)
    kl_range = DiagonalGaussian(params, logvar_range=(-30.0, 20.0)).logvar.flatten().tolist()
    assert kl_range == [20.0, -30.0]  # latent diffusion's DiagonalGaussianDistribution
    assert DiagonalGaussian(params).logvar.flatten().tolist() == [10.0, -30.0]  # chapters 5–9
    model = AutoencoderKL(AutoencoderKLConfig.tiny(2)).eval()
    with torch.no_grad():
        model.quant_conv.bias[4:] = 1e4  # the log-variance half: far beyond the clamp
    with torch.no_grad():
        assert float(model.encode(torch.zeros(1, 3, 16, 16)).logvar.min()) == 20.0
    with pytest.raises(ValueError, match="low < high"):
        DiagonalGaussian(params, logvar_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="mean and log-variance halves"):
        DiagonalGaussian(torch.zeros(2, 3))


def test_first_stage_protocol_for_kl_and_vq():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    kl = AutoencoderKL(AutoencoderKLConfig.tiny(4)).eval()
    vq = VQModel(VQGANConfig.tiny()).eval()
    assert isinstance(kl, FirstStage) and isinstance(vq, FirstStage)
    with torch.no_grad():
        a = kl.encode_latent(x, generator=torch.Generator().manual_seed(3))
        b = kl.encode_latent(x, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and a.shape == (2, 4, 4, 4)
        assert torch.equal(kl.encode_latent(x, sample=False), kl.encode(x).mode())
        assert torch.equal(kl.decode_latent(a), kl.decode(a))
        z = vq.encode_latent(x)  # before quantisation, as LDM's VQModelInterface
        q = vq.encode(x)
        assert z.shape == q.z_q.shape == (2, 8, 8, 8) and not torch.equal(z, q.z_q)
        assert torch.equal(vq.decode_latent(z), vq.decode_code(q.indices))  # quantised first
        assert torch.allclose(vq.decode_latent(z), vq(x)[0], atol=1e-5)
        assert torch.equal(vq.decode_latent(z + 1e-4), vq.decode_latent(z))


def test_configs_round_trip_and_refuse_what_does_not_build():
    kl = AutoencoderKLConfig.tiny(2)
    assert AutoencoderKLConfig.from_dict(asdict(kl)) == kl
    vq = VQModelConfig.vq_f4()
    assert VQModelConfig.from_dict(asdict(vq)) == vq
    tiny = VQGANConfig.tiny()
    assert tiny.ddconfig.factor == tiny.factor and not tiny.ddconfig.double_z
    assert (
        tiny.loss.disc_start == tiny.disc_start
        and tiny.optimizer.learning_rate == pytest.approx(tiny.learning_rate)
    )
    with pytest.raises(ValueError, match="double_z=True"):
        AutoencoderKLConfig(ddconfig=replace(kl.ddconfig, double_z=False))
    with pytest.raises(ValueError, match="double_z=False"):
        VQModelConfig(ddconfig=kl.ddconfig)
    with pytest.raises(ValueError, match="multiple of 32"):
        DDConfig(ch=48)
    with pytest.raises(ValueError, match="multiple of the down-sampling factor 8"):
        DDConfig(resolution=20)
    with pytest.raises(ValueError, match="num_res_blocks must be ≥ 1"):
        DDConfig(num_res_blocks=0)
    with pytest.raises(TypeError, match=r"DDConfig\.ch_mult must be tuple"):
        DDConfig(ch_mult=[1, 2])
    with pytest.raises(ValueError, match="f ∈"):
        AutoencoderKLConfig.tiny(3)
    with pytest.raises(TypeError, match="AutoencoderKLConfig"):
        AutoencoderKL(kl.ddconfig)
    with pytest.raises(TypeError, match="VQModelConfig or a VQGANConfig"):
        VQModel(kl)
    model = AutoencoderKL(kl)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, h, w\)"):
        model.encode(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiples of the down-sampling factor 2"):
        model.encode(torch.zeros(1, 3, 15, 15))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 4, h, w\)"):
        model.decode(torch.zeros(1, 3, 8, 8))
