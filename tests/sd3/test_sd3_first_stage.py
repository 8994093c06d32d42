"""SD3's VAE config and loader, the latent format, the shipped toy autoencoder (sd3.first_stage)."""

import dataclasses
import json

import pytest
import torch

from esser_lab.ldm.diffusers_layout import autoencoder_to_diffusers, load_diffusers_autoencoder
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.sd3.data import captioned_batch
from esser_lab.sd3.first_stage import (
    SD3_LATENT_FORMAT,
    WEIGHTS,
    LatentFormat,
    decode_latents,
    encode_latents,
    load_sd3_vae,
    load_toy_first_stage,
    psnr,
    sd3_vae_config,
    toy_first_stage_config,
    train_toy_first_stage,
)
from esser_lab.weights import WeightsError, read_metadata, save_weights


def test_sd3_vae_config_is_the_official_layout():
    config = sd3_vae_config()
    assert (config.embed_dim, config.ddconfig.z_channels, config.factor) == (16, 16, 8)
    with torch.device("meta"):
        vae = AutoencoderKL(config)
    state = vae.state_dict()
    assert not any("quant_conv" in key for key in state)
    assert sum(p.numel() for p in vae.parameters()) == 83_819_683  # official SDVAE
    assert state["encoder.conv_out.weight"].shape == (32, 512, 3, 3)  # mean and log-variance
    assert state["decoder.conv_in.weight"].shape == (512, 16, 3, 3)
    assert (SD3_LATENT_FORMAT.shift, SD3_LATENT_FORMAT.scale) == (0.0609, 1.5305)
    with pytest.raises(ValueError, match="embed_dim must equal"):
        dataclasses.replace(config, embed_dim=4)
    # the default keeps the LDM layout (quant convs present)
    assert "quant_conv.weight" in AutoencoderKL(AutoencoderKLConfig.tiny(2)).state_dict()


def test_loader_reads_the_vae_of_a_single_file(tmp_path):
    config = toy_first_stage_config()  # the same layout as SD3's VAE, tiny
    torch.manual_seed(0)
    reference = AutoencoderKL(config)
    single = {f"first_stage_model.{k}": v for k, v in reference.state_dict().items()}
    single["model.diffusion_model.x_embedder.proj.weight"] = torch.zeros(64, 16, 2, 2)
    single["text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"] = torch.ones(8)
    path = save_weights(single, tmp_path / "sd3_tiny.safetensors")
    vae = load_sd3_vae(path, config=config)
    for key, value in reference.state_dict().items():
        assert torch.equal(vae.state_dict()[key], value)
    assert vae.latent_format == SD3_LATENT_FORMAT and not vae.training
    assert not any(p.requires_grad for p in vae.parameters())
    standalone = save_weights(reference, tmp_path / "vae.safetensors")  # bare encoder./decoder.
    assert torch.equal(
        load_sd3_vae(standalone, config=config).decoder.conv_out.weight,
        reference.decoder.conv_out.weight,
    )
    del single["first_stage_model.decoder.conv_out.bias"]
    broken = save_weights(single, tmp_path / "broken.safetensors")
    with pytest.raises(WeightsError, match="decoder.conv_out.bias"):
        load_sd3_vae(broken, config=config)
    with pytest.raises(WeightsError):
        load_sd3_vae(tmp_path / "missing.safetensors", config=config)
    diffusers = autoencoder_to_diffusers(reference.state_dict(), levels=2)
    with pytest.raises(WeightsError, match="diffusers"):
        load_sd3_vae(save_weights(diffusers, tmp_path / "vae_diffusers.safetensors"), config=config)
    assert torch.equal(  # where that layout goes
        load_diffusers_autoencoder(diffusers, config).encoder.conv_in.weight,
        reference.encoder.conv_in.weight,
    )


def test_latent_normalisation_round_trip():
    torch.manual_seed(0)
    ae = AutoencoderKL(toy_first_stage_config()).eval()
    images = captioned_batch(4, 16, generator=torch.Generator().manual_seed(0)).image
    with pytest.raises(ValueError, match="no latent format"):
        encode_latents(ae, images)
    latent_format = LatentFormat(shift=0.25, scale=2.0)
    z = encode_latents(ae, images, sample=False, latent_format=latent_format)
    mean = ae.encode(images).mean
    torch.testing.assert_close(z, (mean - 0.25) * 2.0)
    torch.testing.assert_close(latent_format.process_out(z), mean)
    decoded = decode_latents(ae, z, latent_format=latent_format)
    torch.testing.assert_close(decoded, ae.decode(mean))
    # a posterior sample is reproducible from its generator
    a, b = (
        encode_latents(ae, images, generator=torch.Generator().manual_seed(1), latent_format=f)
        for f in (latent_format, latent_format)
    )
    assert torch.equal(a, b) and not torch.equal(a, z)
    ae.latent_format = SD3_LATENT_FORMAT  # what the loaders attach
    torch.testing.assert_close(encode_latents(ae, images, sample=False), (mean - 0.0609) * 1.5305)


def test_toy_training_is_deterministic():
    a, format_a = train_toy_first_stage(steps=2, batch_size=4, statistics_images=8)
    b, format_b = train_toy_first_stage(steps=2, batch_size=4, statistics_images=8)
    assert format_a == format_b
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_shipped_toy_first_stage_loads_strictly_and_reconstructs():
    assert WEIGHTS.stat().st_size < 2_000_000
    metadata = json.loads(read_metadata(WEIGHTS)["esser_lab"])
    assert metadata["made_by"] == "python -m esser_lab.sd3.first_stage"
    ae = load_toy_first_stage()
    assert ae.config == toy_first_stage_config() and not ae.training
    images = captioned_batch(256, 16, generator=torch.Generator().manual_seed(99)).image
    assert psnr(ae, images) > 24.0
    z = encode_latents(ae, images, generator=torch.Generator().manual_seed(0))
    assert z.shape == (256, 4, 8, 8)
    # the stored shift and scale normalise the data's latents to zero mean, unit std
    assert abs(z.mean().item()) < 0.1 and abs(z.std().item() - 1.0) < 0.1
    with pytest.raises(FileNotFoundError, match="python -m esser_lab.sd3.first_stage"):
        load_toy_first_stage(WEIGHTS.with_name("absent.safetensors"))
