"""Released LDM / SD 1.x checkpoint layouts (esser_lab.ldm.checkpoint), on tiny files written here.

The files follow the official layout: a Lightning dict whose ``state_dict`` holds
``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.*``, ``model_ema.*``
(parameter names without dots), the schedule buffers and ``scale_factor``.
"""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from esser_lab.ldm.checkpoint import (
    SCHEDULE_KEYS,
    check_schedule,
    ema_state_dict,
    load_first_stage,
    load_ldm_unet,
    split_ldm_checkpoint,
)
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.nn.unet import UNetConfig, UNetModel
from esser_lab.taming.model import VQGANConfig, VQModel
from esser_lab.training.ema import EMA
from esser_lab.weights import WeightsError, load_weights

UNET = UNetConfig.tiny()
KL = AutoencoderKLConfig.tiny(4)
START, END = 0.0015, 0.0195


def official_schedule(start: float, end: float, steps: int = 1000) -> dict[str, torch.Tensor]:
    """The twelve buffers as ``DDPM.register_schedule`` computes them (float64, stored float32)."""
    betas = torch.linspace(math.sqrt(start), math.sqrt(end), steps, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    var = betas * (1 - prev) / (1 - ac)
    table = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": ac**0.5,
        "sqrt_one_minus_alphas_cumprod": (1 - ac) ** 0.5,
        "log_one_minus_alphas_cumprod": torch.log(1 - ac),
        "sqrt_recip_alphas_cumprod": (1 / ac) ** 0.5,
        "sqrt_recipm1_alphas_cumprod": (1 / ac - 1) ** 0.5,
        "posterior_variance": var,
        "posterior_log_variance_clipped": torch.log(torch.clamp(var, min=1e-20)),
        "posterior_mean_coef1": betas * prev**0.5 / (1 - ac),
        "posterior_mean_coef2": (1 - prev) * (1 - betas) ** 0.5 / (1 - ac),
    }
    return {k: v.float() for k, v in table.items()}


def without_dots(name: str) -> str:
    return name.replace(".", "")


def official_ldm(path, *, ema: bool = True, text: bool = False, extra: dict | None = None):
    """A tiny class-conditional (or, with ``text``, SD-like) LDM checkpoint; returns its parts."""
    torch.manual_seed(0)
    unet, averaged, first = UNetModel(UNET), UNetModel(UNET), AutoencoderKL(KL)
    classes = nn.Embedding(11, 32)
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {f"first_stage_model.{k}": v for k, v in first.state_dict().items()}
    state |= official_schedule(START, END)
    state["scale_factor"] = torch.tensor(0.5)
    if text:
        state["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = (
            torch.randn(49, 32)
        )
        state["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.ones(32)
    else:
        state["cond_stage_model.embedding.weight"] = classes.weight.detach()
    if ema:
        state["model_ema.decay"] = torch.tensor(0.9999)
        state["model_ema.num_updates"] = torch.tensor(7, dtype=torch.int)
        for name, p in averaged.named_parameters():
            state["model_ema." + without_dots("diffusion_model." + name)] = p.detach()
    state |= extra or {}
    checkpoint = {
        "state_dict": state,
        "global_step": 3,
        "epoch": 1,
        "pytorch-lightning_version": "1.4.2",
        "optimizer_states": [],
    }
    torch.save(checkpoint, path)
    return unet, averaged, first, classes


class ClassTable(nn.Module):  # stand-in for the ClassEmbedder: one `embedding` table
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 32)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_class_conditional_ldm_round_trips_strictly(tmp_path):
    path = tmp_path / "model.ckpt"
    unet, averaged, first, classes = official_ldm(path)
    parts = split_ldm_checkpoint(path)
    assert parts.scale_factor == 0.5 and parts.ema_num_updates == 7
    assert parts.ema_decay == pytest.approx(0.9999)
    assert set(parts.schedule) == set(SCHEDULE_KEYS) and parts.text_encoder == {}
    assert parts.note == ""
    assert same_weights(load_ldm_unet(path, UNET), unet)
    assert same_weights(load_ldm_unet(parts, UNET, use_ema=True), averaged)
    assert not same_weights(unet, averaged)
    loaded_first = load_first_stage(path, KL)
    assert same_weights(loaded_first, first) and not loaded_first.training
    embedder = load_weights(ClassTable(), parts.cond_stage, what="ClassEmbedder")
    assert torch.equal(embedder.embedding.weight, classes.weight)
    x = torch.randn(2, 4, 8, 8)
    t = torch.tensor([3, 999])
    context = torch.randn(2, 1, 32)
    with torch.no_grad():
        assert torch.equal(load_ldm_unet(parts, UNET)(x, t, context), unet(x, t, context))


def test_the_ema_names_map_back_to_the_unet():
    unet = UNetModel(UNET)
    names = [n for n, _ in unet.named_parameters()]
    shadows = {"model_ema." + without_dots("diffusion_model." + n): torch.zeros(1) for n in names}
    shadows |= {"model_ema.decay": torch.tensor(0.9), "model.diffusion_model.x": torch.zeros(1)}
    mapped = ema_state_dict(shadows, names)
    assert set(mapped) == set(names)
    one = ema_state_dict({"model_ema.diffusion_modelinput_blocks00weight": torch.ones(2)},
                         ["input_blocks.0.0.weight"])  # fmt: skip
    assert list(one) == ["input_blocks.0.0.weight"]
    with pytest.raises(WeightsError, match=r"1 parameters without a shadow .*'out\.2\.bias'"):
        ema_state_dict({k: v for k, v in shadows.items() if "out2bias" not in k}, names)
    with pytest.raises(
        WeightsError, match=r"1 shadows without a parameter \['diffusion_modelextra'"
    ):
        ema_state_dict(shadows | {"model_ema.diffusion_modelextra": torch.zeros(1)}, names)
    with pytest.raises(WeightsError, match="share the EMA name 'diffusion_modela1b'"):
        ema_state_dict({}, ["a.1b", "a1.b"])


def test_an_sd_like_text_encoder_is_handed_back_apart(tmp_path):
    path = tmp_path / "sd.ckpt"
    official_ldm(path, ema=False, text=True)
    parts = split_ldm_checkpoint(path)
    assert parts.cond_stage == {}
    assert set(parts.text_encoder) == {
        "text_model.embeddings.token_embedding.weight",
        "text_model.final_layer_norm.weight",
    }
    assert "transformers" in parts.note and "CLIPTextModel" in parts.note
    with pytest.raises(WeightsError, match="holds no EMA weights.*use_ema=False"):
        load_ldm_unet(parts, UNET, use_ema=True)


def test_the_schedule_buffers_are_checked_against_ours(tmp_path):
    path = tmp_path / "model.ckpt"
    official_ldm(path, ema=False)
    parts = split_ldm_checkpoint(path)
    check_schedule(parts, linear_start=START, linear_end=END)
    with pytest.raises(
        WeightsError, match=r"stored betas .*linear_end=0\.012.*to 0\.0195 over 1000"
    ):
        check_schedule(parts, linear_start=START, linear_end=0.012)


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_a_standalone_first_stage_drops_its_loss(tmp_path, kind):
    torch.manual_seed(1)
    config = KL if kind == "kl" else VQGANConfig.tiny().architecture
    wrong = (
        replace(KL, embed_dim=3)
        if kind == "kl"
        else VQGANConfig.tiny().with_codebook(32).architecture
    )
    model = AutoencoderKL(config) if kind == "kl" else VQModel(config)
    state = dict(model.state_dict())
    state["loss.logvar"] = torch.zeros(())
    state["loss.discriminator.main.0.weight"] = torch.zeros(8, 3, 4, 4)
    path = tmp_path / f"{kind}.ckpt"
    torch.save({"state_dict": state, "global_step": 3, "epoch": 0}, path)
    loaded = load_first_stage(path, config)
    assert type(loaded) is type(model) and same_weights(loaded, model)
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(TypeError, match="AutoencoderKLConfig .* or a VQModelConfig"):
        load_first_stage(path, UNET)
    with pytest.raises(WeightsError, match="wrong shape"):
        load_first_stage(path, wrong)


def test_diffusers_unknown_and_corrupted_files_are_refused(tmp_path):
    diffusers_unet = {
        "conv_in.weight": torch.zeros(32, 4, 3, 3),
        "time_embedding.linear_1.weight": torch.zeros(128, 32),
        "down_blocks.0.resnets.0.conv1.weight": torch.zeros(32, 32, 3, 3),
    }
    path = tmp_path / "diffusion_pytorch_model.pt"
    torch.save(diffusers_unet, path)
    with pytest.raises(WeightsError, match="not a latent-diffusion checkpoint.*diffusers UNet"):
        split_ldm_checkpoint(path)
    diffusers_vae = {"encoder.down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(
        WeightsError,
        match=r"follow the diffusers autoencoder .* expects the original taming/CompVis",
    ):
        load_first_stage(diffusers_vae, KL)
    odd = tmp_path / "odd.ckpt"
    official_ldm(odd, ema=False, extra={"lvlb_weights_extra": torch.zeros(1)})
    with pytest.raises(WeightsError, match=r"1 keys outside the known parts.*lvlb_weights_extra"):
        split_ldm_checkpoint(odd)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(odd.read_bytes()[:2000])
    with pytest.raises(WeightsError, match="could not read .*cut.ckpt as a weights-only"):
        split_ldm_checkpoint(cut)
    with pytest.raises(WeightsError, match=r"not found: .*absent\.ckpt.*data/checkpoints/ldm"):
        load_ldm_unet(tmp_path / "absent.ckpt", UNET)


def test_the_ema_module_writes_what_the_loader_inverts():
    wrapper = nn.Module()  # the official DiffusionWrapper: the UNet as `diffusion_model`
    wrapper.diffusion_model = UNetModel(UNET)
    for p in wrapper.parameters():
        p.data.add_(1.0)
    written = {f"model_ema.{k}": v for k, v in EMA(wrapper).state_dict().items()}
    unet = UNetModel(UNET)
    mapped = ema_state_dict(written, [n for n, _ in unet.named_parameters()])
    assert all(torch.equal(mapped[n], p) for n, p in wrapper.diffusion_model.named_parameters())


@pytest.mark.slow_paper
def test_stable_diffusion_ema_names_are_unambiguous():
    with torch.device("meta"):  # shapes only
        unet = UNetModel(UNetConfig.stable_diffusion_v1())
    names = [n for n, _ in unet.named_parameters()]
    shadows = {"model_ema." + without_dots("diffusion_model." + n): torch.empty(0) for n in names}
    assert len(names) == 686 and len(ema_state_dict(shadows, names)) == 686
