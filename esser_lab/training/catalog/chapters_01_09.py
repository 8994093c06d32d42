"""The catalog's builders for chapters 1-9 (2018-2020): VUNet to data bias."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from esser_lab.training.catalog.base import (
    Built,
    MakeBatch,
    Preset,
    Switches,
    preset_config,
    procedural,
    sized,
    without_vgg,
)

# ---- chapters 1-4: VUNet, part-based, style transfer, RoDi ---------------------------------------


def vunet(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.vunet import VUNetConfig, figure_boxes
    from esser_lab.vunet.training import LitVUNet

    config = sized(without_vgg(preset_config(VUNetConfig, preset)), batch_size)
    if s.steps is not None:  # the decay (and the KL ramp, tied to its end) within the run
        config = replace(config, lr_decay_begin=1, lr_decay_end=max(s.steps, 2))
    make = procedural(FiguresDataModule, config.image_size)
    return Built(LitVUNet(config, figure_boxes()), make, config.batch_size)


def part_based(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.part_based.model import PartBasedConfig
    from esser_lab.part_based.training import LitPartBased

    config = sized(preset_config(PartBasedConfig, preset), batch_size)
    make = procedural(FiguresDataModule, config.image_size)
    return Built(LitPartBased(config), make, config.batch_size)


def style_transfer(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data.modules import ArtPairsDataModule
    from esser_lab.style_transfer.model import StyleTransferConfig
    from esser_lab.style_transfer.training import LitStyleTransfer

    config = sized(preset_config(StyleTransferConfig, preset), batch_size)
    if s.success_rate is not None:
        config = replace(config, discriminator_success_rate=s.success_rate)
    if s.noise_free:
        config = replace(config, style_dropout=0.0)
    make = procedural(ArtPairsDataModule, config.image_size)
    return Built(LitStyleTransfer(config), make, config.batch_size)


def rodi(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.rodi.model import RoDiConfig
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi

    config = sized(preset_config(RoDiConfig, preset), batch_size)
    if s.warmup_steps is not None:  # before it: λ and γ frozen, the constraint off
        config = replace(config, warmup_steps=s.warmup_steps)
    if s.steps is not None:
        config = replace(config, num_steps=s.steps)
    make = procedural(FigurePairsDataModule, config.image_size, jitter=0.1)
    return Built(LitRoDi(config), make, config.batch_size)


# ---- chapters 5-9: IIN, Net2Net, invariances, part discovery, data bias --------------------------


def iin(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.iin.model import IINConfig
    from esser_lab.iin.training import LitIIN

    config = sized(preset_config(IINConfig, preset), batch_size)
    if preset == "tiny":
        config = replace(config, factor_sizes=(3, 3, 10))
    if s.steps is not None:  # the learning-rate decay from step 1
        config = replace(config, decay_start=1, num_steps=s.steps)
    logvar = -30.0 if s.noise_free else -2.0  # σ ≈ 3e-7, or a sampled z

    def make(n: int, generator: torch.Generator) -> dict:
        mean = torch.randn(n, config.z_dim, generator=generator)
        return {"posterior": torch.cat([mean, torch.full_like(mean, logvar)], 1)}

    return Built(LitIIN(config), make, config.batch_size)


def _net2net_model(preset: Preset) -> nn.Module:
    from esser_lab.net2net import AutoencoderExpert, Net2Net, Net2NetConfig, WordEmbeddingEncoder
    from esser_lab.nn.autoencoder import DenseAutoencoder

    config = preset_config(Net2NetConfig, preset)
    width = 32
    if preset == "tiny":
        config, width = replace(config, cond_in=8, n_flows=2, hidden_dim=16), 4
    autoencoder = DenseAutoencoder(16, 3, n_down=2, z_dim=config.dim, width=width)
    words = WordEmbeddingEncoder(["a", "red", "circle"], config.cond_in)
    return Net2Net(config, words, AutoencoderExpert(autoencoder))


def _net2netcodes(config: Any) -> MakeBatch:
    def make(n: int, generator: torch.Generator) -> dict:  # chapter 6 trains on codes
        z_target = torch.randn(n, config.dim, generator=generator)
        return {"z_target": z_target, "z_cond": torch.randn(n, config.cond_in, generator=generator)}

    return make


def net2net(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.net2net.training import LitNet2Net

    net = _net2net_model(preset)
    b = batch_size or net.config.batch_size
    return Built(LitNet2Net(net), _net2netcodes(net.config), b)


def regression(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.net2net import RegressionBaseline
    from esser_lab.net2net.training import LitRegressionBaseline

    net = _net2net_model(preset)
    system = LitRegressionBaseline(net, RegressionBaseline(net.config))
    return Built(system, _net2netcodes(net.config), batch_size or net.config.batch_size)


def invariances(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.invariances import InvariancesConfig
    from esser_lab.invariances.training import LitInvariances

    config = sized(preset_config(InvariancesConfig, preset), batch_size)
    logvar = -60.0 if s.noise_free else -2.0  # σ ≈ 0, or a sampled z

    def make(n: int, generator: torch.Generator) -> dict:
        mean = torch.randn(n, config.z_dim, generator=generator)
        phi = torch.randn(n, config.cond_dim, generator=generator)
        return {"phi": phi, "z_mean": mean, "z_logvar": torch.full_like(mean, logvar)}

    return Built(LitInvariances(config), make, config.batch_size)


def part_discovery(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.part_discovery.model import PartDiscoveryConfig
    from esser_lab.part_discovery.training import LitPartDiscovery, PartPairsDataModule

    config = sized(without_vgg(preset_config(PartDiscoveryConfig, preset)), batch_size)
    config = replace(config, mi_constraint=True)  # the critics too
    make = procedural(PartPairsDataModule, config.image_size)
    return Built(LitPartDiscovery(config), make, config.batch_size)


def data_bias(preset: Preset, batch_size: int | None, s: Switches) -> Built:
    from esser_lab.data_bias import DataBiasConfig, sample_domains
    from esser_lab.data_bias.training import LitDataBias

    config = sized(preset_config(DataBiasConfig, preset), batch_size)
    if preset == "tiny":
        config = replace(config, n_flows=2, hidden_dim=32)

    def make(n: int, generator: torch.Generator) -> dict:
        domain = torch.arange(n) % config.num_domains
        x = sample_domains(domain, config.image_size, generator=generator)
        return {"image": x.image, "domain": x.domain}

    return Built(LitDataBias(config), make, config.batch_size)
