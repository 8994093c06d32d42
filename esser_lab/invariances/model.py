"""Invariances: a conditional INN that recovers what a network's representation is invariant to.

Rombach*, Esser* & Ommer, "Making Sense of CNNs: Interpreting Deep Representations & Their
Invariances with INNs", ECCV 2020, arXiv:2008.01777. Chapter 7 of esser-lab.

A frozen network f = Ψ∘Φ is split at a layer (the :class:`Greybox`): z = Φ(x) is the
representation to explain. A frozen autoencoder (E, D) gives every image a code z_ae = E(x). The
conditional INN t (:class:`ConditionalTransformer`) is a bijection between z_ae and a Gaussian
residual v, *given* z:

    z_ae = t(v | Φ(x)),   v = t⁻¹(z_ae | Φ(x)),   v ~ N(0, I) independent of Φ(x).

Everything the image holds that Φ does not determine has to be in v: v collects the invariances of
Φ. Sampling v with Φ(x) fixed, D(t(v | Φ(x))), shows them as images.

Follows the official code (``CompVis/invariances``): ``invariances/model/cinn.py``
(``ConditionalTransformer``, ``DenseEmbedder``), ``invariances/model/blocks.py`` (the flow, the
same block family as Net2Net, built here from :mod:`esser_lab.nn.flows`),
``invariances/greybox/models.py`` (``AbstractGreybox``: ``encode`` = Φ, ``decode`` = Ψ).
Conventions: images ``(b, 3, h, w)`` in [-1, 1]; Φ(x) of a vector layer is ``(b, cond_dim)``; the
official code carries vectors as ``(b, d, 1, 1)``, here they stay flat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn.flows import ActNorm, ConditionalFlow


@dataclass(frozen=True)
class InvariancesConfig:
    """Defaults are the official configuration ``configs/alexnet/train/fc6.yaml``.

    ``Transformer``: ``in_channels: 128`` (the BigAE latent ``z_dim``), ``mid_channels: 1024``,
    ``hidden_depth: 2``, ``n_flows: 20``, ``conditioning_in_channels: 4096`` (AlexNet's fc6),
    ``conditioning_spatial_size: 1`` (→ ``DenseEmbedder``, depth 4 by default in ``cinn.py``,
    output ``embedding_channels`` = ``in_channels``), ``activation: "none"``; training:
    ``base_learning_rate: 4.5e-06``, ``batch_size: 16`` (learning rate = base × batch, the rule
    of ``iterator/base_trainer.py``), Adam β = (0.5, 0.9) (``base_trainer.py``),
    ``num_steps: 250000``; images of ``size: 128`` (``configs/alexnet/base_train.yaml``).
    """

    image_size: int = 128
    z_dim: int = 128  # the first-stage autoencoder's latent, flowed by t
    cond_dim: int = 4096  # size of Φ(x) at the explained layer (fc6)
    n_flows: int = 20
    hidden_dim: int = 1024  # width of every s/t MLP
    hidden_depth: int = 2
    embedding_dim: int = 128  # official: embedding_channels defaults to in_channels
    embedder_depth: int = 4  # DenseEmbedder: linspace(cond_dim, embedding_dim, depth) widths
    base_learning_rate: float = 4.5e-6  # per example; learning_rate = base × batch_size
    betas: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 16
    num_steps: int = 250_000

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("hidden_depth",), 0)
        check_betas(self)
        for name in ("image_size", "cond_dim", "n_flows", "hidden_dim", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.z_dim < 2:
            raise ValueError(f"z_dim must be ≥ 2 (a coupling splits it in two), got {self.z_dim}")
        if self.embedder_depth < 2:
            raise ValueError(f"embedder_depth must be ≥ 2, got {self.embedder_depth}")
        if self.base_learning_rate <= 0 or self.batch_size < 1 or self.num_steps < 1:
            raise ValueError("need base_learning_rate > 0, batch_size ≥ 1 and num_steps ≥ 1")

    @property
    def learning_rate(self) -> float:
        """The official rule: ``base_learning_rate × batch_size`` (fc6: 7.2e-5)."""
        return self.base_learning_rate * self.batch_size

    @classmethod
    def from_dict(cls, values: dict) -> InvariancesConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> InvariancesConfig:
        """AlexNet's fc6 (4096-d) explained through a 128-d autoencoder latent, 20 flows."""
        return cls()

    @classmethod
    def small(cls) -> InvariancesConfig:
        """32×32 sprites on one GPU in minutes: a 64-d latent, 12 flows of width 512.

        The explained layer is the logits of the chapter's 4-shape sprite classifier (4 numbers).
        """
        return replace(
            cls.paper(),
            image_size=32,
            z_dim=64,
            cond_dim=4,
            n_flows=12,
            hidden_dim=512,
            embedding_dim=64,
            batch_size=64,
            num_steps=20_000,
        )

    @classmethod
    def tiny(cls) -> InvariancesConfig:
        """16×16 sprites on 2 CPU cores in seconds: a 16-d latent, 6 flows of width 64.

        Only sizes, steps and the batch change; the learning rate follows the official rule
        (4.5e-6 × 128 = 5.8e-4), so the larger batch also makes the steps larger.
        """
        return replace(
            cls.small(),
            image_size=16,
            z_dim=16,
            n_flows=6,
            hidden_dim=64,
            hidden_depth=1,
            embedding_dim=16,
            embedder_depth=3,
            batch_size=128,
            num_steps=400,
        )


class DenseEmbedder(nn.Module):
    """The condition embedder for vector features (``DenseEmbedder`` in ``cinn.py``).

    Widths ``linspace(in_dim, out_dim, depth)``; every layer but the last is
    ``Linear → ActNorm → LeakyReLU(0.2)`` (the code's 1×1 convs on ``(b, d, 1, 1)``).
    Differs from ``nn.flows.fully_connected`` (Net2Net's embedder): ActNorm instead of BatchNorm,
    slope 0.2, widths that shrink linearly from the feature size to the embedding.
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int = 4) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be ≥ 2 (at least one linear layer), got {depth}")
        self.in_dim, self.out_dim = in_dim, out_dim
        widths = np.linspace(in_dim, out_dim, depth).astype(int).tolist()
        self.linears = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(ActNorm(w) for w in widths[1:-1])

    def forward(self, features: Tensor) -> Tensor:
        check_tensor(
            features, "features", ("batch", self.in_dim), like=self, training=self.training
        )
        h = features
        for linear, norm in zip(self.linears[:-1], self.norms, strict=True):
            h, _ = norm(linear(h))
            h = nn.functional.leaky_relu(h, 0.2)
        return self.linears[-1](h)  # (b, out_dim)


class ConditionalTransformer(nn.Module):
    """The cINN t: ``v = t⁻¹(z_ae | Φ(x))`` and back (``ConditionalTransformer`` in ``cinn.py``).

    A :class:`esser_lab.nn.flows.ConditionalFlow` of ``n_flows`` blocks [ActNorm → conditional
    double affine coupling → shuffle] on the ``z_dim`` autoencoder code, whose couplings all read
    the :class:`DenseEmbedder` embedding of Φ(x). ``forward`` is the normalising direction
    (z_ae → v, with log|det|), ``inverse`` the generative one.
    """

    def __init__(self, config: InvariancesConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.flow = ConditionalFlow(
            c.z_dim,
            c.cond_dim,
            c.n_flows,
            c.hidden_dim,
            c.hidden_depth,
            embedding_dim=c.embedding_dim,
            embedder=DenseEmbedder(c.cond_dim, c.embedding_dim, c.embedder_depth),
        )

    def forward(self, z_ae: Tensor, phi: Tensor) -> tuple[Tensor, Tensor]:
        """``(v, logdet)``: v = t⁻¹(z_ae | Φ) ``(b, z_dim)``, log|det ∂v/∂z_ae| ``(b,)``."""
        return self.flow(z_ae, phi)

    def inverse(self, v: Tensor, phi: Tensor) -> Tensor:
        """z_ae = t(v | Φ)."""
        return self.flow.inverse(v, phi)

    @torch.no_grad()
    def sample(self, phi: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One code z_ae = t(v | Φ) per row of Φ, with a fresh v ~ N(0, I)."""
        return self.flow.sample(phi.shape[0], phi, generator=generator)


class GlobalAveragePool(nn.Module):
    """``(b, c, h, w) → (b, c)``: the spatial mean."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class Greybox(nn.Module):
    """A frozen network f split at a layer: ``encode`` = Φ (up to the split), ``decode`` = Ψ.

    ``layers`` run in order; ``split`` is the index of the first layer of Ψ (the official
    ``split_idx``: ``encode`` returns what arrives *before* that layer), or its name in ``names``.
    ``forward(x) = decode(encode(x))`` is the whole network. Φ's output is flattened to
    ``(b, d)``; Ψ receives it in that shape, so split only where the layer after accepts it.
    """

    def __init__(
        self, layers: Sequence[nn.Module], split: int | str, names: Sequence[str] = ()
    ) -> None:
        super().__init__()
        if names and len(names) != len(layers):
            raise ValueError(f"got {len(names)} names for {len(layers)} layers")
        self.names = tuple(names)
        if isinstance(split, str):
            if split not in self.names:
                raise ValueError(f"unknown layer {split!r}: expected one of {self.names}")
            split = self.names.index(split)
        if not isinstance(split, int) or not 0 <= split <= len(layers):
            raise ValueError(f"split must be an int in [0, {len(layers)}], got {split!r}")
        self.split = split
        self.layers = nn.ModuleList(layers)

    def encode(self, x: Tensor) -> Tensor:
        """Φ(x), flattened to ``(b, d)``."""
        check_tensor(x, "x", None, like=self, training=self.training)
        for layer in self.layers[: self.split]:
            x = layer(x)
        return x.flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        """Ψ(z): the rest of the network (for a classifier, the logits)."""
        for layer in self.layers[self.split :]:
            z = layer(z)
        return z

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @classmethod
    def from_expert(cls, classifier: nn.Module, split: int | str) -> Greybox:
        """Split an :class:`esser_lab.metrics.classifiers.ExpertClassifier` (convs → pool → fc).

        Layer names: ``conv1 relu1 conv2 relu2 conv3 relu3 pool fc``; ``split="fc"`` explains
        the pooled features (the input of the last layer), ``split=len(layers)`` the logits.
        """
        features = list(classifier.features)
        names = [f"{kind}{i // 2 + 1}" for i, kind in enumerate(["conv", "relu"] * 3)]
        if len(features) != len(names):
            raise ValueError(f"expected an ExpertClassifier (6 feature layers), got {classifier}")
        return cls([*features, GlobalAveragePool(), classifier.head], split, [*names, "pool", "fc"])
