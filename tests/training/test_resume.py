"""Exact resume: N steps in one go equal N/2 steps + save + ``fit(ckpt_path=…)`` + N/2 steps.

Every Lightning system trains from ``STEPS // 2`` saved steps to ``STEPS`` and must end with the
bitwise weights, buffers, optimiser states and history of the run that never stopped, with the
checkpoint saved in the middle of a data epoch (3 batches an epoch: the second half finishes
epoch 0 and starts epoch 1) and at an epoch's end (2 batches an epoch). The fresh system of the
resumed run is built under another seed, and the global random state is scrambled before the
resumed ``fit``, so weights, noise and batch order can only come from the checkpoint. The systems
draw noise from the global generator (posterior samples, dropout, VUNet's latents), from their
own generator (the part-based transforms), switch players (style transfer's success rate) and
start a discriminator at ``disc_start`` within the run (VQGAN).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from esser_lab.data.modules import batch_loader
from esser_lab.scale import profile
from esser_lab.training.trainer import make_trainer

STEPS = 4
B = 2  # batch size
POSITIONS = {"mid-epoch": 3, "epoch end": 2}  # batches per epoch; the save is after STEPS // 2

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders


def _procedural(module_class, n: int, **kwargs) -> dict:
    module = module_class(16, n, num_train=n, num_val=1, seed=0, **kwargs)
    return module._generate(n, torch.Generator().manual_seed(7))


def _images(n: int) -> dict:
    return {"image": torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(7)) * 2 - 1}


def _vunet():
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.vunet import VUNetConfig, figure_boxes
    from esser_lab.vunet.training import LitVUNet

    config = replace(VUNetConfig.tiny(), lr_decay_begin=1, lr_decay_end=4, batch_size=B)
    return LitVUNet(config, figure_boxes()), lambda n: _procedural(FiguresDataModule, n)


def _part_based():
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.part_based.model import PartBasedConfig
    from esser_lab.part_based.training import LitPartBased

    system = LitPartBased(replace(PartBasedConfig.tiny(), batch_size=B))
    return system, lambda n: _procedural(FiguresDataModule, n)


def _style_transfer():
    from esser_lab.data.modules import ArtPairsDataModule
    from esser_lab.style_transfer.model import StyleTransferConfig
    from esser_lab.style_transfer.training import LitStyleTransfer

    # rate 0.5: the player that steps depends on the running success rate (saved state)
    config = replace(StyleTransferConfig.tiny(), batch_size=B, discriminator_success_rate=0.5)
    return LitStyleTransfer(config), lambda n: _procedural(ArtPairsDataModule, n)


def _rodi():
    from esser_lab.rodi.model import RoDiConfig
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi

    config = replace(RoDiConfig.tiny(), warmup_steps=1, batch_size=B, num_steps=STEPS)
    return LitRoDi(config), lambda n: _procedural(FigurePairsDataModule, n, jitter=0.1)


def _iin():
    from esser_lab.iin.model import IINConfig
    from esser_lab.iin.training import LitIIN

    config = replace(IINConfig.tiny(), factor_sizes=(3, 3, 10), decay_start=1, num_steps=STEPS)

    def make(n: int) -> dict:
        mean = torch.randn(n, config.z_dim, generator=torch.Generator().manual_seed(7))
        return {"posterior": torch.cat([mean, torch.full_like(mean, -2.0)], 1)}  # z is sampled

    return LitIIN(config), make


def _net2net_codes(n: int) -> dict:
    g = torch.Generator().manual_seed(7)
    return {"z_target": torch.randn(n, 16, generator=g), "z_cond": torch.randn(n, 8, generator=g)}


def _net2net_model():
    from esser_lab.net2net import AutoencoderExpert, Net2Net, Net2NetConfig, WordEmbeddingEncoder
    from esser_lab.nn.autoencoder import DenseAutoencoder

    config = replace(Net2NetConfig.tiny(), cond_in=8, n_flows=2, hidden_dim=16)
    autoencoder = DenseAutoencoder(in_size=16, in_channels=3, n_down=2, z_dim=16, width=4)
    words = WordEmbeddingEncoder(["a", "red", "circle"], 8)
    return Net2Net(config, words, AutoencoderExpert(autoencoder))


def _net2net():
    from esser_lab.net2net.training import LitNet2Net

    return LitNet2Net(_net2net_model()), _net2net_codes


def _regression():
    from esser_lab.net2net import RegressionBaseline
    from esser_lab.net2net.training import LitRegressionBaseline

    net = _net2net_model()
    return LitRegressionBaseline(net, RegressionBaseline(net.config)), _net2net_codes


def _invariances():
    from esser_lab.invariances import InvariancesConfig
    from esser_lab.invariances.training import LitInvariances

    config = InvariancesConfig.tiny()

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        mean = torch.randn(n, config.z_dim, generator=g)
        phi = torch.randn(n, config.cond_dim, generator=g)
        return {"phi": phi, "z_mean": mean, "z_logvar": torch.full_like(mean, -2.0)}

    return LitInvariances(config), make


def _part_discovery():
    from esser_lab.part_discovery.model import PartDiscoveryConfig
    from esser_lab.part_discovery.training import LitPartDiscovery, PartPairsDataModule

    config = replace(PartDiscoveryConfig.tiny(), mi_constraint=True, batch_size=B)
    return LitPartDiscovery(config), lambda n: _procedural(PartPairsDataModule, n)


def _data_bias():
    from esser_lab.data_bias import DataBiasConfig, sample_domains
    from esser_lab.data_bias.training import LitDataBias

    config = replace(DataBiasConfig.tiny(), n_flows=2, hidden_dim=32)

    def make(n: int) -> dict:
        x = sample_domains(torch.arange(n) % 2, 16, generator=torch.Generator().manual_seed(7))
        return {"image": x.image, "domain": x.domain}

    return LitDataBias(config), make


def _vqgan():
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN

    # the discriminator joins at step 1, before the save (its Adam state is in the checkpoint);
    # ``disc_start`` after the save is tested below
    config = replace(VQGANConfig.tiny(), batch_size=B, disc_start=1)
    return LitVQGAN(config), _images


def _taming_transformer():
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
    from esser_lab.taming.transformer_training import LitTamingTransformer

    first_stage = VQGANConfig(
        resolution=16,
        ch=32,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(4,),
        z_channels=8,
        embed_dim=8,
        n_embed=64,
    )  # fmt: skip  (never run: the batches carry codes)
    config = replace(TamingTransformerConfig.tiny(), embd_pdrop=0.1, resid_pdrop=0.1)
    model = TamingTransformer(config, VQModel(first_stage))

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        return {"z_indices": torch.randint(64, (n, 16), generator=g), "label": torch.arange(n) % 10}

    return LitTamingTransformer(model, learning_rate=3e-3), make


def _dense_autoencoder():
    from esser_lab.nn.autoencoder import DenseAutoencoder
    from esser_lab.training.first_stage import LitDenseAutoencoder

    autoencoder = DenseAutoencoder(in_size=16, in_channels=3, n_down=2, z_dim=8, width=4)
    return LitDenseAutoencoder(autoencoder), _images


def _kl_autoencoder():
    from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig
    from esser_lab.taming.training import LitGANAutoencoder

    # LDM's KL first stage: posterior noise, the learned logvar, the discriminator from step 1
    loss = replace(GANAutoencoderLossConfig.tiny(), disc_start=1)
    optimizer = GANOptimizerConfig(base_learning_rate=1e-3 / B, batch_size=B)
    model = AutoencoderKL(AutoencoderKLConfig.tiny(2))
    return LitGANAutoencoder(model, loss, optimizer), _images


def _latent_diffusion():
    from esser_lab.ldm.model import LatentDiffusion, LDMConfig
    from esser_lab.ldm.training import LitLatentDiffusion
    from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig

    # a frozen KL first stage (posterior noise), scale_by_std on the first batch, label dropout,
    # the system's own generator (steps, noise, dropout) and the EMA
    ldm = LatentDiffusion(LDMConfig.tiny(), AutoencoderKL(AutoencoderKLConfig.tiny(2)))

    def make(n: int) -> dict:
        return {**_images(n), "label": torch.arange(n) % 10}

    return LitLatentDiffusion(ldm), make


def _mmdit():
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.data import captioned_batch
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder
    from esser_lab.sd3.training import LitMMDiT

    # SD3's rectified flow: logit-normal t, noise and caption dropout from the system's own
    # generator, the warm-up schedule's state and the EMA
    model = MMDiT(MMDiTConfig.tiny())
    encoder = ToyTextEncoder(32, 32)

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        tokens = captioned_batch(n, 16, generator=g).tokens
        return {"latent": torch.randn(n, 4, 8, 8, generator=g), "tokens": tokens}

    rf = formulation("rf/lognorm(0.00,1.00)")
    system = LitMMDiT(model, rf, encoder, learning_rate=1e-3, warmup_steps=3,
                      caption_dropout=0.5, use_ema=True)  # fmt: skip
    return system, make


def _shape_texture():
    from esser_lab.data.cue_conflict import sample
    from esser_lab.shape_texture.model import ShapeTextureConfig, ShapeTextureNet
    from esser_lab.shape_texture.training import LitShapeTexture

    def make(n: int) -> dict:
        x = sample(n, 16, generator=torch.Generator().manual_seed(7), regime="shortcut")
        return {"image": x.image, "label": x.shape}

    return LitShapeTexture(ShapeTextureNet(ShapeTextureConfig.tiny())), make


def _imagebart():
    from esser_lab.imagebart.model import ImageBART, ImageBARTConfig
    from esser_lab.imagebart.training import LitImageBART

    model = ImageBART(replace(ImageBARTConfig.tiny(12, 16), dim=16))

    def make(n: int) -> dict:
        return {"codes": torch.randint(12, (n, 16), generator=torch.Generator().manual_seed(7))}

    return LitImageBART(model, learning_rate=3e-3), make


def _code_gpt():
    from esser_lab.imagebart.training import LitCodeGPT
    from esser_lab.nn.transformer import GPT

    def make(n: int) -> dict:
        return {"codes": torch.randint(12, (n, 16), generator=torch.Generator().manual_seed(7))}

    return LitCodeGPT(GPT(12, 16, n_layer=1, n_head=2, n_embd=16), "reverse", 3e-3), make


def _geo_transformer():
    from esser_lab.data import scenes
    from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer, first_stage_config
    from esser_lab.geofree.training import LitGeoTransformer
    from esser_lab.taming.model import VQModel

    # camera tokens + source codes (bidirectional) + target codes; the frozen VQGAN; the
    # warm-up-cosine schedule's state
    model = GeoTransformer(GeoFreeConfig.tiny(), VQModel(first_stage_config("tiny")))

    def make(n: int) -> dict:
        return scenes.sample_pairs(n, 16, generator=torch.Generator().manual_seed(7)).to_dict()

    return LitGeoTransformer(model, total_steps=10), make


def _explicit_baseline():
    from esser_lab.data import scenes
    from esser_lab.geofree.baseline import ExplicitBaseline
    from esser_lab.geofree.training import LitExplicitBaseline

    # the system's own generator draws the depth errors of every batch

    def make(n: int) -> dict:
        return scenes.sample_pairs(n, 16, generator=torch.Generator().manual_seed(7)).to_dict()

    return LitExplicitBaseline(ExplicitBaseline(width=8), 1e-3, 2, 10), make


def _ladd():
    from esser_lab.ladd.model import LADDConfig
    from esser_lab.ladd.training import LitLADD
    from esser_lab.sd3.data import captioned_batch
    from esser_lab.sd3.model import MMDiT, MMDiTConfig
    from esser_lab.sd3.text import ToyTextEncoder

    # the student's times, the re-noising t̂ and its noise from the system's own generator, the
    # student's and the heads' Adam states (two optimisers, manual optimisation)
    system = LitLADD(MMDiT(MMDiTConfig.tiny()), ToyTextEncoder(32, 32), LADDConfig.tiny())

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        tokens = captioned_batch(n, 16, generator=g).tokens
        return {"latent": torch.randn(n, 4, 8, 8, generator=g), "tokens": tokens}

    return system, make


def _self_flow():
    from esser_lab.selfflow.method import SelfFlowMethod
    from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT
    from esser_lab.selfflow.training import LitSelfFlow

    # dual timesteps, the token mask and the noise from the system's own generator, the EMA
    # teacher's weights
    model = SelfFlowDiT(replace(SelfFlowConfig.tiny(), depth=2, hidden=32, heads=2))
    method = replace(SelfFlowMethod.paper(), student_layer=1, teacher_layer=2, ema_decay=0.9)
    system = LitSelfFlow(model, method, learning_rate=1e-3)

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        return {"image": torch.rand(n, 3, 16, 16, generator=g) * 2 - 1}

    return system, make


def _keyframe():
    from esser_lab.data.video import sample_clips
    from esser_lab.keyframe.method import keyframe_samples
    from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
    from esser_lab.keyframe.training import LitKeyframe

    # Adam's state and the history; the fill problems (holes, flow noise) are fixed data
    system = LitKeyframe(KeyframeGenerator(KeyframeConfig.tiny()))

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        return keyframe_samples(sample_clips(n, generator=g), g).as_dict()

    return system, make


def _gen1():
    from esser_lab.data.video import sample_clips
    from esser_lab.diffusion import DiscreteSchedule
    from esser_lab.gen1.method import PixelFold
    from esser_lab.gen1.model import Gen1Config, Gen1UNet
    from esser_lab.gen1.training import LitGen1

    # the system's own generator draws t, ε, t_s, the content dropout and the image batches
    system = LitGen1(Gen1UNet(Gen1Config.tiny()), PixelFold(2), DiscreteSchedule.stable_diffusion())

    def make(n: int) -> dict:
        g = torch.Generator().manual_seed(7)
        clips = sample_clips(n, frames=4, generator=g)
        return {
            "video": clips.video,
            "depth": clips.depth,
            "content": torch.randn(n, 32, generator=g),
        }

    return system, make


SYSTEMS: dict[str, Callable] = {
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


def _state(system) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in system.state_dict().items()}


def _optimizer_tensors(trainer) -> list[torch.Tensor]:
    return [
        value
        for optimizer in trainer.optimizers
        for state in optimizer.state_dict()["state"].values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    ]


def _fit(build, batches_per_epoch: int, steps: int, seed: int, ckpt_path=None):
    torch.manual_seed(seed)
    system, make = build()
    loader = batch_loader(make(batches_per_epoch * B), B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
    if ckpt_path is not None:
        torch.manual_seed(12345)  # a global random state the checkpoint must replace
    trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
    assert trainer.global_step == steps
    return system, trainer


def resumed_and_uninterrupted(build, batches_per_epoch: int, tmp_path: Path):
    """The systems (and trainers) of the resumed run and of the run that never stopped."""
    straight, straight_trainer = _fit(build, batches_per_epoch, STEPS, seed=0)
    first, trainer = _fit(build, batches_per_epoch, STEPS // 2, seed=0)
    path = tmp_path / "half.ckpt"
    trainer.save_checkpoint(path)
    resumed, resumed_trainer = _fit(build, batches_per_epoch, STEPS, seed=1, ckpt_path=path)
    return (resumed, resumed_trainer), (straight, straight_trainer)


def assert_same_run(resumed, straight) -> None:
    (system, trainer), (expected, expected_trainer) = resumed, straight
    a, b = _state(system), _state(expected)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == [], f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:5]}"
    mine, theirs = _optimizer_tensors(trainer), _optimizer_tensors(expected_trainer)
    assert len(mine) == len(theirs) > 0
    assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))
    for name in type(system).resume_attributes:
        assert getattr(system, name) == getattr(expected, name), name


def test_every_system_is_covered():
    import esser_lab

    root = Path(esser_lab.__file__).parent
    found = {
        m for f in root.rglob("*.py") for m in re.findall(r"^class (Lit\w+)\(", f.read_text(), re.M)
    }
    assert found == set(SYSTEMS)


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_resume_is_exact(name, position, tmp_path):
    resumed, straight = resumed_and_uninterrupted(SYSTEMS[name], POSITIONS[position], tmp_path)
    assert_same_run(resumed, straight)


def test_vqgan_discriminator_starting_after_the_resume(tmp_path):
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN

    config = replace(VQGANConfig.tiny(), batch_size=B, disc_start=3)

    def build():
        return LitVQGAN(config), _images

    resumed, straight = resumed_and_uninterrupted(build, 3, tmp_path)
    assert_same_run(resumed, straight)
    weights = [h["d_weight"] for h in resumed[0].history]
    assert weights[:3] == [0.0] * 3 and weights[3] > 0  # D joined at step 3, after the resume


def test_a_plain_dataloader_is_not_resumed_exactly(tmp_path, monkeypatch):
    """The control: with a loader that has no position to save (Lightning's own resume), the
    resumed run trains on other batches, so the test above can fail."""
    from torch.utils.data import DataLoader

    from esser_lab.data.modules import BatchIndexSampler, TensorBatches

    def plain_loader(fields, batch_size, *, shuffle, seed=0):
        data = TensorBatches(fields)
        sampler = BatchIndexSampler(len(data), batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(data, sampler=sampler, batch_size=None)

    monkeypatch.setitem(globals(), "batch_loader", plain_loader)
    resumed, straight = resumed_and_uninterrupted(_dense_autoencoder, 2, tmp_path)
    a, b = _state(resumed[0]), _state(straight[0])
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_holds_plain_data_only(tmp_path):
    """The saved extra state loads with ``weights_only=True``; unsafe attributes are refused."""
    from esser_lab.training.resume import CHECKPOINT_KEY

    system, trainer = _fit(_style_transfer, 2, 1, seed=0)
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    saved = checkpoint[CHECKPOINT_KEY]["attributes"]
    assert set(saved) == {"success_rate", "generator_steps", "discriminator_steps"}
    assert saved["generator_steps"] + saved["discriminator_steps"] >= 1
    (loader_state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (loader_state["epoch"], loader_state["position"]) == (0, 1)
    system.success_rate = object()
    with pytest.raises(TypeError, match="success_rate holds a object"):
        trainer.save_checkpoint(tmp_path / "bad.ckpt")


def test_sampler_state_round_trip_and_errors():
    from esser_lab.data.modules import BatchIndexSampler

    sampler = BatchIndexSampler(10, 4, shuffle=True, seed=3)
    epoch0 = list(sampler)
    iterator = iter(sampler)
    first = next(iterator)
    state = sampler.state_dict()
    assert (state["epoch"], state["position"]) == (1, 1)
    again = BatchIndexSampler(10, 4, shuffle=True, seed=3)
    again.load_state_dict(state)
    again.set_epoch(7)  # Lightning's call after the load does not move the resumed pass
    rest = list(again)
    assert [b.tolist() for b in rest] == [b.tolist() for b in iterator]
    assert not torch.equal(first, epoch0[0])
    assert sampler.state_dict()["position"] == 0 and sampler.state_dict()["epoch"] == 2
    with pytest.raises(ValueError, match="seed 3 vs 4"):
        BatchIndexSampler(10, 4, shuffle=True, seed=4).load_state_dict(state)
    with pytest.raises(ValueError, match="position must be < 3"):
        again.load_state_dict({**state, "position": 3})


def test_chapter_10_branches_are_the_runs_that_never_stopped(tmp_path):
    """Chapter 10's recipe: a shared L1 prefix of ``disc_start`` steps that ends an epoch, saved
    and resumed twice (the discriminator on; never on). Each branch is bitwise the run trained
    in one go with its config, from the same seed, through the same calls as the chapter."""
    from esser_lab.data.modules import SpritesDataModule
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN
    from esser_lab.training import seed_everything

    shared = replace(VQGANConfig.tiny(), batch_size=B, disc_start=2, num_steps=STEPS)
    data = SpritesDataModule(16, B, num_train=2 * B, num_val=2, seed=0)  # the prefix ends epoch 0

    def fit(config: VQGANConfig, steps: int, resume: Path | None = None):
        seed_everything(0)
        system = LitVQGAN(config)
        trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
        trainer.fit(system, datamodule=data, ckpt_path=resume, weights_only=True)
        return system, trainer

    _, trainer = fit(shared, shared.disc_start)
    path = tmp_path / "prefix.ckpt"
    trainer.save_checkpoint(path)
    for branch in (shared, replace(shared, disc_start=shared.num_steps)):
        resumed = fit(branch, branch.num_steps, resume=path)
        assert_same_run(resumed, fit(branch, branch.num_steps))
        gan = [h["d_weight"] > 0 for h in resumed[0].history]
        assert gan == [False, False] + [branch.disc_start < STEPS] * 2


def test_checkpoints_saved_during_fit_resume_exactly(tmp_path):
    """``ModelCheckpoint`` (``python -m esser_lab … fit``) saves inside the loop, after a batch:
    a resume from any of them, mid-epoch or at an epoch's end, is exact too."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(steps: int, ckpt_path: Path | None = None, save: bool = False):
        torch.manual_seed(0)
        system, make = _dense_autoencoder()
        callbacks = [ModelCheckpoint(tmp_path, every_n_train_steps=1, save_top_k=-1)] * save
        trainer = L.Trainer(
            accelerator="cpu", max_steps=steps, logger=False, callbacks=callbacks,
            enable_checkpointing=save, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        torch.manual_seed(12345)
        loader = batch_loader(make(3 * B), B, shuffle=True, seed=0)
        trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
        return _state(system)

    expected = fit(5, save=True)
    paths = sorted(tmp_path.glob("*.ckpt"), key=lambda p: int(p.stem.split("step=")[1]))
    assert [int(p.stem.split("step=")[1]) for p in paths] == [1, 2, 3, 4, 5]
    for path in paths[:-1]:  # steps 1, 2 mid-epoch; 3 at the end of epoch 0; 4 mid-epoch 1
        resumed = fit(5, ckpt_path=path)
        assert all(torch.equal(resumed[k], expected[k]) for k in expected), path.name


def test_image_folder_runs_resume_exactly(tmp_path):
    """``ImageFolderDataModule`` (the user's own images at small/full) is resumable too."""
    from PIL import Image

    from esser_lab.data.modules import ImageFolderDataModule

    for i in range(7):
        Image.new("RGB", (20, 16), (30 * i, 255 - 30 * i, 7 * i)).save(tmp_path / f"{i}.png")

    def fit(steps: int, ckpt_path: Path | None = None):
        torch.manual_seed(0)
        system, _ = _dense_autoencoder()
        data = ImageFolderDataModule(tmp_path, 16, batch_size=B, val_fraction=0.1, seed=0)
        trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
        torch.manual_seed(12345)
        trainer.fit(system, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
        return system, trainer

    straight = fit(5)  # 6 training images: 3 batches an epoch
    for steps in (2, 3):  # mid-epoch, epoch end
        _, trainer = fit(steps)
        trainer.save_checkpoint(tmp_path / f"{steps}.ckpt")
        assert_same_run(fit(5, tmp_path / f"{steps}.ckpt"), straight)


def test_loader_position_counts_batches_handed_out_not_read_ahead():
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches

    sampler = BatchIndexSampler(12, 2, shuffle=True, seed=0)
    data = TensorBatches({"x": torch.arange(12)})
    loader = BatchLoader(data, sampler, num_workers=2)
    iterator = iter(loader)
    first = next(iterator)
    assert sampler.state_dict()["position"] > 1  # the workers were sent more indices
    state = loader.state_dict()
    assert (state["epoch"], state["position"]) == (0, 1)
    rest = torch.cat([batch["x"] for batch in iterator])
    again = BatchLoader(data, BatchIndexSampler(12, 2, shuffle=True))
    again.load_state_dict(state)
    assert torch.equal(torch.cat([batch["x"] for batch in again]), rest)
    assert sorted([*first["x"].tolist(), *rest.tolist()]) == list(range(12))
