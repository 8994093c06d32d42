"""The catalog's types and the helpers its builders share (see ``esser_lab.training.catalog``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

Preset = Literal["tiny", "small", "full"]
PRESETS = ("tiny", "small", "full")
MakeBatch = Callable[[int, torch.Generator], dict]


@dataclass(frozen=True)
class Switches:
    """What a harness changes in a system (see ``catalog``); ``None``: the preset's."""

    steps: int | None = None
    noise_free: bool = False
    stochastic: bool = False
    disc_start: int | None = None
    warmup_steps: int | None = None
    success_rate: float | None = None

    def __post_init__(self) -> None:
        for name in ("noise_free", "stochastic"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name, least in (("steps", 1), ("disc_start", 0), ("warmup_steps", 0)):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < least):
                raise ValueError(f"{name} must be None or an int >= {least}, got {value!r}")
        rate = self.success_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
            raise TypeError(f"success_rate must be None or a number, got {rate!r}")


@dataclass(frozen=True)
class Built:
    """A system, a maker of its batches and its per-process batch size."""

    system: nn.Module  # a LightningModule
    make: MakeBatch
    batch_size: int


# ---- helpers -------------------------------------------------------------------------------------


def preset_config(config_class: type, preset: Preset) -> Any:
    return {"tiny": config_class.tiny, "small": config_class.small, "full": config_class.paper}[
        preset
    ]()


def sized(config: Any, batch_size: int | None) -> Any:
    return config if batch_size is None else replace(config, batch_size=batch_size)


def procedural(module_class: type, size: int, **kwargs: Any) -> MakeBatch:
    def make(n: int, generator: torch.Generator) -> dict:
        module = module_class(size, n, num_train=n, num_val=1, seed=0, **kwargs)
        return module._generate(n, generator)

    return make


def images(size: int, channels: int = 3) -> MakeBatch:
    def make(n: int, generator: torch.Generator) -> dict:
        return {"image": torch.rand(n, channels, size, size, generator=generator) * 2 - 1}

    return make


def codes(num_codes: int, length: int) -> MakeBatch:
    def make(n: int, generator: torch.Generator) -> dict:
        return {"codes": torch.randint(num_codes, (n, length), generator=generator)}

    return make


def lpips_stand_in() -> nn.Module:
    from esser_lab.losses.lpips import LPIPS

    torch.manual_seed(0)
    return LPIPS(pretrained=False)  # VGG16's size and compute, seeded random weights


def without_vgg(config: Any) -> Any:
    # the paper's VGG19 likelihood needs weights: the MSE likelihood here
    return replace(config, likelihood="mse") if config.likelihood == "vgg19" else config
