"""Net2Net: translating between two frozen experts' representations with a conditional INN.

Rombach, Esser & Ommer, "Network-to-Network Translation with Conditional Invertible Neural
Networks", NeurIPS 2020, arXiv:2005.13580 (workshop version: "Network Fusion for Content Creation
with Conditional INNs"). Chapter 6 of esser-lab.

Two experts are given and stay frozen: a *source* Φ that encodes the condition
(``z_Φ = Φ(x_c)``, e.g. a sentence embedding of a caption) and a *target* Θ with an encoder and a
decoder (``z_Θ = Θ.encode(x)``, ``x = Θ.decode(z_Θ)``, e.g. an autoencoder or BigGAN). Only a
conditional INN τ is trained; it models p(z_Θ | z_Φ) through a bijection

    z_Θ = τ(v | z_Φ),    v = τ⁻¹(z_Θ | z_Φ) ~ N(0, I),

where v is the *residual*: what Θ's code holds beyond what the condition determines.

Conventions a reader could get wrong: our :class:`~esser_lab.nn.flows.ConditionalFlow`'s
``forward(z_Θ, c)`` computes ``v = τ⁻¹(z_Θ | c)`` (the data → Gaussian direction the loss needs,
the official ``self.flow(z, c)``) and ``inverse(v, c)`` computes ``τ(v | c)`` (the official
``flow.reverse``). Codes are flat ``(b, d)`` vectors; images ``(b, 3, h, w)`` in [-1, 1].
Follows ``CompVis/net2net``: ``net2net/models/flows/flow.py`` (``Net2NetFlow``),
``net2net/modules/flow/flatflow.py`` (``ConditionalFlatCouplingFlow``) and
``configs/translation/*.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn.flows import ConditionalFlow, fully_connected

__all__ = ["Net2Net", "Net2NetConfig", "RegressionBaseline", "SourceExpert", "TargetExpert"]


@dataclass(frozen=True)
class Net2NetConfig:
    """The translator τ and its optimiser; defaults from the official SBERT → BigGAN config.

    Source: ``configs/translation/sbert-to-biggan256.yaml``. ``dim`` is the yaml's
    ``in_channels`` (the flowed code: BigGAN's z (140) ‖ class embedding (128) = 268),
    ``cond_in`` its ``conditioning_dim`` (SBERT ``bert-base-nli-stsb-mean-tokens``: 768);
    ``conditioning_hidden_dim`` = 256 is the ``ConditionalFlatCouplingFlow`` default the configs
    keep. Optimiser (``Net2NetFlow.configure_optimizers``): Adam with amsgrad, β = (0.5, 0.9), on
    the flow's parameters only; learning rate = ``base_learning_rate`` × batch size × GPUs
    (``translation.py``). The released configs set no step count (training runs until stopped);
    ``num_steps`` is our choice. Sister config ``sbert-to-bigbigan.yaml``: dim 120, a 1024-d
    ``bert-large`` condition, embedding 256, 24 flows. The yaml's ``activation: "none"`` (no
    ``InvLeakyRelu``) is the only option built here.
    """

    dim: int = 268
    cond_in: int = 768
    embedding_dim: int = 268
    n_flows: int = 24
    hidden_dim: int = 1024
    hidden_depth: int = 2
    conditioning_hidden_dim: int = 256
    conditioning_depth: int = 2
    conditioner_batch_norm: bool = True
    base_learning_rate: float = 4.5e-6
    batch_size: int = 16
    betas: tuple[float, float] = (0.5, 0.9)
    amsgrad: bool = True
    num_steps: int = 100_000  # not in the configs (our choice)

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("conditioning_hidden_dim",))
        check_positive(self, ("hidden_depth", "conditioning_depth"), 0)
        check_betas(self)
        for name in ("dim", "cond_in", "embedding_dim", "n_flows", "hidden_dim", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.dim < 2:
            raise ValueError(f"dim must be >= 2 (a coupling splits it in halves), got {self.dim}")
        if self.base_learning_rate <= 0 or self.num_steps < 1:
            raise ValueError("need base_learning_rate > 0 and num_steps >= 1")

    def learning_rate(self, devices: int = 1) -> float:
        """``base_learning_rate × batch_size × devices``, the official scaling rule."""
        return self.base_learning_rate * self.batch_size * devices

    @classmethod
    def from_dict(cls, values: dict) -> Net2NetConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> Net2NetConfig:
        """SBERT → BigGAN-256 (``sbert-to-biggan256.yaml``): 24 blocks, width 1024, 268-d codes."""
        return cls()

    @classmethod
    def small(cls) -> Net2NetConfig:
        """32-d autoencoder codes on one GPU in minutes: 12 blocks of width 256."""
        return replace(
            cls.paper(),
            dim=32,
            cond_in=64,
            embedding_dim=64,
            n_flows=12,
            hidden_dim=256,
            batch_size=128,
            num_steps=10_000,
        )

    @classmethod
    def tiny(cls) -> Net2NetConfig:
        """16-d autoencoder codes on 2 CPU cores in seconds: 6 blocks of width 96, depth 1.

        Sizes and steps only, with one training setting: the base learning rate is 1e-5 instead
        of 4.5e-6 (×2.2, i.e. 1.3e-3 at batch 128), because the toy has 800 steps instead of
        hundreds of thousands. The objective, the blocks, the conditioner with BatchNorm and
        Adam(amsgrad, β = (0.5, 0.9)) are the paper's.
        """
        return replace(
            cls.small(),
            dim=16,
            cond_in=32,
            embedding_dim=32,
            n_flows=6,
            hidden_dim=96,
            hidden_depth=1,
            conditioning_hidden_dim=64,
            conditioning_depth=1,
            base_learning_rate=1e-5,
            batch_size=128,
            num_steps=800,
        )


@runtime_checkable
class SourceExpert(Protocol):
    """Φ: anything with ``encode(x_c) -> (b, cond_in)`` (a sentence embedder, a label encoder)."""

    def encode(self, x_c) -> Tensor: ...  # noqa: ANN001


@runtime_checkable
class TargetExpert(Protocol):
    """Θ: ``encode(x) -> (b, dim)`` and ``decode(z) -> x`` (an autoencoder; BigGAN decodes only)."""

    def encode(self, x) -> Tensor: ...  # noqa: ANN001

    def decode(self, z: Tensor) -> Tensor: ...


def _freeze(expert: nn.Module) -> nn.Module:
    """Eval mode forever, no gradients (the code's ``disabled_train``)."""
    expert.eval()
    expert.requires_grad_(False)
    expert.train = lambda mode=True: expert  # type: ignore[method-assign]
    return expert


class Net2Net(nn.Module):
    """A frozen source expert Φ, a frozen target expert Θ and the trainable translator τ.

    Args:
        config: the translator's sizes (``dim`` must be Θ's code size, ``cond_in`` Φ's).
        source: Φ, with ``encode``; frozen here.
        target: Θ, with ``encode`` and ``decode``; frozen here.
        seed: seeds the flow's fixed permutations.
    """

    def __init__(self, config: Net2NetConfig, source: nn.Module, target: nn.Module, seed: int = 0):
        super().__init__()
        if not isinstance(source, nn.Module) or not isinstance(source, SourceExpert):
            raise TypeError(
                f"source must be an nn.Module with encode(), got {type(source).__name__}"
            )
        if not isinstance(target, nn.Module) or not isinstance(target, TargetExpert):
            raise TypeError(
                "target must be an nn.Module with encode() and decode(), "
                f"got {type(target).__name__}"
            )
        self.config = config
        self.source = _freeze(source)
        self.target = _freeze(target)
        self.flow = ConditionalFlow(
            config.dim,
            config.cond_in,
            config.n_flows,
            config.hidden_dim,
            config.hidden_depth,
            embedding_dim=config.embedding_dim,
            conditioning_hidden_dim=config.conditioning_hidden_dim,
            conditioning_depth=config.conditioning_depth,
            conditioner_batch_norm=config.conditioner_batch_norm,
            seed=seed,
        )

    @torch.no_grad()
    def encode_condition(self, x_c) -> Tensor:  # noqa: ANN001
        """z_Φ = Φ(x_c), ``(b, cond_in)`` (the code's ``encode_to_c``)."""
        return self.source.encode(x_c).detach().flatten(1)

    @torch.no_grad()
    def encode_target(self, x: Tensor) -> Tensor:
        """z_Θ = Θ.encode(x), ``(b, dim)`` (``encode_to_z``)."""
        return self.target.encode(x).detach().flatten(1)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """x = Θ.decode(z_Θ) (``decode_to_img``)."""
        return self.target.decode(z)

    def forward(self, z_target: Tensor, z_cond: Tensor) -> tuple[Tensor, Tensor]:
        """``v = τ⁻¹(z_Θ | z_Φ)`` and log|det ∂v/∂z_Θ|, both from codes (not images)."""
        return self.flow(z_target, z_cond)


class RegressionBaseline(nn.Module):
    """The deterministic baseline: an MLP ``z_Φ → z_Θ`` fitted with MSE (no residual v).

    The same width and depth as one of τ's s/t networks; it predicts E[z_Θ | z_Φ], one code per
    condition, so every sample for a caption is the same image.
    """

    def __init__(self, config: Net2NetConfig) -> None:
        super().__init__()
        self.config = config
        self.net = fully_connected(
            config.cond_in, config.dim, config.hidden_dim, config.hidden_depth
        )

    def forward(self, z_cond: Tensor) -> Tensor:
        shape = ("batch", self.config.cond_in)
        check_tensor(z_cond, "z_cond", shape, like=self, training=self.training)
        return self.net(z_cond)
