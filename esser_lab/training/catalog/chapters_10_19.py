"""The catalog's builders for chapters 10-19 (2021-2025): VQGAN to Gen-1."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from esser_lab.training.catalog.base import (
    Built,
    MakeBatch,
    Preset,
    Switches,
    codes,
    images,
    lpips_stand_in,
    preset_config,
    sized,
)

# ---- chapters 10-13: VQGAN, first stages, latent diffusion, ImageBART ----------------------------


def vqgan(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN

    config = sized(preset_config(VQGANConfig, preset), batch_size)
    if s.disc_start is not None:
        config = replace(config, disc_start=s.disc_start)
    perceptual = lpips_stand_in() if config.perceptual_weight > 0 else None
    return Built(LitVQGAN(config, perceptual), images(config.resolution), config.batch_size)


def taming_transformer(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
    from esser_lab.taming.transformer_training import LitTamingTransformer

    config = sized(preset_config(TamingTransformerConfig, preset), batch_size)
    if preset == "tiny":  # tests/taming's first stage, 4×4 codes
        first = VQGANConfig(
            resolution=16, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,),
            z_channels=8, embed_dim=8, n_embed=64,
        )  # fmt: skip
    else:
        first = preset_config(VQGANConfig, preset)
    grid = first.resolution // 2 ** (len(first.ch_mult) - 1)
    if preset != "tiny":
        config = replace(config, vocab_size=first.n_embed, block_size=grid * grid)
    if s.stochastic:  # the input-token noise and dropout
        config = replace(config, pkeep=0.5, embd_pdrop=0.1, resid_pdrop=0.1)
    model = TamingTransformer(config, VQModel(first))  # the batches carry codes: it never runs

    def make(n: int, generator: torch.Generator) -> dict:
        batch = {"z_indices": torch.randint(first.n_embed, (n, grid * grid), generator=generator)}
        if config.conditioning == "class":
            batch["label"] = torch.arange(n) % config.n_classes
        return batch

    learning_rate = 3e-3 if preset == "tiny" else None
    return Built(LitTamingTransformer(model, learning_rate), make, config.batch_size)


def dense_autoencoder(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.iin.model import IINConfig
    from esser_lab.nn.autoencoder import DenseAutoencoder
    from esser_lab.training.first_stage import LitDenseAutoencoder

    # chapter 5's first stage: (image size, n_down, width, z_dim)
    size, n_down, width = {"tiny": (16, 2, 4), "small": (32, 3, 32), "full": (32, 4, 64)}[preset]
    z_dim = 8 if preset == "tiny" else preset_config(IINConfig, preset).z_dim
    autoencoder = DenseAutoencoder(size, 3, n_down=n_down, z_dim=z_dim, width=width)
    b = batch_size or 64  # train_first_stage's default
    return Built(LitDenseAutoencoder(autoencoder), images(size), b)


def kl_autoencoder(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.taming.training import LitGANAutoencoder

    # LDM's KL first stage: f = 2 (tiny), 4 (small), 8 (full)
    config = (
        AutoencoderKLConfig.tiny(2)
        if preset == "tiny"
        else preset_config(AutoencoderKLConfig, preset)
    )
    loss = GANAutoencoderLossConfig.tiny() if preset == "tiny" else GANAutoencoderLossConfig()
    if s.disc_start is not None:
        loss = replace(loss, disc_start=s.disc_start)
    perceptual = lpips_stand_in() if loss.perceptual_weight > 0 else None
    b = batch_size or {"tiny": 16, "small": 32, "full": GANOptimizerConfig().batch_size}[preset]
    optimizer = GANOptimizerConfig(batch_size=b)
    if preset == "tiny":
        optimizer = replace(optimizer, base_learning_rate=1e-3 / b)
    system = LitGANAutoencoder(AutoencoderKL(config), loss, optimizer, perceptual)
    return Built(system, images(config.resolution), b)


def latent_diffusion(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.ldm.model import LatentDiffusion, LDMConfig
    from esser_lab.ldm.training import LitLatentDiffusion
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.nn.unet import UNetConfig

    kl = {"tiny": AutoencoderKLConfig.tiny(2), "small": AutoencoderKLConfig.small()}
    first_stage = AutoencoderKL(kl.get(preset) or AutoencoderKLConfig.kl_f8())
    side = first_stage.config.resolution // first_stage.config.factor
    if preset == "full":  # LDM-KL-8 with cross-attention on a class embedding (cin256 UNet)
        unet = replace(UNetConfig.cin256(), image_size=side)
        config = LDMConfig(unet=unet, scale_factor=0.18215, batch_size=8)
    else:
        config = getattr(LDMConfig, preset)(channels=4, side=side)
    config = sized(config, batch_size)
    size = first_stage.config.resolution

    def make(n: int, generator: torch.Generator) -> dict:
        image = torch.rand(n, 3, size, size, generator=generator) * 2 - 1
        return {"image": image, "label": torch.arange(n) % 10}

    system = LitLatentDiffusion(LatentDiffusion(config, first_stage))
    return Built(system, make, config.batch_size)


def imagebart(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.imagebart.model import ImageBART, ImageBARTConfig
    from esser_lab.imagebart.training import LitImageBART

    if preset == "tiny":
        config, learning_rate = replace(ImageBARTConfig.tiny(12, 16), dim=16), 3e-3
    else:
        config, learning_rate = preset_config(ImageBARTConfig, preset), None
    config = sized(config, batch_size)  # the batches carry remapped codes
    system = LitImageBART(ImageBART(config), learning_rate=learning_rate)
    return Built(system, codes(config.num_codes, config.seq_len), config.batch_size)


def code_gpt(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.imagebart.model import ImageBARTConfig
    from esser_lab.imagebart.training import LitCodeGPT
    from esser_lab.nn.transformer import GPT

    if preset == "tiny":
        gpt, learning_rate, b = GPT(12, 16, n_layer=1, n_head=2, n_embd=16), 3e-3, 32
        make = codes(12, 16)
    else:  # the baseline at ImageBART's widths and total depth
        c = preset_config(ImageBARTConfig, preset)
        gpt = GPT(c.num_codes, c.seq_len, c.enc_depth + c.dec_depth, c.heads, c.dim)
        learning_rate, b, make = c.learning_rate, c.batch_size, codes(c.num_codes, c.seq_len)
    return Built(LitCodeGPT(gpt, "reverse", learning_rate), make, batch_size or b)


# ---- chapters 14-19: SD3, shape vs texture, GeoFree, LADD, Self-Flow, keyframes, Gen-1 -----------


def _captions(channels: int, side: int) -> MakeBatch:
    from esser_lab.sd3.data import captioned_batch

    def make(n: int, generator: torch.Generator) -> dict:
        tokens = captioned_batch(n, 16, generator=generator).tokens
        return {
            "latent": torch.randn(n, channels, side, side, generator=generator),
            "tokens": tokens,
        }

    return make


def mmdit(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder
    from esser_lab.sd3.training import LitMMDiT

    config = preset_config(MMDiTConfig, preset)  # full: SD3-medium (2 B), 16-channel latents
    side, b = {"tiny": (8, 16), "small": (16, 32), "full": (32, 4)}[preset]  # 256 px at full
    options: dict[str, Any] = {"learning_rate": 1e-3} if preset == "tiny" else {}
    if s.warmup_steps is not None:
        options["warmup_steps"] = s.warmup_steps
    if s.stochastic:
        options |= {"caption_dropout": 0.5, "use_ema": True}
    encoder = ToyTextEncoder(config.context_dim, config.adm_in)  # stands in for CLIP + T5
    rf = formulation("rf/lognorm(0.00,1.00)")
    system = LitMMDiT(MMDiT(config), rf, encoder, **options)
    return Built(system, _captions(config.in_channels, side), batch_size or b)


def shape_texture(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.cue_conflict import sample
    from esser_lab.shape_texture.model import ShapeTextureConfig, ShapeTextureNet
    from esser_lab.shape_texture.training import LitShapeTexture

    config = sized(preset_config(ShapeTextureConfig, preset), batch_size)  # full: ResNet-50, 224 px

    def make(n: int, generator: torch.Generator) -> dict:
        x = sample(n, config.image_size, generator=generator, regime="shortcut")
        return {"image": x.image, "label": x.shape}

    return Built(LitShapeTexture(ShapeTextureNet(config)), make, config.batch_size)


def _view_pairs(preset: Preset) -> MakeBatch:
    """View pairs: the toy scenes (16 / 32 px), or 208×368 frames (13×23 codes) at full."""

    def scenes(n: int, generator: torch.Generator) -> dict:
        from esser_lab.data import scenes

        size = {"tiny": 16, "small": 32}[preset]
        return scenes.sample_pairs(n, size, generator=generator).to_dict()

    def frames(n: int, generator: torch.Generator) -> dict:
        h, w = 208, 368
        K = torch.tensor([[w / 2, 0.0, w / 2], [0.0, w / 2, h / 2], [0.0, 0.0, 1.0]])
        K = K.expand(n, 3, 3).contiguous()
        views = torch.rand(2, n, 3, h, w, generator=generator) * 2 - 1
        return {
            "source": views[0],
            "target": views[1],
            "source_depth": torch.rand(n, 1, h, w, generator=generator) + 1,
            "R": torch.eye(3).expand(n, 3, 3).contiguous(),
            "t": torch.randn(n, 3, generator=generator) * 0.3,
            "K": K,
            "K_inv": torch.linalg.inv(K),
        }

    return frames if preset == "full" else scenes


def geo_transformer(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer, first_stage_config
    from esser_lab.geofree.training import LitGeoTransformer
    from esser_lab.taming.model import VQModel

    config = sized(preset_config(GeoFreeConfig, preset), batch_size)  # full: impl_nodepth, batch 8
    vq = first_stage_config({"tiny": "tiny", "small": "small", "full": "paper"}[preset])
    total_steps = 10 if preset == "tiny" else 100
    # noise-free: exact depth for α (the depth error is drawn per process)
    options = {"depth_error": None} if s.noise_free else {}
    model = GeoTransformer(config, VQModel(vq))
    system = LitGeoTransformer(model, total_steps=total_steps, **options)
    return Built(system, _view_pairs(preset), config.batch_size)


def explicit_baseline(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.geofree.baseline import ExplicitBaseline
    from esser_lab.geofree.model import GeoFreeConfig
    from esser_lab.geofree.training import LitExplicitBaseline

    config = preset_config(GeoFreeConfig, preset)
    if preset == "tiny":
        system = LitExplicitBaseline(ExplicitBaseline(width=8), 1e-3, 2, 10)
    else:
        system = LitExplicitBaseline(ExplicitBaseline(), config.learning_rate, 10, 100)
    return Built(system, _view_pairs(preset), batch_size or config.batch_size)


def ladd(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.ladd.model import LADDConfig
    from esser_lab.ladd.training import LitLADD
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder

    # full: SD3-medium as teacher and student (the paper distils SD3's 8 B MMDiT), 256 px latents
    config = preset_config(MMDiTConfig, preset)
    side, b = {"tiny": (8, 16), "small": (16, 32), "full": (32, 2)}[preset]
    encoder = ToyTextEncoder(config.context_dim, config.adm_in)
    system = LitLADD(MMDiT(config), encoder, preset_config(LADDConfig, preset))
    return Built(system, _captions(config.in_channels, side), batch_size or b)


def self_flow(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.selfflow.method import SelfFlowMethod
    from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT
    from esser_lab.selfflow.training import LitSelfFlow

    method = SelfFlowMethod.paper()
    if preset == "tiny":
        config = replace(SelfFlowConfig.tiny(), depth=2, hidden=32, heads=2)
        method = replace(method, student_layer=1, teacher_layer=2, ema_decay=0.9)
        options, b = {"learning_rate": 1e-3}, 16
    elif preset == "small":
        config = SelfFlowConfig.tiny()
        method, options, b = replace(method, student_layer=2, teacher_layer=4), {}, 64
    else:  # SiT-XL/2 on 4×32×32 latents, unconditional (our training path has no labels)
        config = replace(SelfFlowConfig.paper(), num_classes=0, learn_sigma=False)
        options, b = {}, 32
    system = LitSelfFlow(SelfFlowDiT(config), method, **options)
    return Built(system, images(config.input_size, config.in_channels), batch_size or b)


def keyframe(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.video import sample_clips
    from esser_lab.keyframe.method import keyframe_samples
    from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
    from esser_lab.keyframe.training import LitKeyframe

    config = preset_config(KeyframeConfig, preset)  # full: configs/ours.yaml at 256×256

    def make(n: int, generator: torch.Generator) -> dict:
        clips = sample_clips(n, size=config.image_size, generator=generator)
        return keyframe_samples(clips, generator).as_dict()

    b = batch_size or {"tiny": 16, "small": 16, "full": 4}[preset]
    # the paper's objective at every preset (the chapter trains it at small/full; its tiny L1
    # is the toy's): LaMa's losses, the discriminator, the ADE20k ResNet-50 as a seeded
    # stand-in, the config's accumulation of 2 and its warm-up + cosine schedule, which the
    # harness switches fit into a short run (warm-up ``warmup_steps``, decay over ``steps``)
    from esser_lab.keyframe.pretrained import ade20k_encoder
    from esser_lab.keyframe.training import WarmUpCosine

    schedule = None
    if s.warmup_steps is not None or s.steps is not None:
        warm = 1000 if s.warmup_steps is None else s.warmup_steps
        schedule = WarmUpCosine(warm, max(warm + 1, s.steps or 1_000_000))
    system = LitKeyframe(
        KeyframeGenerator(config),
        objective="paper",
        perceptual=ade20k_encoder("stand-in"),
        schedule=schedule,
    )
    return Built(system, make, b)


def gen1(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.video import sample_clips
    from esser_lab.diffusion import DiscreteSchedule
    from esser_lab.gen1.model import Gen1Config, Gen1UNet
    from esser_lab.gen1.training import LitGen1

    config = preset_config(Gen1Config, preset)
    if preset == "full":  # paper(): SD's UNet on SD's KL-f8 latents, frame by frame, 8 frames
        from esser_lab.gen1.checkpoint import VideoFirstStage
        from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig

        first_stage, frames, b = VideoFirstStage(AutoencoderKL(AutoencoderKLConfig.kl_f8())), 8, 1
    else:
        from esser_lab.gen1.method import PixelFold

        first_stage, frames, b = PixelFold(2), {"tiny": 4, "small": 8}[preset], 8
    side = config.unet.image_size * first_stage.factor

    def make(n: int, generator: torch.Generator) -> dict:
        clips = sample_clips(n, frames=frames, size=side, generator=generator)
        content = torch.randn(n, config.unet.context_dim, generator=generator)
        return {"video": clips.video, "depth": clips.depth, "content": content}

    system = LitGen1(Gen1UNet(config), first_stage, DiscreteSchedule.stable_diffusion())
    return Built(system, make, batch_size or b)
