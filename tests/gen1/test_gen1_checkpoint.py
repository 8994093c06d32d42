"""Gen-1 started from Stable Diffusion (esser_lab.gen1.checkpoint), on tiny SD-layout files written
here: the official Lightning dict (``state_dict`` with ``model.diffusion_model.*`` and
``first_stage_model.*`` beside the schedule buffers), as ``.ckpt`` and as ``.safetensors``.

What is promised: every SD key copied strictly (missing / unexpected / wrong-shaped keys named),
the structure channel of the first convolution zero-filled, the temporal layers new and
zero-residual, so the initialised video model equals SD's image UNet frame by frame; the video
first stage equals the frame-wise image autoencoder; clear errors for a wrong layout, a missing
file, wrong shapes and bad input.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from einops import rearrange, repeat

from esser_lab.gen1.checkpoint import (
    FIRST_CONV,
    SD_SCALE_FACTOR,
    VideoFirstStage,
    init_gen1_from_sd,
    load_video_first_stage,
    widen_first_conv,
)
from esser_lab.gen1.model import Gen1Config, Gen1UNet
from esser_lab.gen1.pretrained import CLIP_IMAGE_WIDTH
from esser_lab.ldm.checkpoint import split_ldm_checkpoint
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.nn.unet import UNetModel
from esser_lab.nn.unet_config import UNetConfig
from esser_lab.weights import WeightsError

D = 12  # content width of the tests
LATENT = 4
CONFIG = replace(
    Gen1Config.tiny(content_dim=D),
    unet=replace(Gen1Config.tiny(content_dim=D).unet, in_channels=LATENT + 1, out_channels=LATENT),
)
IMAGE = replace(CONFIG.unet, in_channels=LATENT)  # the SD-like image UNet of the file
KL = AutoencoderKLConfig.tiny(2)  # f = 2, 4 latent channels


def _sd_state(
    seed: int = 0, unet_config: UNetConfig = IMAGE
) -> tuple[dict, UNetModel, AutoencoderKL]:
    """An SD-layout state dict with random (non-zero) UNet weights and a tiny KL first stage."""
    torch.manual_seed(seed)
    unet, ae = UNetModel(unet_config), AutoencoderKL(KL)
    with torch.no_grad():  # the official zero-initialised convs would make the test trivial
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {f"first_stage_model.{k}": v for k, v in ae.state_dict().items()}
    state["betas"] = torch.linspace(1e-4, 2e-2, 1000)
    return state, unet.eval(), ae.eval()


def _write(path, state) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 1}, path)


@pytest.fixture(scope="module")
def sd_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sd") / "sd-v1-tiny.ckpt"
    state, unet, ae = _sd_state()
    _write(path, state)
    return path, state, unet, ae


def _inputs(b: int = 2, f: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, f, LATENT, 8, 8, generator=g)
    s = torch.rand(b, f, 1, 8, 8, generator=g)
    c = torch.randn(b, D, generator=g)
    n = torch.randint(0, 1000, (b,), generator=g)
    return z, n, s, c


def test_every_sd_key_is_copied_and_the_depth_channel_is_zero(sd_file):
    path, state, unet, _ = sd_file
    init = init_gen1_from_sd(path, CONFIG)
    model = init.model
    assert isinstance(model, Gen1UNet) and not model.training
    assert init.zero_filled == FIRST_CONV and init.scale_factor is None
    ours = model.unet.state_dict()
    assert set(init.copied) == set(unet.state_dict()) == set(ours)
    for key, value in unet.state_dict().items():
        if key == FIRST_CONV:
            assert ours[key].shape[1] == LATENT + 1
            assert torch.equal(ours[key][:, :LATENT], value)
            assert not ours[key][:, LATENT:].any()  # the structure channel starts at zero
        else:
            assert torch.equal(ours[key], value), key
    # the temporal layers are new, and their residual branches start at zero
    assert set(init.new_keys) == {k for k in model.state_dict() if not k.startswith("unet.")}
    assert init.new_keys and all(k.startswith("temporal_") for k in init.new_keys)
    temporal = dict(model.named_parameters())
    for name in init.new_keys:
        if name.endswith(("conv.weight", "conv.bias", "to_out.0.weight", "to_out.0.bias")):
            assert not temporal[name].any(), name
    assert "copied strictly" in init.summary() and "new" in init.summary()
    assert not any(p.is_meta for p in model.parameters())


def test_the_initialised_video_model_is_sd_frame_by_frame(sd_file):
    path, _, unet, _ = sd_file
    model = init_gen1_from_sd(path, CONFIG).model
    z, n, s, c = _inputs()
    f = z.shape[1]
    tokens = repeat(Gen1UNet.context(c), "b l d -> (b f) l d", f=f)
    frames = rearrange(z, "b f c h w -> (b f) c h w")
    with torch.no_grad():
        expected = unet(frames, repeat(n, "b -> (b f)", f=f), tokens)
        video = model(z, n, s, c)
        other_depth = model(z, n, torch.rand_like(s), c)
    expected = rearrange(expected, "(b f) c h w -> b f c h w", f=f)
    assert expected.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(video, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(other_depth, video, rtol=0, atol=0)  # depth ignored at init


def test_safetensors_ema_and_dtype(tmp_path, sd_file):
    _, state, unet, _ = sd_file
    path = tmp_path / "sd.safetensors"
    _write(path, state)
    init = init_gen1_from_sd(path, CONFIG, dtype=torch.float64)
    assert next(init.model.parameters()).dtype == torch.float64
    assert torch.equal(init.model.unet.out[2].weight.float(), unet.out[2].weight)
    half = init_gen1_from_sd(split_ldm_checkpoint({k: v.half() for k, v in state.items()}),
                             CONFIG, dtype=None)  # fmt: skip
    assert {p.dtype for p in half.model.parameters()} == {torch.float16}  # temporal ones too
    with pytest.raises(WeightsError, match="no EMA weights"):
        init_gen1_from_sd(path, CONFIG, use_ema=True)
    ema = dict(state)
    for name, p in unet.named_parameters():
        ema["model_ema." + ("diffusion_model." + name).replace(".", "")] = p.detach() + 1
    ema_init = init_gen1_from_sd(split_ldm_checkpoint(ema), CONFIG, use_ema=True)
    assert torch.equal(ema_init.model.unet.out[2].weight, unet.out[2].weight + 1)


def test_a_file_with_the_structure_channel_is_copied_as_it_is(sd_file):
    _, state, _, _ = sd_file
    widened = dict(state)
    key = "model.diffusion_model." + FIRST_CONV
    widened[key] = torch.randn(*state[key].shape[:1], LATENT + 1, *state[key].shape[2:])
    init = init_gen1_from_sd(split_ldm_checkpoint(widened), CONFIG)
    assert init.zero_filled is None
    assert torch.equal(init.model.unet.state_dict()[FIRST_CONV], widened[key])


def test_the_temporal_layers_are_seeded(sd_file):
    path = sd_file[0]
    a, b = (init_gen1_from_sd(path, CONFIG, seed=s).model for s in (0, 0))
    c = init_gen1_from_sd(path, CONFIG, seed=1).model
    pos = "temporal_middle.1.pos"
    assert torch.equal(a.state_dict()[pos], b.state_dict()[pos])
    assert not torch.equal(a.state_dict()[pos], c.state_dict()[pos])


def test_missing_unexpected_and_wrong_shapes_are_named(sd_file):
    _, state, _, _ = sd_file
    gone = "middle_block.0.emb_layers.1.bias"
    missing = {k: v for k, v in state.items() if not k.endswith(gone)}
    with pytest.raises(WeightsError, match=rf"1 missing keys \['{gone}'\]"):
        init_gen1_from_sd(split_ldm_checkpoint(missing), CONFIG)
    extra = dict(state) | {"model.diffusion_model.label_emb.0.weight": torch.zeros(3)}
    with pytest.raises(WeightsError, match=r"1 unexpected keys \['label_emb.0.weight'\]"):
        init_gen1_from_sd(split_ldm_checkpoint(extra), CONFIG)
    wider, _, _ = _sd_state(unet_config=replace(IMAGE, context_dim=16))  # an SD 2-like width
    with pytest.raises(WeightsError, match="wrong shape"):
        init_gen1_from_sd(split_ldm_checkpoint(wider), CONFIG)
    odd = dict(state)
    key = "model.diffusion_model." + FIRST_CONV
    odd[key] = torch.zeros(state[key].shape[0], 3, 3, 3)
    with pytest.raises(WeightsError, match="must have 4 .* or 5 input channels"):
        init_gen1_from_sd(split_ldm_checkpoint(odd), CONFIG)
    with pytest.raises(TypeError, match="Gen1Config"):
        init_gen1_from_sd(split_ldm_checkpoint(state), IMAGE)


def test_wrong_layout_and_missing_file(tmp_path, sd_file):
    _, state, _, _ = sd_file
    diffusers = tmp_path / "diffusion_pytorch_model.safetensors"
    _write(diffusers, {"down_blocks.0.resnets.0.conv1.weight": torch.zeros(2, 2, 3, 3)})
    with pytest.raises(WeightsError, match="diffusers UNet"):
        init_gen1_from_sd(diffusers, CONFIG)
    bare = tmp_path / "unet-only.safetensors"  # the UNet without its official prefix
    _write(bare, {k.removeprefix("model.diffusion_model."): v for k, v in state.items()
                  if k.startswith("model.diffusion_model.")})  # fmt: skip
    with pytest.raises(WeightsError, match="original CompVis UNet"):
        init_gen1_from_sd(bare, CONFIG)
    with pytest.raises(WeightsError, match="not found"):
        init_gen1_from_sd(tmp_path / "absent.ckpt", CONFIG)


def test_widen_first_conv():
    w = torch.randn(6, 4, 3, 3)
    wide = widen_first_conv(w, 5)
    assert wide.shape == (6, 5, 3, 3) and torch.equal(wide[:, :4], w) and not wide[:, 4].any()
    assert torch.equal(widen_first_conv(w, 4), w)
    with pytest.raises(WeightsError, match="more than"):
        widen_first_conv(w, 3)
    with pytest.raises(WeightsError, match="4-d"):
        widen_first_conv(torch.zeros(6, 4), 5)


def test_the_paper_config_is_sd_v1_reading_the_clip_image_embedding():
    paper = Gen1Config.paper()
    expected = replace(
        UNetConfig.stable_diffusion_v1(), in_channels=5, out_channels=4, image_size=64
    )
    assert paper.unet == expected
    assert paper.content_dim == CLIP_IMAGE_WIDTH == 768
    assert paper.latent_channels == AutoencoderKLConfig.kl_f8().embed_dim


# ---- the video first stage ----------------------------------------------------------------------


def _video(b: int = 2, f: int = 5, side: int = 16, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, f, 3, side, side, generator=g) * 2 - 1


def test_video_first_stage_equals_the_framewise_autoencoder(sd_file):
    path, _, _, ae = sd_file
    video = _video()
    stage = load_video_first_stage(path, KL, chunk=3, sample=False)
    assert stage.factor == 2 and stage.scale_factor == SD_SCALE_FACTOR
    z = stage.encode(video)
    assert z.shape == (2, 5, 4, 8, 8)
    with torch.no_grad():
        frames = [ae.encode_latent(video[:, i], sample=False) for i in range(5)]
        expected = torch.stack(frames, 1) * SD_SCALE_FACTOR
        decoded = torch.stack([ae.decode_latent(z[:, i] / SD_SCALE_FACTOR) for i in range(5)], 1)
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-6)
    back = stage.decode(z)
    assert back.shape == video.shape
    torch.testing.assert_close(back, decoded, rtol=1e-5, atol=1e-5)
    # chunking changes nothing
    one = VideoFirstStage(stage.first_stage, chunk=1, sample=False)
    torch.testing.assert_close(one.encode(video), z, rtol=1e-5, atol=1e-6)


def test_video_first_stage_samples_from_the_generator_and_reads_a_stored_scale(sd_file):
    _, state, _, _ = sd_file
    stored = dict(state) | {"scale_factor": torch.tensor(0.5)}
    stage = load_video_first_stage(split_ldm_checkpoint(stored), KL)
    assert stage.scale_factor == 0.5 and stage.sample
    video = _video(f=3)
    a = stage.encode(video, generator=torch.Generator().manual_seed(0))
    b = stage.encode(video, generator=torch.Generator().manual_seed(0))
    mean = VideoFirstStage(stage.first_stage, 0.5, sample=False).encode(video)
    assert torch.equal(a, b) and not torch.equal(a, mean)
    assert not any(p.requires_grad for p in stage.parameters())
    stage.train()
    assert not stage.first_stage.training


def test_video_first_stage_bad_input(sd_file):
    stage = load_video_first_stage(sd_file[0], KL)
    with pytest.raises(ValueError, match=r"video \(b, f, c, h, w\)"):
        stage.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"z must be a video"):
        stage.decode(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="multiples"):
        stage.encode(torch.zeros(1, 2, 3, 15, 15))
    with pytest.raises(TypeError, match="FirstStage"):
        VideoFirstStage(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="chunk"):
        VideoFirstStage(stage.first_stage, chunk=0)
    with pytest.raises(ValueError, match="scale_factor"):
        VideoFirstStage(stage.first_stage, scale_factor=-1.0)


def test_litgen1_trains_the_sd_start_on_the_video_first_stage(sd_file):
    """The full-scale path at tiny size: SD's UNet and autoencoder from one file, one step."""
    from esser_lab.diffusion import DiscreteSchedule
    from esser_lab.gen1.training import LitGen1

    path = sd_file[0]
    model = init_gen1_from_sd(path, CONFIG).model.train()
    system = LitGen1(model, load_video_first_stage(path, KL), DiscreteSchedule.stable_diffusion())
    batch = {
        "video": _video(b=2, f=3),
        "depth": torch.rand(2, 3, 1, 16, 16),
        "content": torch.randn(2, D),
    }
    loss = system.training_step(batch, 0)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    first = model.unet.input_blocks[0][0].weight.grad
    assert first is not None and first[:, LATENT:].abs().sum() > 0  # the depth channel learns
    assert all(p.grad is None for p in system.first_stage.parameters())


def test_a_v_prediction_config_cannot_start_from_sd():
    from dataclasses import replace

    from esser_lab.gen1.checkpoint import init_gen1_from_sd
    from esser_lab.gen1.model import Gen1Config
    from esser_lab.weights import WeightsError

    config = replace(Gen1Config.tiny(), parameterization="v")
    with pytest.raises(WeightsError, match="predicts ε"):
        init_gen1_from_sd("missing.ckpt", config)
