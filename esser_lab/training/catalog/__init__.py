"""Every Lightning system of the book, built at a preset with a batch maker: for smoke tests,
benchmarks and the harness tests (DDP, exact resume, bf16, ``bench/gpu_smoke.py``).

``build(name, preset, batch_size, **switches)`` returns a :class:`Built`: the system (``name`` is
its class name, ``LitVUNet``), a maker ``make(n, generator) -> batch`` of the system's own data
(every draw from ``generator``, so two calls with equal generators give equal batches) and the
per-process batch size the system was configured for.

Presets: ``"small"`` and ``"full"`` are each config's ``small()`` and ``paper()``, with the first
stages the chapters pair them with; ``"tiny"`` is ``tiny()``, shrunk further where a harness test
trains all 25 systems (a 2-layer flow, a 1-layer GPT). Weights are random; pretrained parts are
seeded stand-ins of the same size (LPIPS's VGG16), and a VGG19 likelihood becomes MSE.

The switches (:class:`Switches`) are what the harnesses really vary; a system ignores those it
has no use for:

* ``steps``: the run's length; step schedules fit into it (the VUNet's learning-rate decay and
  KL ramp, RoDi's and the IIN's schedules), so a short run crosses them;
* ``noise_free``: the noise a config can switch off is off (style dropout, a posterior variance
  of ~0, GeoFree's depth error): two DDP ranks must then equal one process;
* ``stochastic``: optional noise and state on (the taming transformer's token noise and dropout,
  SD3's caption dropout and EMA), for the resume and bf16 tests;
* ``disc_start``, ``warmup_steps``, ``success_rate``: when the discriminators (VQGAN, the KL
  autoencoder), the warm-up (RoDi's constraint, SD3's learning rate) and the style-transfer
  players' alternation start (a negative rate: both players step every batch).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esser_lab.training.catalog import chapters_01_09 as early
from esser_lab.training.catalog import chapters_10_19 as late
from esser_lab.training.catalog.base import PRESETS, Built, MakeBatch, Preset, Switches

__all__ = [
    "PRESETS", "SYSTEMS", "Built", "MakeBatch", "Preset", "Switches", "build", "lightning_systems",
]  # fmt: skip


def build(
    name: str, preset: Preset = "tiny", batch_size: int | None = None, **switches: Any
) -> Built:
    """System ``name`` (``"LitVUNet"``, …) at ``preset``; ``batch_size`` ``None``: the preset's."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; expected one of {sorted(SYSTEMS)}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    return SYSTEMS[name](preset, batch_size, Switches(**switches))


def lightning_systems() -> set[str]:
    """The names of every ``class Lit…(`` in the package: what :data:`SYSTEMS` must cover."""
    root = Path(__file__).parents[2]
    pattern = re.compile(r"^class (Lit\w+)\(", re.M)
    return {m for f in root.rglob("*.py") for m in pattern.findall(f.read_text())}


#: Every Lightning system: its builder ``(preset, batch_size, switches) -> Built``.
SYSTEMS: dict[str, Callable[[Preset, int | None, Switches], Built]] = {
    "LitVUNet": early.vunet,
    "LitPartBased": early.part_based,
    "LitStyleTransfer": early.style_transfer,
    "LitRoDi": early.rodi,
    "LitIIN": early.iin,
    "LitNet2Net": early.net2net,
    "LitRegressionBaseline": early.regression,
    "LitInvariances": early.invariances,
    "LitPartDiscovery": early.part_discovery,
    "LitDataBias": early.data_bias,
    "LitVQGAN": late.vqgan,
    "LitGANAutoencoder": late.kl_autoencoder,
    "LitLatentDiffusion": late.latent_diffusion,
    "LitMMDiT": late.mmdit,
    "LitTamingTransformer": late.taming_transformer,
    "LitImageBART": late.imagebart,
    "LitCodeGPT": late.code_gpt,
    "LitDenseAutoencoder": late.dense_autoencoder,
    "LitShapeTexture": late.shape_texture,
    "LitGeoTransformer": late.geo_transformer,
    "LitExplicitBaseline": late.explicit_baseline,
    "LitLADD": late.ladd,
    "LitSelfFlow": late.self_flow,
    "LitKeyframe": late.keyframe,
    "LitGen1": late.gen1,
}
