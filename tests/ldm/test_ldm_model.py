"""The latent-diffusion system: official key layout, scale_by_std, L_simple, sampling, guidance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from esser_lab.ldm.method import ldm_loss, sample_images, sample_latents
from esser_lab.ldm.model import IdentityFirstStage, LatentDiffusion, LDMConfig
from esser_lab.ldm.training import LitLatentDiffusion
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig


def _ldm(**changes) -> LatentDiffusion:
    torch.manual_seed(0)
    config = replace(LDMConfig.tiny(), **changes)
    return LatentDiffusion(config, AutoencoderKL(AutoencoderKLConfig.tiny(2)))


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.arange(n) % 10


def test_state_dict_has_the_official_prefixes():
    keys = set(_ldm().state_dict())
    assert any(k.startswith("model.diffusion_model.input_blocks.0.0.") for k in keys)
    assert any(k.startswith("first_stage_model.encoder.") for k in keys)
    assert "cond_stage_model.embedding.weight" in keys
    assert {"model_ema.decay", "model_ema.num_updates", "scale_factor", "betas"} <= keys
    assert "model_ema.diffusion_modelinput_blocks00weight" in keys
    no_std = set(_ldm(scale_by_std=False).state_dict())
    assert "scale_factor" not in no_std  # a fixed factor is a plain attribute, as officially


def test_schedule_buffers_follow_the_official_formulas():
    ldm = _ldm()
    b = np.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - b)
    prev = np.append(1.0, ac[:-1])
    expected = {
        "betas": b,
        "alphas_cumprod": ac,
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / ac - 1),
        "posterior_mean_coef2": (1 - prev) * np.sqrt(1 - b) / (1 - ac),
        "posterior_log_variance_clipped": np.log(np.maximum(b * (1 - prev) / (1 - ac), 1e-20)),
    }
    for name, value in expected.items():
        torch.testing.assert_close(getattr(ldm, name), torch.tensor(value, dtype=torch.float32))


def test_first_stage_is_frozen_and_the_denoiser_has_the_latent_shape():
    ldm = _ldm()
    assert not any(p.requires_grad for p in ldm.first_stage_model.parameters())
    ldm.first_stage_model.train()
    assert not ldm.first_stage_model.training
    x, labels = _batch()
    z = ldm.encode(x, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 4, 8, 8)
    out = ldm.denoise(z, torch.full((4,), 0.5), labels)
    assert out.shape == z.shape
    assert ldm.decode(z).shape == x.shape


def test_scale_by_std_sets_one_over_the_std_of_the_first_batch():
    ldm = _ldm()
    system = LitLatentDiffusion(ldm, learning_rate=1e-3)
    x, labels = _batch(8)
    torch.manual_seed(3)
    system.training_step({"image": x, "label": labels}, 0)
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    z = ldm.first_stage_model.encode_latent(x, generator=g)
    assert float(ldm.scale_factor) == pytest.approx(1 / float(z.flatten().std()), rel=1e-6)
    assert float(ldm.scale_factor) != 1.0


def test_loss_is_l_simple_and_falls_on_one_batch():
    ldm = _ldm(use_ema=False)
    x, labels = _batch(8)
    z0 = ldm.encode(x, generator=torch.Generator().manual_seed(0))
    params = list(ldm.model.parameters()) + list(ldm.cond_stage_model.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3)
    losses = []
    for _ in range(30):
        out = ldm_loss(ldm, z0, labels, torch.Generator().manual_seed(5))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert losses[0] == pytest.approx(1.0, abs=0.3)  # a zero-initialised output: ‖ε‖² / d
    assert losses[-1] < 0.7 * losses[0]


def test_sampling_is_reproducible_and_guidance_at_one_is_the_conditional_model():
    ldm = _ldm().eval()
    with torch.no_grad():
        for p in ldm.model.parameters():  # zero-initialised outputs would hide the condition
            if not p.any():
                p.normal_(0, 0.05)
    labels = torch.tensor([1, 2, 3])
    kw = {"steps": 5, "generator": torch.Generator().manual_seed(0)}
    a = sample_latents(ldm, labels, (4, 8, 8), guidance_scale=1.0, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    b = sample_latents(ldm, labels, (4, 8, 8), guidance_scale=1.0, **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    kw["generator"] = torch.Generator().manual_seed(0)
    c = sample_latents(ldm, labels, (4, 8, 8), guidance_scale=3.0, **kw)
    assert not torch.allclose(a, c)
    kw["generator"] = torch.Generator().manual_seed(0)
    assert sample_images(ldm, labels, (4, 8, 8), **kw).shape == (3, 3, 16, 16)


def test_pixel_space_uses_the_identity_first_stage():
    config = replace(LDMConfig.tiny(channels=3, side=16), scale_by_std=False)
    ldm = LatentDiffusion(config, IdentityFirstStage(3))
    x, _ = _batch()
    torch.testing.assert_close(ldm.encode(x), x)


def test_bad_input_is_named():
    ldm = _ldm()
    with pytest.raises(TypeError, match="encode_latent"):
        LatentDiffusion(LDMConfig.tiny(), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="z_t"):
        ldm.denoise(torch.zeros(2, 3, 8, 8), torch.full((2,), 0.5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class labels"):
        ldm.denoise(torch.zeros(2, 4, 8, 8), torch.full((2,), 0.5), torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="context_dim"):
        replace(LDMConfig.tiny(), embed_dim=16)
    with pytest.raises(ValueError, match="cond_drop"):
        replace(LDMConfig.tiny(), cond_drop=1.0)
    with pytest.raises(ValueError, match="guidance needs"):
        sample_latents(ldm, None, (2, 4, 8, 8), guidance_scale=2.0)


def test_a_whole_system_round_trips_strictly(tmp_path):
    from esser_lab.weights import load_weights, save_weights

    ldm = _ldm()
    path = save_weights(ldm, tmp_path / "ldm.safetensors")
    other = _ldm()
    with torch.no_grad():
        other.scale_factor.fill_(7.0)
    load_weights(other, path, what="tiny LDM")
    assert float(other.scale_factor) == float(ldm.scale_factor)
