"""Gen-1's video UNet: shapes, the image model recovered at init, the temporal switch, the
paper()'s size on the meta device, the promised errors, a checkpoint round trip."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from einops import rearrange, repeat

from esser_lab.gen1.model import Gen1Config, Gen1UNet, count_parameters
from esser_lab.nn.unet import UNetModel
from esser_lab.training import load_checkpoint, save_checkpoint

D = 12  # content width of the tests


def _model(seed: int = 0, temporal_noise: float = 0.0) -> Gen1UNet:
    """A tiny video UNet whose image layers are random (as a trained image model would be);
    the temporal layers zero-initialised unless ``temporal_noise`` perturbs them."""
    torch.manual_seed(seed)
    model = Gen1UNet(Gen1Config.tiny(content_dim=D))
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if temporal_noise:
            for p in model.temporal_parameters():
                p.add_(temporal_noise * torch.randn_like(p))
    return model.eval()


def _inputs(b: int = 2, f: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, f, 12, 8, 8, generator=g)
    s = torch.rand(b, f, 1, 8, 8, generator=g)
    c = torch.randn(b, D, generator=g)
    n = torch.randint(0, 1000, (b,), generator=g)
    return z, n, s, c


def _per_frame_image_model(unet: UNetModel, z, n, s, c):
    """chapter 14's image UNet applied to every frame on its own."""
    f = z.shape[1]
    x = rearrange(torch.cat([z, s], 2), "b f c h w -> (b f) c h w")
    tokens = torch.stack([c, torch.zeros_like(c)], 1)  # the content and the zero token
    assert torch.equal(tokens, Gen1UNet.context(c))
    out = unet(x, repeat(n, "b -> (b f)", f=f), repeat(tokens, "b l d -> (b f) l d", f=f))
    return rearrange(out, "(b f) c h w -> b f c h w", f=f)


def test_shapes_and_the_image_model_at_init():
    model = _model()
    z, n, s, c = _inputs()
    out = model(z, n, s, c)
    assert out.shape == z.shape
    torch.testing.assert_close(
        out, _per_frame_image_model(model.unet, z, n, s, c), rtol=0, atol=1e-6
    )


def test_the_temporal_layers_mix_frames_only_when_on():
    model = _model(temporal_noise=0.05)
    z, n, s, c = _inputs()
    reference = _per_frame_image_model(model.unet, z, n, s, c)
    video = model(z, n, s, c)
    assert (video - reference).abs().max() > 1e-3  # trained temporal layers change the output
    torch.testing.assert_close(model(z, n, s, c, temporal=False), reference, rtol=0, atol=1e-6)
    # a one-frame video is an image: the temporal layers stay off
    one = _per_frame_image_model(model.unet, z[:, :1], n, s[:, :1], c)
    torch.testing.assert_close(model(z[:, :1], n, s[:, :1], c), one, rtol=0, atol=1e-6)
    # changing frame 0 moves frame 2's prediction through the temporal layers only
    z2 = z.clone()
    z2[:, 0] += 1.0
    assert (model(z2, n, s, c)[:, 2] - video[:, 2]).abs().max() > 1e-4
    per_frame = model(z2, n, s, c, temporal=False)[:, 2]
    torch.testing.assert_close(per_frame, reference[:, 2], rtol=0, atol=1e-6)


def test_the_image_unet_keeps_chapter_14s_keys():
    model = Gen1UNet(Gen1Config.tiny(content_dim=D))
    image_keys = set(UNetModel(Gen1Config.tiny(content_dim=D).unet).state_dict())
    keys = set(model.state_dict())
    assert {k.removeprefix("unet.") for k in keys if k.startswith("unet.")} == image_keys
    extra = {k.split(".")[0] for k in keys if not k.startswith("unet.")}
    assert extra == {"temporal_input", "temporal_middle", "temporal_output"}
    assert count_parameters(model) == count_parameters(model.unet) + sum(
        p.numel() for p in model.temporal_parameters()
    )


def test_paper_config_on_the_meta_device():
    config = Gen1Config.paper()
    assert (config.latent_channels, config.content_dim, config.frames) == (4, 768, 8)
    assert config.unet.model_channels == 320 and config.unet.channel_mult == (1, 2, 4, 4)
    with torch.device("meta"):
        model = Gen1UNet(config)
    # SD 1.x's 859,520,964 and one more input channel (depth): 320 · 9 weights
    assert count_parameters(model.unet) == 859_520_964 + 320 * 9
    assert count_parameters(model) == 1_042_587_844  # + the temporal convs and attentions


def test_small_and_tiny_only_shrink():
    paper, small, tiny = Gen1Config.paper(), Gen1Config.small(), Gen1Config.tiny()
    for config in (small, tiny):
        assert config.unet.model_channels < paper.unet.model_channels
        assert config.temporal_kernel == paper.temporal_kernel and config.frames == paper.frames


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda z, s, c: (z[:, :, :3], s, c), "z_t"),
        (lambda z, s, c: (z, s[:, :3], c), "structure"),
        (lambda z, s, c: (z, torch.cat([s, s], 2), c), "structure"),
        (lambda z, s, c: (z, s, c[:, :5]), "content"),
        (lambda z, s, c: (torch.cat([z, z, z], 1), torch.cat([s, s, s], 1), c), "frames"),
    ],
)
def test_bad_input_is_named(change, message):
    model = _model()
    z, n, s, c = _inputs()
    z, s, c = change(z, s, c)
    with pytest.raises((ValueError, TypeError), match=message):
        model(z, n, s, c)


def test_bad_configs_are_refused():
    tiny = Gen1Config.tiny()
    with pytest.raises(ValueError, match="in_channels"):
        Gen1Config(unet=tiny.unet, structure_channels=2)
    with pytest.raises(ValueError, match="odd"):
        Gen1Config(unet=tiny.unet, temporal_kernel=2)


def test_checkpoint_round_trip(tmp_path):
    model = _model(temporal_noise=0.05)
    path = save_checkpoint(model, tmp_path / "gen1.safetensors", asdict(model.config))
    other = Gen1UNet(Gen1Config.tiny(content_dim=D)).eval()
    config = load_checkpoint(other, path)
    assert config["frames"] == 8
    z, n, s, c = _inputs()
    torch.testing.assert_close(other(z, n, s, c), model(z, n, s, c), rtol=0, atol=0)
