"""GPU smoke bench: a few training steps of every Lightning system, timed, in bf16-mixed.

For each system (every ``class Lit…`` in ``esser_lab``) at a config preset (``small`` by
default: each config's ``small()``, with the first stages the chapters pair it with), this builds
one batch of the system's own data at the preset's batch size, puts it on the device once, and
runs a Lightning ``Trainer`` (``precision="bf16-mixed"``) on that batch repeated:

* 2 warm-up steps (allocation, cuDNN autotuning), untimed;
* 1 step under ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and
  attention, forward and backward: the usual MFU count; elementwise work is not counted);
* ``--steps`` timed steps (default 20), between two device synchronisations.

It writes one CSV row per system: ``system, config, batch, steps_per_s, samples_per_s,
peak_mem_gb`` (``torch.cuda.max_memory_allocated`` over the whole run, warm-up included),
``tflops_per_step`` (the counted step), ``mfu`` (counted FLOP/s over ``--peak-flops``, by default
989e12, the dense bf16 peak of an H100/H200 SXM), ``torch`` and ``gpu``. A system that fails gets
a row of NaNs, its traceback goes to stderr, and the exit status is 1.

Weights are random and pretrained parts (LPIPS's VGG16) are seeded stand-ins of the same size:
the numbers measure throughput, not training. Needs torch, lightning, einops, numpy,
scikit-learn and torchmetrics only::

    PYTHONPATH=. python bench/gpu_smoke.py results.csv                 # on a CUDA machine
    PYTHONPATH=. python bench/gpu_smoke.py out.csv --device cpu --steps 2 --config tiny
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

COLUMNS = (
    "system", "config", "batch", "steps_per_s", "samples_per_s", "peak_mem_gb",
    "tflops_per_step", "mfu", "torch", "gpu",
)  # fmt: skip
WARMUP = 2  # untimed steps before the counted one
PEAK_FLOPS = 989e12  # dense bf16 FLOP/s of an H100 / H200 SXM


# ---- every system at a preset: (system, one batch) --------------------------------------------


def _preset(config_class: type, preset: str) -> Any:
    return {"tiny": config_class.tiny, "small": config_class.small, "full": config_class.paper}[
        preset
    ]()


def _procedural(module_class: type, size: int, n: int, **kwargs: Any) -> dict:
    module = module_class(size, n, num_train=n, num_val=1, seed=0, **kwargs)
    return module._generate(n, torch.Generator().manual_seed(1))


def _vunet(preset: str):  # noqa: ANN202
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.vunet import VUNetConfig, figure_boxes
    from esser_lab.vunet.training import LitVUNet

    config = _preset(VUNetConfig, preset)
    if config.likelihood == "vgg19":  # the paper's VGG19 likelihood needs weights: MSE here
        config = replace(config, likelihood="mse")
    batch = _procedural(FiguresDataModule, config.image_size, config.batch_size)
    return LitVUNet(config, figure_boxes()), batch


def _part_based(preset: str):  # noqa: ANN202
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.part_based.model import PartBasedConfig
    from esser_lab.part_based.training import LitPartBased

    config = _preset(PartBasedConfig, preset)
    batch = _procedural(FiguresDataModule, config.image_size, config.batch_size)
    return LitPartBased(config), batch


def _style_transfer(preset: str):  # noqa: ANN202
    from esser_lab.data.modules import ArtPairsDataModule
    from esser_lab.style_transfer.model import StyleTransferConfig
    from esser_lab.style_transfer.training import LitStyleTransfer

    config = _preset(StyleTransferConfig, preset)
    batch = _procedural(ArtPairsDataModule, config.image_size, config.batch_size)
    return LitStyleTransfer(config), batch


def _rodi(preset: str):  # noqa: ANN202
    from esser_lab.rodi.model import RoDiConfig
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi

    config = replace(_preset(RoDiConfig, preset), warmup_steps=0)  # the constrained step
    batch = _procedural(FigurePairsDataModule, config.image_size, config.batch_size, jitter=0.15)
    return LitRoDi(config), batch


def _first_stage_size(preset: str) -> tuple[int, int, int]:
    """(image size, n_down, width) of the 2020 papers' first stage at ``preset`` (chapter 5)."""
    return {"tiny": (16, 2, 16), "small": (32, 3, 32), "full": (32, 4, 64)}[preset]


def _iin(preset: str):  # noqa: ANN202
    from esser_lab.iin.model import IINConfig
    from esser_lab.iin.training import LitIIN

    config = _preset(IINConfig, preset)
    mean = torch.randn(config.batch_size, config.z_dim)
    return LitIIN(config), {"posterior": torch.cat([mean, torch.full_like(mean, -2.0)], 1)}


def _net2net_model(preset: str):  # noqa: ANN202
    from esser_lab.net2net import AutoencoderExpert, Net2Net, Net2NetConfig, WordEmbeddingEncoder
    from esser_lab.nn.autoencoder import DenseAutoencoder

    config = _preset(Net2NetConfig, preset)
    autoencoder = DenseAutoencoder(in_size=16, in_channels=3, n_down=2, z_dim=config.dim, width=32)
    words = WordEmbeddingEncoder(["a", "red", "circle"], config.cond_in)
    return Net2Net(config, words, AutoencoderExpert(autoencoder))


def _net2net_codes(net2net) -> dict:  # noqa: ANN001
    c = net2net.config  # chapter 6 trains on codes encoded once
    return {
        "z_target": torch.randn(c.batch_size, c.dim),
        "z_cond": torch.randn(c.batch_size, c.cond_in),
    }


def _net2net(preset: str):  # noqa: ANN202
    from esser_lab.net2net.training import LitNet2Net

    net2net = _net2net_model(preset)
    return LitNet2Net(net2net), _net2net_codes(net2net)


def _regression(preset: str):  # noqa: ANN202
    from esser_lab.net2net import RegressionBaseline
    from esser_lab.net2net.training import LitRegressionBaseline

    net2net = _net2net_model(preset)
    system = LitRegressionBaseline(net2net, RegressionBaseline(net2net.config))
    return system, _net2net_codes(net2net)


def _invariances(preset: str):  # noqa: ANN202
    from esser_lab.invariances import InvariancesConfig
    from esser_lab.invariances.training import LitInvariances

    config = _preset(InvariancesConfig, preset)
    b = config.batch_size
    mean = torch.randn(b, config.z_dim)
    batch = {"phi": torch.randn(b, config.cond_dim), "z_mean": mean, "z_logvar": mean * 0 - 2}
    return LitInvariances(config), batch


def _part_discovery(preset: str):  # noqa: ANN202
    from esser_lab.part_discovery.model import PartDiscoveryConfig
    from esser_lab.part_discovery.training import LitPartDiscovery, PartPairsDataModule

    config = _preset(PartDiscoveryConfig, preset)
    if config.likelihood == "vgg19":  # needs VGG19 weights: the MSE likelihood here
        config = replace(config, likelihood="mse")
    batch = _procedural(PartPairsDataModule, config.image_size, config.batch_size)
    return LitPartDiscovery(config), batch


def _data_bias(preset: str):  # noqa: ANN202
    from esser_lab.data_bias import DataBiasConfig, sample_domains
    from esser_lab.data_bias.training import LitDataBias

    config = _preset(DataBiasConfig, preset)
    domain = torch.arange(config.batch_size) % 3
    x = sample_domains(domain, config.image_size, generator=torch.Generator().manual_seed(1))
    return LitDataBias(config), {"image": x.image, "domain": x.domain}


def _lpips_stand_in() -> torch.nn.Module:
    from esser_lab.losses.lpips import LPIPS

    torch.manual_seed(0)
    return LPIPS(pretrained=False)  # VGG16's size and compute, seeded random weights


def _vqgan(preset: str):  # noqa: ANN202
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN

    config = replace(_preset(VQGANConfig, preset), disc_start=0)  # with the discriminator
    perceptual = _lpips_stand_in() if config.perceptual_weight > 0 else None
    image = torch.rand(config.batch_size, 3, config.resolution, config.resolution) * 2 - 1
    return LitVQGAN(config, perceptual), {"image": image}


def _taming_transformer(preset: str):  # noqa: ANN202
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
    from esser_lab.taming.transformer_training import LitTamingTransformer

    first = _preset(VQGANConfig, preset)
    grid = first.resolution // 2 ** (len(first.ch_mult) - 1)
    config = _preset(TamingTransformerConfig, preset)
    config = replace(config, vocab_size=first.n_embed, block_size=grid * grid)
    model = TamingTransformer(config, VQModel(first))  # the batches carry codes
    b = config.batch_size
    batch = {"z_indices": torch.randint(first.n_embed, (b, grid * grid))}
    if config.conditioning == "class":
        batch["label"] = torch.arange(b) % config.n_classes
    return LitTamingTransformer(model), batch


def _imagebart(preset: str):  # noqa: ANN202
    from esser_lab.imagebart.model import ImageBART, ImageBARTConfig
    from esser_lab.imagebart.training import LitImageBART

    config = _preset(ImageBARTConfig, preset)  # the batches carry remapped codes
    codes = torch.randint(config.num_codes, (config.batch_size, config.seq_len))
    return LitImageBART(ImageBART(config)), {"codes": codes}


def _code_gpt(preset: str):  # noqa: ANN202
    from esser_lab.imagebart.model import ImageBARTConfig
    from esser_lab.imagebart.training import LitCodeGPT
    from esser_lab.nn.transformer import GPT

    c = _preset(ImageBARTConfig, preset)  # the baseline at ImageBART's widths and total depth
    gpt = GPT(c.num_codes, c.seq_len, c.enc_depth + c.dec_depth, c.heads, c.dim)
    codes = torch.randint(c.num_codes, (c.batch_size, c.seq_len))
    return LitCodeGPT(gpt, "reverse", c.learning_rate), {"codes": codes}


def _dense_autoencoder(preset: str):  # noqa: ANN202
    from esser_lab.iin.model import IINConfig
    from esser_lab.nn.autoencoder import DenseAutoencoder
    from esser_lab.training.first_stage import LitDenseAutoencoder

    size, n_down, width = _first_stage_size(preset)
    z_dim = _preset(IINConfig, preset).z_dim
    autoencoder = DenseAutoencoder(size, 3, n_down=n_down, z_dim=z_dim, width=width)
    image = torch.rand(64, 3, size, size) * 2 - 1  # train_first_stage's default batch
    return LitDenseAutoencoder(autoencoder), {"image": image}


def _kl_autoencoder(preset: str):  # noqa: ANN202
    from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.taming.training import LitGANAutoencoder

    model = AutoencoderKL(_preset(AutoencoderKLConfig, preset))  # f = 4 (tiny, small), 8 (full)
    loss = GANAutoencoderLossConfig.tiny() if preset == "tiny" else GANAutoencoderLossConfig()
    loss = replace(loss, disc_start=0)  # with the discriminator
    perceptual = _lpips_stand_in() if loss.perceptual_weight > 0 else None
    batch = {"tiny": 16, "small": 32, "full": GANOptimizerConfig().batch_size}[preset]
    optimizer = GANOptimizerConfig(batch_size=batch)
    size = model.config.resolution
    image = torch.rand(batch, 3, size, size) * 2 - 1
    return LitGANAutoencoder(model, loss, optimizer, perceptual), {"image": image}


def _latent_diffusion(preset: str):  # noqa: ANN202
    from esser_lab.ldm.model import LatentDiffusion, LDMConfig
    from esser_lab.ldm.training import LitLatentDiffusion
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig

    kl = AutoencoderKLConfig.kl_f8() if preset == "full" else _preset(AutoencoderKLConfig, preset)
    first_stage = AutoencoderKL(kl)  # f = 4 (tiny, small), 8 (full)
    side = first_stage.config.resolution // first_stage.config.factor
    if preset == "full":  # LDM-KL-8 with cross-attention on a class embedding (cin256 UNet)
        from esser_lab.nn.unet import UNetConfig

        unet = replace(UNetConfig.cin256(), image_size=side)
        config = LDMConfig(unet=unet, scale_factor=0.18215, batch_size=8)
    else:
        config = getattr(LDMConfig, preset)(channels=4, side=side)
    size = first_stage.config.resolution
    image = torch.rand(config.batch_size, 3, size, size) * 2 - 1
    label = torch.randint(10, (config.batch_size,))
    return LitLatentDiffusion(LatentDiffusion(config, first_stage)), {
        "image": image,
        "label": label,
    }


def _mmdit(preset: str):  # noqa: ANN202
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.data import CONTEXT_LENGTH, VOCAB
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder
    from esser_lab.sd3.training import LitMMDiT

    config = _preset(MMDiTConfig, preset)  # full: SD3-medium (2 B), 16-channel latents
    side, batch = {"tiny": (8, 16), "small": (16, 32), "full": (32, 4)}[preset]  # 256 px at full
    encoder = ToyTextEncoder(config.context_dim, config.adm_in)  # stands in for CLIP + T5
    system = LitMMDiT(MMDiT(config), formulation("rf/lognorm(0.00,1.00)"), encoder)
    latent = torch.randn(batch, config.in_channels, side, side)
    return system, {"latent": latent, "tokens": torch.randint(len(VOCAB), (batch, CONTEXT_LENGTH))}


def _shape_texture(preset: str):  # noqa: ANN202
    from esser_lab.shape_texture.model import ShapeTextureConfig, ShapeTextureNet
    from esser_lab.shape_texture.training import LitShapeTexture

    config = _preset(ShapeTextureConfig, preset)  # full: ResNet-50 at 224 px, batch 256
    size = config.image_size
    image = torch.rand(config.batch_size, 3, size, size) * 2 - 1
    label = torch.randint(config.num_classes, (config.batch_size,))
    return LitShapeTexture(ShapeTextureNet(config)), {"image": image, "label": label}


def _geofree_batch(preset: str, batch: int) -> dict:
    """View pairs of the preset's size: 16 / 32 px toy views, or 208×368 frames (13×23 codes)."""
    h, w = {"tiny": (16, 16), "small": (32, 32), "full": (208, 368)}[preset]
    K = torch.tensor([[w / 2, 0.0, w / 2], [0.0, w / 2, h / 2], [0.0, 0.0, 1.0]]).expand(
        batch, 3, 3
    )
    return {
        "source": torch.rand(batch, 3, h, w) * 2 - 1,
        "target": torch.rand(batch, 3, h, w) * 2 - 1,
        "source_depth": torch.rand(batch, 1, h, w) + 1,
        "R": torch.eye(3).expand(batch, 3, 3).contiguous(),
        "t": torch.randn(batch, 3) * 0.3,
        "K": K.contiguous(),
        "K_inv": torch.linalg.inv(K),
    }


def _geo_transformer(preset: str):  # noqa: ANN202
    from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer, first_stage_config
    from esser_lab.geofree.training import LitGeoTransformer
    from esser_lab.taming.model import VQModel

    config = _preset(GeoFreeConfig, preset)  # full: the released impl_nodepth, batch 8
    vq = first_stage_config({"tiny": "tiny", "small": "small", "full": "paper"}[preset])
    system = LitGeoTransformer(GeoTransformer(config, VQModel(vq)), total_steps=100)
    return system, _geofree_batch(preset, config.batch_size)


def _explicit_baseline(preset: str):  # noqa: ANN202
    from esser_lab.geofree.baseline import ExplicitBaseline
    from esser_lab.geofree.model import GeoFreeConfig
    from esser_lab.geofree.training import LitExplicitBaseline

    config = _preset(GeoFreeConfig, preset)
    system = LitExplicitBaseline(ExplicitBaseline(), config.learning_rate, 10, 100)
    return system, _geofree_batch(preset, config.batch_size)


def _ladd(preset: str):  # noqa: ANN202
    from esser_lab.ladd.model import LADDConfig
    from esser_lab.ladd.training import LitLADD
    from esser_lab.sd3.data import CONTEXT_LENGTH, VOCAB
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder

    # full: SD3-medium as teacher and student (the paper distils SD3's 8 B MMDiT), 256 px latents
    config = _preset(MMDiTConfig, preset)
    side, batch = {"tiny": (8, 16), "small": (16, 32), "full": (32, 2)}[preset]
    encoder = ToyTextEncoder(config.context_dim, config.adm_in)
    system = LitLADD(MMDiT(config), encoder, _preset(LADDConfig, preset))
    latent = torch.randn(batch, config.in_channels, side, side)
    return system, {"latent": latent, "tokens": torch.randint(len(VOCAB), (batch, CONTEXT_LENGTH))}


def _self_flow(preset: str):  # noqa: ANN202
    from dataclasses import replace

    from esser_lab.selfflow.method import SelfFlowMethod
    from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT
    from esser_lab.selfflow.training import LitSelfFlow

    # full: SiT-XL/2 on 4x32x32 latents, trained unconditionally (our training path has no labels)
    if preset == "full":
        config = replace(SelfFlowConfig.paper(), num_classes=0, learn_sigma=False)
        method, batch = SelfFlowMethod.paper(), 32
    else:
        config = SelfFlowConfig.tiny()
        method = replace(SelfFlowMethod.paper(), student_layer=2, teacher_layer=4)
        batch = {"tiny": 16, "small": 64}[preset]
    size, channels = config.input_size, config.in_channels
    system = LitSelfFlow(SelfFlowDiT(config), method)
    return system, {"image": torch.rand(batch, channels, size, size) * 2 - 1}


def _keyframe(preset: str):  # noqa: ANN202
    from esser_lab.data.video import sample_clips
    from esser_lab.keyframe.method import keyframe_samples
    from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
    from esser_lab.keyframe.training import LitKeyframe

    config = _preset(KeyframeConfig, preset)  # full: configs/ours.yaml at 256x256
    batch = {"tiny": 16, "small": 16, "full": 4}[preset]
    g = torch.Generator().manual_seed(1)
    clips = sample_clips(batch, size=config.image_size, generator=g)
    return LitKeyframe(KeyframeGenerator(config)), keyframe_samples(clips, g).as_dict()


def _gen1(preset: str):  # noqa: ANN202
    from esser_lab.data.video import sample_clips
    from esser_lab.diffusion import DiscreteSchedule
    from esser_lab.gen1.method import PixelFold
    from esser_lab.gen1.model import Gen1Config, Gen1UNet
    from esser_lab.gen1.training import LitGen1

    if preset == "full":  # paper(): SD's UNet on SD's 4-channel latents
        raise NotImplementedError(
            "Gen-1 at full needs SD's autoencoder wrapped for videos (LitGen1 refuses a first "
            "stage whose encode does not return (b, f, c, h, w)); not built yet"
        )
    config = _preset(Gen1Config, preset)
    factor = 2
    side = config.unet.image_size * factor
    batch = {"tiny": 8, "small": 8}[preset]
    g = torch.Generator().manual_seed(1)
    clips = sample_clips(batch, size=side, generator=g)
    content = torch.randn(batch, config.unet.context_dim, generator=g)
    system = LitGen1(Gen1UNet(config), PixelFold(factor), DiscreteSchedule.stable_diffusion())
    return system, {"video": clips.video, "depth": clips.depth, "content": content}


SYSTEMS: dict[str, Callable[[str], tuple[Any, dict]]] = {
    "LitVUNet": _vunet,
    "LitPartBased": _part_based,
    "LitStyleTransfer": _style_transfer,
    "LitRoDi": _rodi,
    "LitIIN": _iin,
    "LitNet2Net": _net2net,
    "LitRegressionBaseline": _regression,
    "LitInvariances": _invariances,
    "LitPartDiscovery": _part_discovery,
    "LitDataBias": _data_bias,
    "LitVQGAN": _vqgan,
    "LitGANAutoencoder": _kl_autoencoder,
    "LitLatentDiffusion": _latent_diffusion,
    "LitMMDiT": _mmdit,
    "LitTamingTransformer": _taming_transformer,
    "LitImageBART": _imagebart,
    "LitCodeGPT": _code_gpt,
    "LitDenseAutoencoder": _dense_autoencoder,
    "LitShapeTexture": _shape_texture,
    "LitGeoTransformer": _geo_transformer,
    "LitExplicitBaseline": _explicit_baseline,
    "LitLADD": _ladd,
    "LitSelfFlow": _self_flow,
    "LitKeyframe": _keyframe,
    "LitGen1": _gen1,
}


# ---- the timed run --------------------------------------------------------------------------


class _Repeat:
    """The same (on-device) batch ``n`` times; not a DataLoader, so Lightning leaves it alone."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):  # noqa: ANN204
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


def _clock(steps: int, sync: Callable[[], None]):  # noqa: ANN202
    import lightning as L
    from torch.utils.flop_counter import FlopCounterMode

    class Clock(L.Callback):
        """Counts FLOPs on batch ``WARMUP``, times the ``steps`` batches after it, then stops."""

        def __init__(self) -> None:
            self.flops = math.nan
            self.seconds = math.nan
            self._counter: FlopCounterMode | None = None
            self._start = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP:
                self._counter = FlopCounterMode(display=False)
                self._counter.__enter__()
            elif batch_idx == WARMUP + 1:
                sync()
                self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP and self._counter is not None:
                self._counter.__exit__(None, None, None)
                self.flops = float(self._counter.get_total_flops())
            elif batch_idx == WARMUP + steps:
                sync()
                self.seconds = time.perf_counter() - self._start
                trainer.should_stop = True

    return Clock()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _batch_size(batch: dict) -> int:
    return next(len(v) for v in batch.values() if isinstance(v, torch.Tensor))


def measure(name: str, preset: str, device: torch.device, steps: int, peak: float) -> dict:
    """One CSV row for system ``name`` at ``preset`` on ``device``."""
    import lightning as L

    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    system, batch = SYSTEMS[name](preset)
    batch = _to(batch, device)
    clock = _clock(steps, sync)
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, precision="bf16-mixed",
        max_epochs=1, max_steps=-1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[clock],
    )  # fmt: skip
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(system, train_dataloaders=_Repeat(batch, WARMUP + 1 + steps))
    if math.isnan(clock.seconds):
        raise RuntimeError(f"{name} stopped after {trainer.fit_loop.total_batch_idx + 1} batches")
    steps_per_s = steps / clock.seconds
    b = _batch_size(batch)
    row = {
        "system": name,
        "config": preset,
        "batch": b,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * b,
        "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9 if cuda else math.nan,
        "tflops_per_step": clock.flops / 1e12,
        "mfu": clock.flops * steps_per_s / peak,
    }
    del system, trainer, batch
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def generator_check(device: torch.device) -> list[str]:
    """Every function that draws with a caller's generator, with the model on ``device`` and a CPU
    generator (``seed_everything``'s): it must run, land on ``device`` and match the same call on
    the CPU (the same random numbers; float tolerance for the device's arithmetic). The metrics
    that take tensors run on ``device`` too. Returns one ``ok``/``FAILED`` line per function."""
    import copy

    from esser_lab.iin.method import linear_probe, linear_r2
    from esser_lab.metrics.landmarks import fit_landmark_regressor, landmark_error
    from esser_lab.net2net import method as net2net_method
    from esser_lab.net2net.baselines import GaussianTranslator
    from esser_lab.nn.autoencoder import DiagonalGaussian
    from esser_lab.nn.flows import ConditionalFlow, Flow
    from esser_lab.part_discovery.method import colour_kmeans
    from esser_lab.part_discovery.model import FullGaussian, PartDiscovery, PartDiscoveryConfig
    from esser_lab.rodi.model import Posterior
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
    from esser_lab.vunet.claims import random_colour_error

    torch.manual_seed(0)
    flow = Flow(8, 2, 16).eval()
    conditional = ConditionalFlow(8, 4, 2, 16, embedding_dim=8).eval()
    translator = GaussianTranslator(torch.nn.Linear(4, 8), torch.eye(8))
    config = replace(PartDiscoveryConfig.tiny(), batch_size=2)
    parts = PartDiscovery(config).train()
    first = VQGANConfig(
        resolution=16, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,),
        z_channels=8, embed_dim=8, n_embed=64,
    )  # fmt: skip
    gpt_config = replace(TamingTransformerConfig.tiny(), pkeep=0.5)
    taming = TamingTransformer(gpt_config, VQModel(first)).train()
    codes, labels = torch.randint(64, (2, 16)), torch.tensor([1, 2])
    x = torch.rand(2, 3, config.image_size, config.image_size) * 2 - 1
    features, classes = torch.randn(40, 3), torch.randint(2, (40,))
    landmarks, keypoints = torch.rand(20, 2, 2), torch.rand(20, 3, 2)
    cases: dict[str, Callable[..., torch.Tensor]] = {
        # name: f(device, to, generator), to(x) = x (a copy of a module) on that device
        "DiagonalGaussian.sample": lambda d, to, g: DiagonalGaussian(to(torch.randn(4, 8))).sample(
            g
        ),
        "rodi Posterior.sample": lambda d, to, g: Posterior(
            to(torch.zeros(2, 3, 4, 4)), to(torch.zeros(2, 3, 4, 4))
        ).sample(g),
        "FullGaussian.sample": lambda d, to, g: FullGaussian.from_parameters(
            to(torch.randn(2, 9)), 3
        ).sample(g),
        "Flow.sample": lambda d, to, g: to(flow).sample(3, generator=g),
        "net2net sample": lambda d, to, g: net2net_method.sample(
            to(conditional), to(torch.randn(3, 4)), generator=g
        ),
        "GaussianTranslator.sample": lambda d, to, g: GaussianTranslator(
            to(translator.mean), to(translator.scale_tril)
        ).sample(to(torch.randn(3, 4)), generator=g),
        "PartDiscovery.layout": lambda d, to, g: to(parts).layout(to(x), g).logits,
        "TamingTransformer pkeep noise": lambda d, to, g: to(taming)(to(codes), to(labels), g)[0],
        "TamingTransformer.sample_codes": lambda d, to, g: to(taming).sample_codes(
            to(labels), generator=g
        ),
        "colour_kmeans": lambda d, to, g: colour_kmeans(to(torch.rand(50, 3)), 3, generator=g),
        "random_colour_error": lambda d, to, g: torch.tensor(
            random_colour_error(to(torch.rand(4, 5, 3)), g)
        ),
        "linear_probe": lambda d, to, g: torch.tensor(
            linear_probe(
                to(features[:30]), to(classes[:30]), to(features[30:]), to(classes[30:]), 2, steps=5
            )
        ),  # fmt: skip
        "linear_r2": lambda d, to, g: torch.tensor(
            linear_r2(
                to(features[:30]), to(features[:30, :1]), to(features[30:]), to(features[30:, :1])
            )
        ),  # fmt: skip
        "landmark regressor + error": lambda d, to, g: landmark_error(
            fit_landmark_regressor(to(landmarks), to(keypoints))(to(landmarks)), to(keypoints)
        ),
    }
    lines = []
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full fp32
    for name, case in cases.items():
        try:
            results = []
            for where in (torch.device("cpu"), device):

                def to(obj, where=where):  # noqa: ANN001, ANN202
                    moved = copy.deepcopy(obj) if isinstance(obj, torch.nn.Module) else obj
                    return moved.to(where)

                torch.manual_seed(0)  # draws without a generator (dropout) alike
                results.append(case(where, to, torch.Generator().manual_seed(0)))
            cpu, there = results
            assert there.device.type in (device.type, "cpu"), there.device
            exact = not there.is_floating_point()
            if exact:
                same = torch.equal(cpu, there.cpu())
            else:
                same = torch.allclose(cpu.float(), there.cpu().float(), rtol=1e-3, atol=1e-3)
            # DIFFERS is a note, not a failure: the draws match, the device's arithmetic may not
            # (a sampled token can flip where two probabilities nearly tie)
            lines.append(f"{'ok' if same else 'DIFFERS'}  {name} on {there.device}")
        except Exception as error:  # noqa: BLE001
            lines.append(f"FAILED  {name}: {type(error).__name__}: {str(error)[:200]}")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return lines


def sync_census(name: str, preset: str, device: torch.device, steps: int = 3) -> list[str]:
    """Where a training step of ``name`` waits for the GPU: ``torch.cuda.set_sync_debug_mode``
    over ``steps`` steps after the warm-up; one ``count × file:line: message`` line per place, the
    count per step (a separate short run, so the timed one is not slowed)."""
    import collections

    import lightning as L

    torch.manual_seed(0)
    system, batch = SYSTEMS[name](preset)
    batch = _to(batch, device)
    caught: list[warnings.WarningMessage] = []

    class Census(L.Callback):
        def __init__(self) -> None:
            self._record: Any = None
            self._log: list[warnings.WarningMessage] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP:
                self._record = warnings.catch_warnings(record=True)
                self._log = self._record.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP + steps - 1 and self._record is not None:
                torch.cuda.set_sync_debug_mode("default")
                self._record.__exit__(None, None, None)
                caught.extend(self._log)

    trainer = L.Trainer(
        accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=1, max_steps=-1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[Census()],
    )  # fmt: skip
    try:
        trainer.fit(system, train_dataloaders=_Repeat(batch, WARMUP + steps))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    places = collections.Counter(
        f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0][:60]}"
        for w in caught
        if "synchroniz" in str(w.message)
    )
    return [f"{count / steps:5.1f} × {place}" for place, count in places.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="where to write the results (CSV)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per system")
    parser.add_argument("--config", default="small", choices=("tiny", "small", "full"))
    parser.add_argument("--systems", nargs="*", choices=list(SYSTEMS), help="default: all")
    parser.add_argument("--peak-flops", type=float, default=PEAK_FLOPS, help="for the MFU")
    parser.add_argument(
        "--sync-report", type=Path, help="also list where each system's step syncs (CUDA only)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be ≥ 1, got {args.steps}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device (use --device cpu)")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    if device.type == "cuda":  # as esser_lab.scale.apply does for the GPU profiles
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    warnings.filterwarnings("ignore")  # Lightning's notes on tiny loaders and logging
    import logging

    import lightning  # noqa: F401  (it sets its log level when imported: quiet it after)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    failed = []
    checks = generator_check(device)
    print("a CPU generator with the model on " + str(device) + ":\n  " + "\n  ".join(checks))
    failed += [line for line in checks if line.startswith("FAILED")]
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        for name in args.systems or list(SYSTEMS):
            try:
                row = measure(name, args.config, device, args.steps, args.peak_flops)
            except Exception:  # noqa: BLE001  one system's failure must not hide the others
                traceback.print_exc()
                failed.append(name)
                row = {"system": name, "config": args.config} | {k: math.nan for k in COLUMNS[2:8]}
            row |= {"torch": torch.__version__, "gpu": gpu}
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
            file.flush()
            print(
                f"{name:24s} {row['steps_per_s']:8.3g} steps/s  {row['peak_mem_gb']:7.3g} GB  "
                f"{row['tflops_per_step']:8.3g} TFLOP/step  MFU {row['mfu']:.3g}",
                flush=True,
            )
    if args.sync_report is not None and device.type == "cuda":
        lines = []
        for name in args.systems or list(SYSTEMS):
            try:
                places = sync_census(name, args.config, device)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                places = ["(census failed)"]
            lines += [f"{name}: {len(places)} places, per step:"] + [f"  {p}" for p in places]
        args.sync_report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
