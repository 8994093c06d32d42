"""Bad input gets a clear error: one table over every public model, config and loader.

Each row is (case id, a call that passes one bad thing, the exception type, a pattern the message
must match, naming what was expected). The Conventions page summarises this table; a test below
keeps its count honest. What is checked where (and when NaN checks run) is documented in
:mod:`esser_lab.checks`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from esser_lab.checks import FINITE_ENV
from esser_lab.data.folder import ImageFolder, load_image
from esser_lab.data_bias import DataBiasConfig, DataBiasModel
from esser_lab.geofree.baseline import ExplicitBaseline
from esser_lab.geofree.model import GeoFreeConfig
from esser_lab.iin import FactorTransformer, IINConfig
from esser_lab.imagebart.model import ImageBART, ImageBARTConfig
from esser_lab.invariances import (
    ConditionalTransformer,
    DenseEmbedder,
    GlobalAveragePool,
    Greybox,
    InvariancesConfig,
)
from esser_lab.ladd.model import LADDConfig
from esser_lab.ldm.model import LatentDiffusion, LDMConfig
from esser_lab.losses.lpips import LPIPS
from esser_lab.losses.perceptual import load_state_dict_file
from esser_lab.metrics.classifiers import ExpertClassifier
from esser_lab.metrics.fid import FeatureNet, frechet_distance, load_feature_net
from esser_lab.net2net import (
    AutoencoderExpert,
    BigGANExpert,
    Net2Net,
    Net2NetConfig,
    RegressionBaseline,
    SentenceEmbedder,
    WordEmbeddingEncoder,
)
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
from esser_lab.nn.flows import ActNorm, ConditionalFlow, Flow
from esser_lab.nn.quantize import VectorQuantizer
from esser_lab.nn.transformer import GPT
from esser_lab.part_based import PartBased, PartBasedConfig
from esser_lab.part_discovery import Critic, PartDiscovery, PartDiscoveryConfig, Staircase
from esser_lab.rodi import MIEstimator, RoDi, RoDiConfig
from esser_lab.sd3.model import MMDiT, MMDiTConfig
from esser_lab.selfflow.method import SelfFlowMethod
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT
from esser_lab.shape_texture.model import ShapeTextureConfig, ShapeTextureNet
from esser_lab.style_transfer import LocalGroupNorm, StyleTransferConfig, StyleTransferModel
from esser_lab.taming import (
    CheckpointError,
    TamingTransformer,
    TamingTransformerConfig,
    VQGANConfig,
    VQModel,
    load_vqgan,
)
from esser_lab.training.checkpoint import load_checkpoint, save_checkpoint
from esser_lab.vunet import VUNet, VUNetConfig
from esser_lab.weights import WeightsError

NAN = float("nan")


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str


# ---- the models, built once at tiny size (eval mode unless a row needs training mode) ----------


@functools.cache
def vunet() -> VUNet:
    return VUNet(VUNetConfig.tiny()).eval()


@functools.cache
def vqmodel() -> VQModel:
    return VQModel(VQGANConfig.tiny()).eval()


@functools.cache
def flow() -> Flow:
    model = Flow(4, 2, 8, 1)
    model(torch.randn(8, 4))  # the ActNorms' data-dependent init, on a good batch
    return model.eval()


@functools.cache
def conditional_flow() -> ConditionalFlow:
    return ConditionalFlow(4, 3, 2, 8, 1, embedding_dim=4).eval()


@functools.cache
def autoencoder() -> DenseAutoencoder:
    return DenseAutoencoder(16, 3, n_down=2, z_dim=8, width=8).eval()


@functools.cache
def iin() -> FactorTransformer:
    return FactorTransformer(IINConfig.tiny()).eval()


@functools.cache
def invariances() -> ConditionalTransformer:
    return ConditionalTransformer(InvariancesConfig.tiny()).eval()


@functools.cache
def net2net() -> Net2Net:
    c = replace(Net2NetConfig.tiny(), dim=8, cond_in=4)
    source = WordEmbeddingEncoder(["a", "red", "square"], dim=4)
    return Net2Net(c, source, AutoencoderExpert(autoencoder())).eval()


@functools.cache
def data_bias() -> DataBiasModel:
    return DataBiasModel(DataBiasConfig.tiny()).eval()


@functools.cache
def rodi() -> RoDi:
    return RoDi(RoDiConfig.tiny()).eval()


@functools.cache
def part_based() -> PartBased:
    return PartBased(PartBasedConfig.tiny()).eval()


@functools.cache
def part_discovery() -> PartDiscovery:
    return PartDiscovery(PartDiscoveryConfig.tiny()).eval()


@functools.cache
def style_transfer() -> StyleTransferModel:
    return StyleTransferModel(StyleTransferConfig.tiny()).eval()


@functools.cache
def taming_transformer() -> TamingTransformer:
    return TamingTransformer(TamingTransformerConfig.tiny(), vqmodel()).eval()


@functools.cache
def shape_texture() -> ShapeTextureNet:
    return ShapeTextureNet(ShapeTextureConfig.tiny()).eval()


@functools.cache
def explicit_baseline() -> ExplicitBaseline:
    return ExplicitBaseline(width=8).eval()


@functools.cache
def imagebart() -> ImageBART:
    return ImageBART(replace(ImageBARTConfig.tiny(12, 16), dim=16)).eval()


@functools.cache
def ldm() -> LatentDiffusion:
    return LatentDiffusion(LDMConfig.tiny(channels=4, side=8), AutoencoderKL(
        AutoencoderKLConfig.tiny(2))).eval()  # fmt: skip


@functools.cache
def mmdit() -> MMDiT:
    return MMDiT(MMDiTConfig.tiny()).eval()


@functools.cache
def selfflow() -> SelfFlowDiT:
    return SelfFlowDiT(SelfFlowConfig.tiny()).eval()


def mmdit_call(x=None, t=None, context=None, pooled=None):  # noqa: ANN001, ANN201
    """MMDiT (tiny: 4 latent channels, context and pooled widths 32) on 8×8 latents."""
    x = images(2, 4, 8) if x is None else x
    b = x.shape[0] if isinstance(x, torch.Tensor) else 2
    t = torch.full((b,), 0.5) if t is None else t
    context = torch.zeros(b, 4, 32) if context is None else context
    pooled = torch.zeros(b, 32) if pooled is None else pooled
    return lambda: mmdit()(x, t, {"context": context, "pooled": pooled})


def views(b: int = 2, **change):  # noqa: ANN003, ANN201
    """The explicit baseline's inputs: a source view, its depth and a camera (identity pose)."""
    camera = {"R": torch.eye(3).expand(b, 3, 3), "t": torch.zeros(b, 3),
              "K": torch.eye(3).expand(b, 3, 3)}  # fmt: skip
    source, depth = images(b), torch.ones(b, 1, 16, 16)
    return change.get("source", source), change.get("depth", depth), change.get("camera", camera)


def codes(b: int = 2, fill: int = 0, *, dtype=torch.long):  # noqa: ANN001, ANN201
    return torch.full((b, 16), fill, dtype=dtype)


def images(b: int = 2, c: int = 3, s: int = 16, *, dtype=torch.float32, nan: bool = False):
    x = torch.zeros(b, c, s, s, dtype=dtype)
    if nan:
        x[0, 0, 0, 0] = NAN
    return x


def vunet_call(shape=None, appearance=None):
    c = VUNetConfig.tiny()
    shape = images(2, c.shape_channels, c.image_size) if shape is None else shape
    if appearance is None:
        appearance = images(2, c.num_boxes * c.image_channels, c.crop_size)
    return lambda: vunet()(shape, appearance)


def fresh_actnorm(x: torch.Tensor):
    return lambda: ActNorm(x.shape[1]).train()(x)


# ---- files for the loaders ------------------------------------------------------------------


@functools.cache
def files() -> Path:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="esser_bad_input_"))
    model = torch.nn.Linear(2, 2)
    good = save_checkpoint(model, root / "good.safetensors", {"width": 2})
    (root / "truncated.safetensors").write_bytes(good.read_bytes()[:40])
    (root / "truncated.pt").write_bytes(b"PK\x03\x04 not really a zip")

    class Payload:  # an arbitrary class: the loaders must never instantiate it
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"state_dict": {}, "evil": Payload()}, root / "unsafe.ckpt")
    torch.save({"evil": Payload()}, root / "unsafe.pt")
    (root / "empty").mkdir()
    (root / "not_an_image.png").write_text("hello")
    (root / "file.txt").write_text("a file, not a folder")
    return root


def _f(name: str) -> Path:
    return files() / name


def _datamodule():
    from esser_lab.data.modules import ImageFolderDataModule  # imports Lightning: only here

    return ImageFolderDataModule


# ---- the table ------------------------------------------------------------------------------

CONFIG_CASES = [
    Case("VUNetConfig num_filters str", lambda: VUNetConfig(num_filters="8"), TypeError,
         r"VUNetConfig\.num_filters must be int, got '8' \(str\)"),
    Case("VUNetConfig betas one value", lambda: VUNetConfig(betas=[0.5]), TypeError,
         r"VUNetConfig\.betas must be tuple\[float, float\], got \[0\.5\] \(list\)"),
    Case("VUNetConfig betas out of range", lambda: VUNetConfig(betas=(0.5, 1.5)), ValueError,
         r"betas must lie in \[0, 1\), got \(0\.5, 1\.5\)"),
    Case("VUNetConfig image_size", lambda: VUNetConfig(image_size=48), ValueError,
         r"image_size must be a power of two ≥ 4, got 48"),
    Case("VUNetConfig likelihood", lambda: VUNetConfig(likelihood="l1"), ValueError,
         r"likelihood must be one of \['vgg19', 'mse'\], got 'l1'"),
    Case("VUNetConfig unknown key", lambda: VUNetConfig.from_dict({"num_filter": 8}), ValueError,
         r"unknown VUNetConfig field\(s\) \['num_filter'\]; expected some of"),
    Case("VQGANConfig legacy str", lambda: VQGANConfig(legacy="no"), TypeError,
         r"VQGANConfig\.legacy must be bool, got 'no'"),
    Case("VQGANConfig resolution negative", lambda: VQGANConfig(resolution=-16), ValueError,
         r"resolution must be a positive multiple of the down-sampling factor 16 .*got -16"),
    Case("VQGANConfig ch_mult zero", lambda: VQGANConfig(ch_mult=(1, 0)), ValueError,
         r"ch_mult must be non-empty and ≥ 1 everywhere, got \(1, 0\)"),
    Case("VQGANConfig n_embed float", lambda: VQGANConfig(n_embed=1024.0), TypeError,
         r"VQGANConfig\.n_embed must be int, got 1024\.0 \(float\)"),
    Case("VQGANConfig disc_loss", lambda: VQGANConfig(disc_loss="wgan"), ValueError,
         r"disc_loss must be one of \['hinge', 'vanilla'\], got 'wgan'"),
    Case("TamingTransformerConfig n_layer float",
         lambda: TamingTransformerConfig(n_layer=2.0), TypeError,
         r"TamingTransformerConfig\.n_layer must be int, got 2\.0"),
    Case("TamingTransformerConfig top_k zero", lambda: TamingTransformerConfig(top_k=0),
         ValueError, r"top_k must be ≥ 1 or None, got 0"),
    Case("TamingTransformerConfig top_p str", lambda: TamingTransformerConfig(top_p="0.9"),
         TypeError, r"top_p must be float \| None, got '0\.9'"),
    Case("IINConfig rho", lambda: IINConfig(rho=1.5), ValueError,
         r"rho must lie in \(0, 1\), got 1\.5"),
    Case("IINConfig factor_sizes list", lambda: IINConfig(factor_sizes=[32, 32]), TypeError,
         r"IINConfig\.factor_sizes must be tuple\[int, \.\.\.\], got \[32, 32\] \(list\)"),
    Case("PartBasedConfig n_parts", lambda: PartBasedConfig(n_parts=4), ValueError,
         r"n_parts must be > 4"),
    Case("PartBasedConfig covariance int", lambda: PartBasedConfig(covariance_heatmaps=1),
         TypeError, r"PartBasedConfig\.covariance_heatmaps must be bool, got 1 \(int\)"),
    Case("StyleTransferConfig beta1", lambda: StyleTransferConfig(beta1=1.0), ValueError,
         r"need beta1 in \[0, 1\) and learning_rate > 0, got 1\.0"),
    Case("StyleTransferConfig image_size float",
         lambda: StyleTransferConfig(image_size=128.0), TypeError,
         r"StyleTransferConfig\.image_size must be int, got 128\.0"),
    Case("RoDiConfig objective", lambda: RoDiConfig(objective="beta"), ValueError,
         r"RoDiConfig\.objective must be one of \['rodi', 'mimin', 'fixed'\], got 'beta'"),
    Case("RoDiConfig ema_decay str", lambda: RoDiConfig(ema_decay="0.9"), TypeError,
         r"RoDiConfig\.ema_decay must be float, got '0\.9' \(str\)"),
    Case("Net2NetConfig dim", lambda: Net2NetConfig(dim=1), ValueError,
         r"dim must be >= 2 \(a coupling splits it in halves\), got 1"),
    Case("Net2NetConfig amsgrad str", lambda: Net2NetConfig(amsgrad="yes"), TypeError,
         r"Net2NetConfig\.amsgrad must be bool, got 'yes'"),
    Case("InvariancesConfig embedder_depth", lambda: InvariancesConfig(embedder_depth=1),
         ValueError, r"embedder_depth must be ≥ 2, got 1"),
    Case("InvariancesConfig betas short", lambda: InvariancesConfig(betas=(0.5,)), TypeError,
         r"InvariancesConfig\.betas must be tuple\[float, float\], got \(0\.5,\)"),
    Case("PartDiscoveryConfig likelihood", lambda: PartDiscoveryConfig(likelihood="l1"),
         ValueError, r"likelihood must be 'vgg19' or 'mse', got 'l1'"),
    Case("PartDiscoveryConfig schedule float", lambda: PartDiscoveryConfig(gmrf_weight=1.0),
         TypeError, r"PartDiscoveryConfig\.gmrf_weight must be Staircase, got 1\.0"),
    Case("Staircase step_size", lambda: Staircase(0, 1.0, 0, 1.0, 0.0, 1.0), ValueError,
         r"Staircase\.step_size must be ≥ 1, got 0"),
    Case("DataBiasConfig num_domains", lambda: DataBiasConfig(num_domains=1), ValueError,
         r"num_domains must be ≥ 2 \(a translation needs two\), got 1"),
    Case("DataBiasConfig z_dim bool", lambda: DataBiasConfig(z_dim=True), TypeError,
         r"DataBiasConfig\.z_dim must be int, got True \(bool\)"),
    # chapters 11-14 and 17-19
    Case("ShapeTextureConfig num_classes str", lambda: ShapeTextureConfig(num_classes="4"),
         TypeError, r"ShapeTextureConfig\.num_classes must be int, got '4' \(str\)"),
    Case("ShapeTextureConfig architecture", lambda: ShapeTextureConfig(architecture="vgg"),
         ValueError, r"architecture must be one of \['resnet50', 'resnet'\], got 'vgg'"),
    Case("GeoFreeConfig n_layer float", lambda: GeoFreeConfig(n_layer=2.0), TypeError,
         r"GeoFreeConfig\.n_layer must be int, got 2\.0 \(float\)"),
    Case("GeoFreeConfig latent_shape short", lambda: GeoFreeConfig(latent_shape=(4,)),
         TypeError, r"GeoFreeConfig\.latent_shape must be tuple\[int, int\], got \(4,\)"),
    Case("ImageBARTConfig n_scales str", lambda: ImageBARTConfig(n_scales="3"), TypeError,
         r"ImageBARTConfig\.n_scales must be int, got '3' \(str\)"),
    Case("ImageBARTConfig alphas", lambda: ImageBARTConfig(alphas=(1.0, 2.0)), ValueError,
         r"alphas needs one loss mix in \[0, 1\] per scale \(4\), got \(1\.0, 2\.0\)"),
    Case("LDMConfig timesteps str", lambda: LDMConfig(timesteps="10"), TypeError,
         r"LDMConfig\.timesteps must be int, got '10' \(str\)"),
    Case("LDMConfig scale_factor", lambda: LDMConfig(scale_factor=-1.0), ValueError,
         r"scale_factor must be > 0, got -1\.0"),
    Case("MMDiTConfig depth str", lambda: MMDiTConfig(depth="2"), TypeError,
         r"MMDiTConfig\.depth must be int, got '2' \(str\)"),
    Case("MMDiTConfig heads", lambda: MMDiTConfig(hidden=30, num_heads=4), ValueError,
         r"width 30 must be divisible by the 4 heads and by 4"),
    Case("MMDiTConfig backbone", lambda: MMDiTConfig(backbone="unet"), ValueError,
         r"MMDiTConfig\.backbone must be one of \['mmdit', 'crossdit', 'dit'\], got 'unet'"),
    Case("LADDConfig virtual_batch str", lambda: LADDConfig(virtual_batch="2"), TypeError,
         r"LADDConfig\.virtual_batch must be int, got '2' \(str\)"),
    Case("LADDConfig student_steps", lambda: LADDConfig(student_steps=0), ValueError,
         r"student_steps must be ≥ 1, got 0"),
    Case("SelfFlowConfig hidden str", lambda: SelfFlowConfig(hidden="64"), TypeError,
         r"SelfFlowConfig\.hidden must be int, got '64' \(str\)"),
    Case("SelfFlowMethod dts str", lambda: SelfFlowMethod(dts="yes"), TypeError,
         r"SelfFlowMethod\.dts must be bool, got 'yes' \(str\)"),
    Case("SelfFlowMethod mask_ratio", lambda: SelfFlowMethod(mask_ratio=1.0), ValueError,
         r"mask_ratio must lie in \(0, 1\), got 1\.0"),
]  # fmt: skip

MODEL_CASES = [
    # VUNet (chapter 1)
    Case("VUNet NaN shape", vunet_call(shape=images(2, 4, nan=True)), ValueError,
         r"shape must be finite, got 1 non-finite values \(1 NaN\)"),
    Case("VUNet NaN appearance", vunet_call(appearance=images(2, 24, 8, nan=True)), ValueError,
         r"appearance must be finite"),
    Case("VUNet float64", vunet_call(shape=images(2, 4, dtype=torch.float64)), TypeError,
         r"shape must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("VUNet uint8", vunet_call(shape=images(2, 4, dtype=torch.uint8)), TypeError,
         r"shape must be a floating-point tensor \(torch\.float32, the model's dtype\), got "
         r"torch\.uint8 \(images: convert to float in \[-1, 1\]\)"),
    Case("VUNet empty batch", vunet_call(shape=images(0, 4)), ValueError,
         r"shape must hold at least one example \(shape \(b, 4, 16, 16\)\), got an empty batch"),
    Case("VUNet channels", vunet_call(shape=images(2, 3)), ValueError,
         r"shape must have shape \(b, 4, 16, 16\), got \(2, 3, 16, 16\)"),
    Case("VUNet size", vunet_call(shape=images(2, 4, 32)), ValueError,
         r"shape must have shape \(b, 4, 16, 16\), got \(2, 4, 32, 32\)"),
    Case("VUNet list", lambda: vunet()([[0.0]], None), TypeError,
         r"shape must be a torch\.Tensor of shape \(b, 4, 16, 16\), got list"),
    Case("VUNet sample NaN", lambda: vunet().sample(images(1, 4, nan=True)), ValueError,
         r"shape must be finite"),
    # VQGAN and its quantizer (chapter 10)
    Case("VQModel NaN", lambda: vqmodel()(images(nan=True)), ValueError,
         r"x must be finite, got 1 non-finite values"),
    Case("VQModel inf", lambda: vqmodel()(images().fill_(float("inf"))), ValueError,
         r"x must be finite, got 1536 non-finite values \(0 NaN\)"),
    Case("VQModel empty batch", lambda: vqmodel()(images(0)), ValueError,
         r"x must hold at least one example \(shape \(batch, 3, h, w\)\)"),
    Case("VQModel float64", lambda: vqmodel()(images(dtype=torch.float64)), TypeError,
         r"x must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("VQModel uint8", lambda: vqmodel().encode(images(dtype=torch.uint8)), TypeError,
         r"x must be a floating-point tensor .*got torch\.uint8"),
    Case("VQModel channels", lambda: vqmodel()(images(2, 1)), ValueError,
         r"x must have shape \(batch, 3, h, w\), got \(2, 1, 16, 16\)"),
    Case("VQModel odd size", lambda: vqmodel()(images(2, 3, 15)), ValueError,
         r"multiples of the down-sampling factor 2, got \(2, 3, 15, 15\)"),
    Case("VQModel decode channels", lambda: vqmodel().decode(torch.zeros(1, 3, 4, 4)),
         ValueError, r"z_q must have shape \(batch, 8, h, w\), got \(1, 3, 4, 4\)"),
    Case("VQModel code out of range", lambda: vqmodel().decode_code(torch.full((1, 2, 2), 70)),
         ValueError, r"indices must lie in \[0, 64\), got \[70, 70\]"),
    Case("VectorQuantizer empty batch",
         lambda: VectorQuantizer(8, 4)(torch.zeros(0, 4, 2, 2)), ValueError,
         r"z must hold at least one example"),
    Case("VectorQuantizer NaN in eval",
         lambda: VectorQuantizer(8, 4).eval()(torch.full((1, 4, 2, 2), NAN)),
         ValueError, r"z must be finite, got 16 non-finite values \(16 NaN\)"),
    Case("TamingTransformer codes shape",
         lambda: taming_transformer()(torch.zeros(2, 3, 3, dtype=torch.long)), ValueError,
         r"z_indices must be \(b, h·w\) with b ≥ 1, got \(2, 3, 3\)"),
    Case("TamingTransformer float codes",
         lambda: taming_transformer()(torch.zeros(2, 9)), TypeError,
         r"z_indices must be an integer tensor of codes \(b, h·w\), got torch\.float32"),
    Case("TamingTransformer code out of range",
         lambda: taming_transformer()(torch.full((2, 9), 99), torch.zeros(2, dtype=torch.long)),
         ValueError, r"token indices must lie in \[0, vocab_size=\d+\), got \[\d+, 99\]"),
    Case("TamingTransformer NaN image", lambda: taming_transformer().encode_to_z(images(nan=True)),
         ValueError, r"x must be finite"),
    Case("GPT float tokens", lambda: GPT(16, 8, 1, 2, 8)(torch.zeros(1, 4)), TypeError,
         r"idx must be an integer tensor of token indices \(b, l\), got torch\.float32"),
    Case("GPT too long", lambda: GPT(16, 8, 1, 2, 8)(torch.zeros(1, 9, dtype=torch.long)),
         ValueError, r"0 cached \+ 9 new tokens exceeds block_size=8"),
    # metrics and losses shared by the chapters
    Case("FeatureNet NaN", lambda: FeatureNet().eval().features(images(nan=True)), ValueError,
         r"images must be finite"),
    Case("FeatureNet grey", lambda: FeatureNet().eval().features(images(2, 1)), ValueError,
         r"FeatureNet expects RGB images \(batch, 3, h, w\), got \(2, 1, 16, 16\)"),
    Case("frechet_distance widths",
         lambda: frechet_distance(torch.zeros(4, 3), torch.zeros(4, 2)), ValueError,
         r"need two \(n, d\) feature sets of the same d, got \(4, 3\) and \(4, 2\)"),
    Case("ExpertClassifier channels", lambda: ExpertClassifier(3).eval()(images(2, 1)),
         ValueError, r"x must have shape \(b, 3, h, w\), got \(2, 1, 16, 16\)"),
    Case("ExpertClassifier NaN", lambda: ExpertClassifier(3).eval()(images(nan=True)),
         ValueError, r"x must be finite"),
    Case("LPIPS shapes", lambda: LPIPS(pretrained=False)(images(2), images(2, 3, 8)),
         ValueError, r"LPIPS expects two \(b, 3, h, w\) images in \[-1, 1\], got "
         r"\(2, 3, 16, 16\) and \(2, 3, 8, 8\)"),
    # flows, ActNorm, the dense autoencoder (chapters 5-9)
    Case("ActNorm first batch of one", fresh_actnorm(torch.randn(1, 4)), ValueError,
         r"ActNorm\(4\)'s first batch .* needs at least 2 values per feature .* "
         r"got shape \(1, 4\)"),
    Case("ActNorm first batch NaN row",
         fresh_actnorm(torch.cat([torch.randn(3, 4), torch.full((1, 4), NAN)])), ValueError,
         r"ActNorm\(4\)'s first batch .* must be finite, got 4 non-finite values"),
    Case("Flow NaN", lambda: flow()(torch.full((2, 4), NAN)), ValueError,
         r"x must be finite, got 8 non-finite values"),
    Case("Flow inverse NaN", lambda: flow().inverse(torch.full((2, 4), NAN)), ValueError,
         r"z must be finite"),
    Case("Flow float64", lambda: flow()(torch.zeros(2, 4, dtype=torch.float64)), TypeError,
         r"x must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("Flow integer", lambda: flow()(torch.zeros(2, 4, dtype=torch.long)), TypeError,
         r"x must be a floating-point tensor, got torch\.int64"),
    Case("Flow width", lambda: flow()(torch.zeros(2, 5)), ValueError,
         r"x must have shape \(batch, 4\) \(or \(batch, 4, 1, 1\)\), got \(2, 5\)"),
    Case("Flow empty batch", lambda: flow()(torch.zeros(0, 4)), ValueError,
         r"x must hold at least one example"),
    Case("ConditionalFlow NaN cond",
         lambda: conditional_flow()(torch.zeros(2, 4), torch.full((2, 3), NAN)), ValueError,
         r"cond must be finite"),
    Case("ConditionalFlow cond rows",
         lambda: conditional_flow()(torch.zeros(2, 4), torch.zeros(3, 3)), ValueError,
         r"cond has 3 rows but the input has 2"),
    Case("DenseAutoencoder NaN", lambda: autoencoder().encode(images(nan=True)), ValueError,
         r"x must be finite"),
    Case("DenseAutoencoder size", lambda: autoencoder().encode(images(2, 3, 8)), ValueError,
         r"expects images \(batch, 3, 16, 16\), got \(2, 3, 8, 8\)"),
    Case("DenseAutoencoder uint8", lambda: autoencoder().encode(images(dtype=torch.uint8)),
         TypeError, r"x must be a floating-point tensor .*got torch\.uint8"),
    Case("DenseAutoencoder latent", lambda: autoencoder().decode(torch.zeros(2, 7)),
         ValueError, r"expects latents \(batch, 8\), got \(2, 7\)"),
    # IIN (chapter 5)
    Case("FactorTransformer NaN", lambda: iin()(torch.full((2, 16), NAN)), ValueError,
         r"x must be finite"),
    Case("FactorTransformer width", lambda: iin()(torch.zeros(2, 15)), ValueError,
         r"x must have shape \(batch, 16\)"),
    Case("FactorTransformer factors",
         lambda: iin().inverse([torch.zeros(2, 8), torch.zeros(2, 8)]), ValueError,
         r"expected factors of sizes \(6, 6, 4\), got \(8, 8\)"),
    # Net2Net (chapter 6)
    Case("Net2Net NaN code", lambda: net2net()(torch.full((2, 8), NAN), torch.zeros(2, 4)),
         ValueError, r"x must be finite"),
    Case("Net2Net condition width", lambda: net2net()(torch.zeros(2, 8), torch.zeros(2, 5)),
         ValueError, r"cond must have shape \(batch, 4\)"),
    Case("RegressionBaseline width",
         lambda: RegressionBaseline(Net2NetConfig.tiny())(torch.zeros(2, 5)), ValueError,
         r"z_cond must have shape \(batch, 32\), got \(2, 5\)"),
    Case("AutoencoderExpert NaN",
         lambda: AutoencoderExpert(autoencoder()).encode(images(nan=True)), ValueError,
         r"x must be finite"),
    Case("BigGANExpert code width",
         lambda: BigGANExpert(lambda z, c: z, z_dim=4, class_dim=2).decode(torch.zeros(1, 5)),
         ValueError, r"BigGAN codes are \(batch, 4 \+ 2\), got \(1, 5\)"),
    Case("WordEmbeddingEncoder one string", lambda: net2net().source.encode("a red square"),
         TypeError, r"captions must be a sequence of strings \(a list of captions\)"),
    Case("WordEmbeddingEncoder unknown word", lambda: net2net().source.encode(["a blue square"]),
         ValueError, r"caption 'a blue square' has no words or unknown words \['blue'\]"),
    # invariances (chapter 7)
    Case("ConditionalTransformer phi width",
         lambda: invariances()(torch.zeros(2, 16), torch.zeros(2, 5)), ValueError,
         r"cond must have shape \(batch, 4\)"),
    Case("ConditionalTransformer NaN",
         lambda: invariances()(torch.full((2, 16), NAN), torch.zeros(2, 4)), ValueError,
         r"x must be finite"),
    Case("DenseEmbedder width", lambda: DenseEmbedder(4, 2, 3).eval()(torch.zeros(2, 5)),
         ValueError, r"features must have shape \(batch, 4\), got \(2, 5\)"),
    Case("Greybox uint8",
         lambda: Greybox([torch.nn.Conv2d(3, 2, 1), GlobalAveragePool()], 1).encode(
             images(dtype=torch.uint8)), TypeError,
         r"x must be a floating-point tensor \(torch\.float32, the model's dtype\)"),
    Case("Greybox NaN",
         lambda: Greybox([torch.nn.Conv2d(3, 2, 1), GlobalAveragePool()], 1).encode(
             images(nan=True)), ValueError, r"x must be finite"),
    # RoDi (chapter 4)
    Case("RoDi NaN", lambda: rodi()(images(nan=True), images()), ValueError,
         r"x must be finite"),
    Case("RoDi float64", lambda: rodi()(images(), images(dtype=torch.float64)), TypeError,
         r"x_alpha must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("RoDi batch sizes", lambda: rodi()(images(2), images(3)), ValueError,
         r"batch sizes differ: x 2, x_alpha 3"),
    Case("RoDi empty batch", lambda: rodi()(images(0), images(0)), ValueError,
         r"x must hold at least one example"),
    Case("MIEstimator batch sizes",
         lambda: MIEstimator(RoDiConfig.tiny())(torch.zeros(2, 8, 4, 4), torch.zeros(3, 8, 4, 4)),
         ValueError, r"batch sizes differ: π 2, α 3"),
    # part-based (chapter 2), part discovery (chapter 8), style transfer (chapter 3)
    Case("PartBased NaN", lambda: part_based()(images(nan=True)), ValueError,
         r"image must be finite"),
    Case("PartBased size", lambda: part_based()(images(2, 3, 32)), ValueError,
         r"image must have shape \(b, 3, 16, 16\), got \(2, 3, 32, 32\)"),
    Case("PartDiscovery NaN", lambda: part_discovery()(images(nan=True), images()), ValueError,
         r"x must be finite"),
    Case("PartDiscovery views", lambda: part_discovery()(images(2), images(3)), ValueError,
         r"views differ in shape"),
    Case("Critic batch sizes",
         lambda: Critic(4, 3, 8, 1)(torch.zeros(2, 4), torch.zeros(3, 3)), ValueError,
         r"batch sizes differ: pi 2, alpha 3"),
    Case("Critic NaN in eval",
         lambda: Critic(4, 3, 8, 1).eval()(torch.full((2, 4), NAN), torch.zeros(2, 3)),
         ValueError, r"pi must be finite"),
    Case("PartDiscovery uint8", lambda: part_discovery().layout(images(dtype=torch.uint8)),
         TypeError, r"x must be a floating-point tensor .*got torch\.uint8"),
    Case("StyleTransfer NaN photo",
         lambda: style_transfer().encode_content(images(nan=True)), ValueError,
         r"photo must be finite"),
    Case("StyleTransfer painting size",
         lambda: style_transfer().encode_style(images(2, 3, 8)), ValueError,
         r"painting must have shape \(b, 3, 16, 16\), got \(2, 3, 8, 8\)"),
    Case("LocalGroupNorm channels", lambda: LocalGroupNorm(8, 4, 4)(torch.zeros(1, 6, 4, 4)),
         ValueError, r"x must have shape \(b, 8, h, w\), got \(1, 6, 4, 4\)"),
    Case("LocalGroupNorm rank", lambda: LocalGroupNorm(8, 4, 4)(torch.zeros(8, 4, 4)),
         ValueError, r"x must have shape \(b, 8, h, w\), got \(8, 4, 4\)"),
    Case("StyleTransfer style width",
         lambda: style_transfer().decode(torch.zeros(1, 16, 4, 4), torch.zeros(1, 3)),
         ValueError, r"style must have shape \(b, 16\)"),
    # data bias (chapter 9)
    Case("DataBiasModel NaN image", lambda: data_bias().encode(images(nan=True)), ValueError,
         r"x must be finite"),
    Case("DataBiasModel float domain",
         lambda: data_bias().to_shared(torch.zeros(2, 16), torch.zeros(2)), TypeError,
         r"domain must be a \(batch,\) integer tensor, got torch\.float32"),
    Case("DataBiasModel domain range",
         lambda: data_bias().to_shared(torch.zeros(2, 16), torch.tensor([0, 3])), ValueError,
         r"domain labels must lie in \[0, 3\), got \[0, 3\]"),
    # shape vs texture (chapter 11)
    Case("ShapeTextureNet NaN", lambda: shape_texture()(images(nan=True)), ValueError,
         r"images must be finite, got 1 non-finite values \(1 NaN\)"),
    Case("ShapeTextureNet uint8", lambda: shape_texture()(images(dtype=torch.uint8)), TypeError,
         r"images must be a floating-point tensor \(torch\.float32, the model's dtype\), got "
         r"torch\.uint8"),
    Case("ShapeTextureNet float64", lambda: shape_texture()(images(dtype=torch.float64)),
         TypeError, r"images must be torch\.float32 like the model's parameters, got "
         r"torch\.float64"),
    Case("ShapeTextureNet empty batch", lambda: shape_texture()(images(0)), ValueError,
         r"images must hold at least one example \(shape \(b, 3, h, w\)\), got an empty batch"),
    Case("ShapeTextureNet channels", lambda: shape_texture()(images(2, 1)), ValueError,
         r"images must be \(b, 3, h, w\), got \(2, 1, 16, 16\)"),
    # GeoFree's explicit baseline (chapter 12)
    Case("ExplicitBaseline NaN source",
         lambda: explicit_baseline()(*views(source=images(nan=True))), ValueError,
         r"source must be finite, got 1 non-finite values"),
    Case("ExplicitBaseline empty batch", lambda: explicit_baseline()(*views(0)), ValueError,
         r"source must hold at least one example"),
    Case("ExplicitBaseline float64",
         lambda: explicit_baseline()(*views(source=images(dtype=torch.float64))), TypeError,
         r"source must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("ExplicitBaseline depth size",
         lambda: explicit_baseline()(*views(depth=torch.ones(2, 1, 16, 8))), ValueError,
         r"source_depth must have shape \(2, 1, 16, 16\), got \(2, 1, 16, 8\)"),
    Case("ExplicitBaseline camera keys",
         lambda: explicit_baseline()(*views(camera={"R": torch.eye(3)})), ValueError,
         r"camera must be a dict with 'R', 't' and 'K', got \['R'\]"),
    # ImageBART (chapter 13)
    Case("ImageBART float codes",
         lambda: imagebart()(torch.ones(2, dtype=torch.long), codes(dtype=torch.float32),
                             codes()), TypeError,
         r"x_t must be integer codes \(b, 16\), got torch\.float32 \(2, 16\)"),
    Case("ImageBART codes out of range",
         lambda: imagebart()(torch.ones(2, dtype=torch.long), codes(fill=99), codes()),
         ValueError, r"tokens must lie in \[0, 12\), got \[1, 99\]"),
    Case("ImageBART scale out of range",
         lambda: imagebart()(torch.full((2,), 9), codes(), codes()), ValueError,
         r"scales must lie in \[1, 3\], got \[9, 9\]"),
    Case("ImageBART empty batch",
         lambda: imagebart()(torch.ones(0, dtype=torch.long), codes(0), codes(0)), ValueError,
         r"x_t must hold at least one example, got an empty batch"),
    # latent diffusion (chapter 14)
    Case("LatentDiffusion NaN image", lambda: ldm().encode(images(nan=True)), ValueError,
         r"x must be finite, got 1 non-finite values"),
    Case("LatentDiffusion uint8 image", lambda: ldm().encode(images(dtype=torch.uint8)),
         TypeError, r"x must be a floating-point tensor .*got torch\.uint8"),
    Case("LatentDiffusion NaN latent",
         lambda: ldm().denoise(images(2, 4, 8, nan=True), torch.full((2,), 0.5)), ValueError,
         r"z_t must be finite"),
    Case("LatentDiffusion empty batch",
         lambda: ldm().denoise(images(0, 4, 8), torch.full((0,), 0.5)), ValueError,
         r"z_t must hold at least one example"),
    Case("LatentDiffusion label range",
         lambda: ldm().denoise(images(2, 4, 8), torch.full((2,), 0.5), torch.tensor([0, 99])),
         ValueError, r"class labels must lie in 0\.\.10"),
    # SD3's MMDiT (chapter 17; LADD's student and teacher, chapter 18)
    Case("MMDiT NaN", mmdit_call(x=images(2, 4, 8, nan=True)), ValueError,
         r"x must be finite, got 1 non-finite values \(1 NaN\)"),
    Case("MMDiT float64", mmdit_call(x=images(2, 4, 8, dtype=torch.float64)), TypeError,
         r"x must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("MMDiT uint8", mmdit_call(x=images(2, 4, 8, dtype=torch.uint8)), TypeError,
         r"x must be a floating-point tensor \(torch\.float32, the model's dtype\), got "
         r"torch\.uint8"),
    Case("MMDiT empty batch", mmdit_call(x=images(0, 4, 8)), ValueError,
         r"x must hold at least one example"),
    Case("MMDiT channels", mmdit_call(x=images(2, 3, 8)), ValueError,
         r"x must be \(b, 4, h, w\), got \(2, 3, 8, 8\)"),
    Case("MMDiT NaN time", mmdit_call(t=torch.full((2,), NAN)), ValueError,
         r"t must be finite, got 2 non-finite values"),
    Case("MMDiT integer time", mmdit_call(t=torch.zeros(2, dtype=torch.long)), TypeError,
         r"t must be a floating-point tensor, got torch\.int64"),
    Case("MMDiT NaN context", mmdit_call(context=torch.full((2, 4, 32), NAN)), ValueError,
         r"cond\['context'\] must be finite"),
    Case("MMDiT pooled width", mmdit_call(pooled=torch.zeros(2, 5)), ValueError,
         r"cond\['pooled'\] must be \(2, 32\), got \(2, 5\)"),
    # Self-Flow's DiT (chapter 19)
    Case("SelfFlowDiT NaN", lambda: selfflow()(images(nan=True), 0.5), ValueError,
         r"x must be finite, got 1 non-finite values"),
    Case("SelfFlowDiT float64", lambda: selfflow()(images(dtype=torch.float64), 0.5),
         TypeError, r"x must be torch\.float32 like the model's parameters, got torch\.float64"),
    Case("SelfFlowDiT uint8", lambda: selfflow()(images(dtype=torch.uint8), 0.5), TypeError,
         r"x must be a floating-point tensor .*got torch\.uint8"),
    Case("SelfFlowDiT empty batch", lambda: selfflow()(images(0), 0.5), ValueError,
         r"x must hold at least one example \(shape \(b, 3, 16, 16\)\)"),
    Case("SelfFlowDiT NaN time", lambda: selfflow()(images(), torch.full((2,), NAN)),
         ValueError, r"t must be finite, got 2 non-finite values"),
    Case("SelfFlowDiT size", lambda: selfflow()(images(2, 3, 8), 0.5), ValueError,
         r"x must be \(b, 3, 16, 16\), got \(2, 3, 8, 8\)"),
]  # fmt: skip

LOADER_CASES = [
    Case("load_checkpoint missing",
         lambda: load_checkpoint(torch.nn.Linear(2, 2), _f("no.safetensors")),
         WeightsError, r"weights file not found: .*no\.safetensors\. Save one with"),
    Case("load_checkpoint truncated",
         lambda: load_checkpoint(torch.nn.Linear(2, 2), _f("truncated.safetensors")),
         WeightsError, r"truncated\.safetensors is not a readable safetensors file"),
    Case("load_checkpoint other model",
         lambda: load_checkpoint(torch.nn.Linear(2, 3), _f("good.safetensors")), WeightsError,
         r"good\.safetensors has tensors of the wrong shape for Linear .*2 shape mismatches "
         r"\['weight: file \(2, 2\) vs model \(3, 2\)'"),
    Case("load_checkpoint unknown keys",
         lambda: load_checkpoint(torch.nn.Sequential(torch.nn.Linear(3, 3)),
                                 _f("good.safetensors")),
         WeightsError, r"does not match Sequential \(strict\): 2 missing keys "
         r"\['0\.bias', '0\.weight'\], 2 unexpected keys \['bias', 'weight'\]"),
    Case("save_checkpoint suffix",
         lambda: save_checkpoint(torch.nn.Linear(2, 2), _f("model.pt")), WeightsError,
         r"checkpoints are \.safetensors files, got 'model\.pt'"),
    Case("load_vqgan missing", lambda: load_vqgan(_f("absent.ckpt")), CheckpointError,
         r"weights file not found: .*absent\.ckpt.*never downloads"),
    Case("load_vqgan truncated", lambda: load_vqgan(_f("truncated.pt")), CheckpointError,
         r"could not read .*truncated\.pt as a weights-only PyTorch checkpoint"),
    Case("load_vqgan unsafe", lambda: load_vqgan(_f("unsafe.ckpt")), CheckpointError,
         r"names a global outside the allow-list .*GLOBAL print\); it is not unpickled"),
    Case("load_state_dict_file missing", lambda: load_state_dict_file(_f("vgg.pth")),
         WeightsError, r"weights file not found: .*vgg\.pth\. Fetch the file yourself"),
    Case("load_state_dict_file truncated", lambda: load_state_dict_file(_f("truncated.pt")),
         WeightsError, r"could not read .*truncated\.pt as a weights-only PyTorch checkpoint"),
    Case("load_state_dict_file unsafe", lambda: load_state_dict_file(_f("unsafe.pt")),
         WeightsError, r"refused to read .*unsafe\.pt: its pickle names a global outside"),
    Case("BigGANExpert missing",
         lambda: BigGANExpert.from_file(torch.nn.Linear(2, 2), _f("biggan.pth")),
         WeightsError, r"not found: .*biggan\.pth\. BigGAN weights: the official code"),
    Case("BigGANExpert unsafe",
         lambda: BigGANExpert.from_file(torch.nn.Linear(2, 2), _f("unsafe.pt")), WeightsError,
         r"refused to read .*unsafe\.pt: .*allow-list"),
    Case("SentenceEmbedder missing", lambda: SentenceEmbedder(_f("sbert")), FileNotFoundError,
         r"SBERT weights not found at .*sbert"),
    Case("load_feature_net missing", lambda: load_feature_net(_f("fid.safetensors")),
         WeightsError, r"not found: .*fid\.safetensors\. These are the FID-style feature"),
    Case("load_feature_net truncated", lambda: load_feature_net(_f("truncated.safetensors")),
         WeightsError, r"truncated\.safetensors is not a readable safetensors file"),
    Case("ImageFolder missing", lambda: ImageFolder(_f("nowhere"), 16), FileNotFoundError,
         r"image folder '.*nowhere' does not exist\. esser_lab never downloads data"),
    Case("ImageFolder a file", lambda: ImageFolder(_f("file.txt"), 16), FileNotFoundError,
         r"image folder '.*file\.txt' is not a folder"),
    Case("ImageFolder empty", lambda: ImageFolder(_f("empty"), 16), FileNotFoundError,
         r"no image files under '.*empty': looked \(recursively\) for files ending in \.png"),
    Case("ImageFolder size", lambda: ImageFolder(files(), 0), ValueError, r"size"),
    Case("ImageFolder extensions", lambda: ImageFolder(files(), 16, extensions=".png"),
         ValueError, r"extensions must be a non-empty tuple of endings, got '\.png'"),
    Case("ImageFolderDataModule val_fraction",
         lambda: _datamodule()(files(), 16, 4, val_fraction=1.0), ValueError,
         r"val_fraction must lie in \(0, 1\), got 1\.0"),
    Case("ImageFolderDataModule missing folder",
         lambda: _datamodule()(_f("nowhere"), 16, 4).setup(), FileNotFoundError,
         r"image folder '.*nowhere' does not exist"),
    Case("load_image not an image", lambda: load_image(_f("not_an_image.png"), 16), ValueError,
         r"cannot read image file '.*not_an_image\.png'"),
]  # fmt: skip

CASES = CONFIG_CASES + MODEL_CASES + LOADER_CASES


@pytest.fixture(autouse=True)
def _default_finite_policy(monkeypatch):
    monkeypatch.delenv(FINITE_ENV, raising=False)


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_gets_a_clear_error(case: Case):
    with pytest.raises(case.error, match=case.match) as caught:
        case.call()
    assert type(caught.value) is case.error  # not a subclass by accident


def test_good_inputs_pass():
    """The rows' errors come from the one bad thing: the same calls with good inputs run."""
    c = VUNetConfig.tiny()
    vunet()(images(2, c.shape_channels), images(2, c.num_boxes * 3, c.crop_size))
    vqmodel()(images())
    flow()(torch.zeros(2, 4))
    ActNorm(4).train()(torch.randn(2, 4))
    ActNorm(4).train()(torch.randn(1, 4, 2, 2))  # one image, four pixels: a usable first batch
    rodi()(images(), images())
    part_based()(images())
    data_bias().to_shared(torch.zeros(2, 16), torch.tensor([0, 2]))
    iin().inverse([torch.zeros(2, 6), torch.zeros(2, 6), torch.zeros(2, 4)])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts: any float dtype goes
        vqmodel()(images(dtype=torch.bfloat16))


def test_checks_do_not_change_the_numbers(monkeypatch):
    """Checked (the default on the CPU) and unchecked calls give bit-identical outputs."""
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    checked, _ = vqmodel()(x)
    monkeypatch.setenv(FINITE_ENV, "0")
    unchecked, _ = vqmodel()(x)
    assert torch.equal(checked, unchecked)


def test_nan_checks_follow_the_policy(monkeypatch):
    """NaN is read on the CPU always; ESSER_LAB_CHECK_FINITE=0 turns the reading off."""
    monkeypatch.setenv(FINITE_ENV, "0")
    out, _ = vqmodel()(images(nan=True))  # no error: the check is off
    assert out.shape == (2, 3, 16, 16)
    monkeypatch.setenv(FINITE_ENV, "1")
    with pytest.raises(ValueError, match="x must be finite"):
        vqmodel()(images(nan=True))


@pytest.mark.parametrize(
    ("device", "training", "env", "reads"),
    [
        ("cpu", True, None, True),  # the CPU: always (no host sync to avoid)
        ("cuda", True, None, False),  # a GPU training step: never (it would be a host sync)
        ("cuda", False, None, True),  # a GPU outside training (evaluation, sampling): read
        ("cuda", None, None, True),  # no training flag given: not a training step
        ("cuda", True, "1", True),  # asked for everywhere
        ("cpu", False, "0", False),  # turned off everywhere
        ("meta", False, "1", False),  # meta tensors have no values
    ],
)
def test_the_finite_policy(monkeypatch, device, training, env, reads):
    from types import SimpleNamespace

    from esser_lab.checks import finite_check_enabled

    if env is not None:
        monkeypatch.setenv(FINITE_ENV, env)
    stand_in = SimpleNamespace(device=SimpleNamespace(type=device))  # no CUDA needed
    assert finite_check_enabled(stand_in, training) is reads


def test_a_trainers_training_stage_is_a_training_step():
    """A frozen part (``training`` False) inside a training step reads no values on a GPU: a
    watched trainer in its training stage counts as a step; outside it (evaluation, after the
    fit) the reads are back, and a trainer that is gone is forgotten."""
    from types import SimpleNamespace

    from esser_lab import checks

    class Trainer:  # Lightning's Trainer.training: the stage is RunningStage.TRAINING
        training = False

    gpu = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    trainer = Trainer()
    checks.watch_trainer(trainer)
    assert checks.finite_check_enabled(gpu, training=False)
    trainer.training = True
    assert checks.in_training_step()
    assert not checks.finite_check_enabled(gpu, training=False)  # a frozen part in the step
    assert not checks.values_check_enabled(gpu, training=None)
    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    assert checks.values_check_enabled(cpu, training=True)  # a CPU read is no sync
    del trainer
    assert not checks.in_training_step()
    assert checks.finite_check_enabled(gpu, training=False)


def test_range_checks_follow_the_policy(monkeypatch):
    """``in_range`` reads where the policy allows and reports what it found; where it does not
    (here: turned off), it passes without reading."""
    from esser_lab.checks import in_range

    assert in_range(torch.tensor([0, 2]), 0, 3)
    assert not in_range(torch.tensor([0, 3]), 0, 3)
    assert in_range(torch.zeros(0, dtype=torch.long), 0, 3)
    monkeypatch.setenv(FINITE_ENV, "0")
    assert in_range(torch.tensor([0, 3]), 0, 3)


def test_the_conventions_page_counts_this_table():
    page = (Path(__file__).parents[1] / "book" / "conventions.md").read_text()
    counts = dict(
        (what, int(n))
        for n, what in re.findall(r"\*\*(\d+)\*\* (configs?|models?|loaders?) cases", page)
    )
    assert counts == {
        "config": len(CONFIG_CASES),
        "model": len(MODEL_CASES),
        "loader": len(LOADER_CASES),
    }, counts
