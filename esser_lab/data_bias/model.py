"""Data biases through a domain-conditional INN: one shared autoencoder, one cINN.

Esser, Rombach & Ommer, "A Note on Data Biases in Generative Models", NeurIPS 2020 workshop on
Machine Learning for Creativity and Design, arXiv:2012.02516. Chapter 9 of esser-lab.

The official code lives inside ``CompVis/net2net`` (``ml4cad.py``, ``configs/creativity/*.yaml``,
``net2net/data/faces.py``). One autoencoder (E, D) is trained on the *union* of several data sets;
a conditional INN τ, conditioned on the one-hot data-set label (``Labelator``), maps its latent
z = E(x) to a code v = τ⁻¹(z | y) that is standard normal *within every data set*. v is what the
data sets share; the label carries what is specific to each one.

Conventions a reader could get wrong:

* the official flow's ``forward`` goes from the autoencoder latent to v (``zz, logdet =
  flow(z, c)``) and ``reverse`` back; so does :class:`esser_lab.nn.flows.ConditionalFlow`:
  ``v, logdet = flow(z, one_hot)`` is the paper's τ⁻¹(z | y), ``flow.inverse(v, one_hot)`` its τ;
* images are ``(b, 3, h, w)`` in ``[-1, 1]``; domain labels are ``(b,)`` integers, turned into
  one-hot rows here (the ``Labelator``'s ``make_one_hot``);
* the autoencoder is frozen (the code's ``disabled_train``): only the flow trains.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.nn.flows import ConditionalFlow

__all__ = ["DataBiasConfig", "DataBiasModel", "one_hot"]


@dataclass(frozen=True)
class DataBiasConfig:
    """Defaults: the official ``configs/creativity/celeba_celebahq_ffhq_256.yaml``.

    From that file: three domains (CelebA, CelebA-HQ, FFHQ; ``Labelator(num_classes=3,
    as_one_hot=True)``), a 128-d first-stage latent (``BigAE``, ``z_dim: 128``) at 256×256,
    ``ConditionalFlatCouplingFlow`` with ``n_flows: 20``, ``hidden_dim: 1024``,
    ``hidden_depth: 2``, ``embedding_dim: 10``, ``conditioning_depth: 2``,
    ``conditioner_use_bn: True`` (the embedder's hidden width 256 is the class default),
    ``base_learning_rate: 4.5e-6`` and ``batch_size: 15``; the training script scales the
    learning rate by the batch size (4.5e-6 · 15 = 6.75e-5), and ``Net2NetFlow`` uses Adam with
    β = (0.5, 0.9) and amsgrad. The autoencoder's own config
    (``configs/autoencoder/celeba_celebahq_ffhq_256.yaml``) has ``kl_weight: 1e-6``, base
    learning rate 4.5e-6 and batch size 3 (learning rate 1.35e-5).

    Stand-in: the official first stage is ``BigAE`` (a ResNet-101 encoder and a BigGAN-style
    decoder, trained with LPIPS and a PatchGAN). We use the iin/net2net ``DenseAutoencoder``
    family (:mod:`esser_lab.nn.autoencoder`) with an L1 likelihood and no perceptual or
    adversarial term at every scale; the latent size, its KL weight and the flow are the paper's.
    Step counts are not in the configs (training ran until stopped); ours are our choice.
    """

    image_size: int = 256
    image_channels: int = 3
    num_domains: int = 3
    z_dim: int = 128
    ae_width: int = 64
    ae_n_down: int = 5  # stand-in depth: 256 → 8×8 before the dense layer
    ae_kl_weight: float = 1e-6
    ae_learning_rate: float = 1.35e-5
    ae_batch_size: int = 3
    ae_steps: int = 100_000
    n_flows: int = 20
    hidden_dim: int = 1024
    hidden_depth: int = 2
    embedding_dim: int = 10
    conditioning_hidden_dim: int = 256
    conditioning_depth: int = 2
    conditioner_batch_norm: bool = True
    learning_rate: float = 6.75e-5  # base 4.5e-6 × batch 15
    betas: tuple[float, float] = (0.5, 0.9)
    amsgrad: bool = True
    batch_size: int = 15
    num_steps: int = 100_000

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(
            self, ("image_channels", "ae_width", "ae_batch_size", "ae_steps", "batch_size")
        )
        check_positive(self, ("conditioning_hidden_dim",))
        check_positive(self, ("ae_n_down", "hidden_depth", "conditioning_depth", "ae_kl_weight"), 0)
        check_betas(self)
        for name in ("image_size", "z_dim", "n_flows", "hidden_dim", "embedding_dim", "num_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_domains < 2:
            raise ValueError(
                f"num_domains must be ≥ 2 (a translation needs two), got {self.num_domains}"
            )
        if self.z_dim < 2:
            raise ValueError(f"z_dim must be ≥ 2 (a coupling splits it), got {self.z_dim}")
        if self.image_size % 2**self.ae_n_down:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of "
                f"2**ae_n_down={2**self.ae_n_down}"
            )
        if self.learning_rate <= 0 or self.ae_learning_rate <= 0:
            raise ValueError("learning rates must be positive")

    @classmethod
    def from_dict(cls, values: dict) -> DataBiasConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> DataBiasConfig:
        """The official creativity configuration (CelebA / CelebA-HQ / FFHQ, 256×256)."""
        return cls()

    @classmethod
    def small(cls) -> DataBiasConfig:
        """32×32 sprites on one GPU in minutes: z = 64, 12 blocks of width 512.

        Like ``tiny`` (see there, and why), it trains with larger learning rates and batches and
        an AE KL weight of 1e-3; the method is unchanged.
        """
        return replace(
            cls.paper(),
            image_size=32,
            ae_n_down=3,
            ae_width=32,
            z_dim=64,
            ae_kl_weight=1e-3,
            ae_learning_rate=1e-3,
            ae_batch_size=128,
            ae_steps=5_000,
            n_flows=12,
            hidden_dim=512,
            learning_rate=5e-4,
            batch_size=256,
            num_steps=10_000,
        )

    @classmethod
    def tiny(cls) -> DataBiasConfig:
        """16×16 sprites on 2 CPU cores in seconds.

        Besides sizes and steps, three training settings differ because the whole run has a few
        hundred steps instead of ~100k: the learning rates are 5e-4 (AE) and 2e-3 (flow) instead
        of 1.35e-5 and 6.75e-5, with batches of 64 and 256; and the AE's KL weight is 1e-3
        instead of 1e-6, which keeps the 16-d latent compact and near a Gaussian, so a short flow
        run can model it. The objective, the architecture family and the translation are the
        paper's. (At an AE learning rate of 1e-3, three of seeds 0–5 collapsed to painting the
        background only, L1 ≈ 0.24 after 600 steps; at 5e-4 all six reached 0.038–0.063.)
        """
        return replace(
            cls.small(),
            image_size=16,
            ae_n_down=2,
            ae_width=16,
            z_dim=16,
            ae_batch_size=64,
            ae_steps=600,
            ae_learning_rate=5e-4,
            n_flows=6,
            hidden_dim=128,
            hidden_depth=1,
            conditioning_hidden_dim=64,
            learning_rate=2e-3,
            batch_size=256,
            num_steps=500,
        )


def one_hot(domain: Tensor, num_domains: int) -> Tensor:
    """``(b,)`` integer labels → ``(b, num_domains)`` float one-hot rows (``Labelator``)."""
    if not isinstance(domain, Tensor) or domain.dim() != 1 or domain.is_floating_point():
        got = f"{domain.dtype} {tuple(domain.shape)}" if isinstance(domain, Tensor) else domain
        raise TypeError(f"domain must be a (batch,) integer tensor, got {got}")
    if not in_range(domain, 0, num_domains):  # no host sync in a training step (checks.py)
        raise ValueError(
            f"domain labels must lie in [0, {num_domains}), got "
            f"[{domain.min().item()}, {domain.max().item()}]"
        )
    return F.one_hot(domain.long(), num_domains).float()


class DataBiasModel(nn.Module):
    """The frozen shared autoencoder and the domain-conditional flow τ.

    Args:
        config: sizes of the flow (and of the autoencoder, when none is given).
        autoencoder: a trained first stage; it is frozen here. None builds an untrained one
            (for shapes and tests); ``esser_lab.training.first_stage.train_first_stage`` trains
            one on the union of the data sets.
    """

    def __init__(self, config: DataBiasConfig, autoencoder: DenseAutoencoder | None = None) -> None:
        super().__init__()
        self.config = config
        if autoencoder is None:
            autoencoder = DenseAutoencoder(
                config.image_size,
                config.image_channels,
                config.ae_n_down,
                config.z_dim,
                config.ae_width,
            )
        if autoencoder.z_dim != config.z_dim or autoencoder.in_size != config.image_size:
            raise ValueError(
                f"the autoencoder ({autoencoder.in_size} px, z={autoencoder.z_dim}) does not match "
                f"the config ({config.image_size} px, z={config.z_dim})"
            )
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.flow = ConditionalFlow(
            config.z_dim,
            config.num_domains,
            config.n_flows,
            config.hidden_dim,
            config.hidden_depth,
            embedding_dim=config.embedding_dim,
            conditioning_hidden_dim=config.conditioning_hidden_dim,
            conditioning_depth=config.conditioning_depth,
            conditioner_batch_norm=config.conditioner_batch_norm,
        )

    def train(self, mode: bool = True) -> DataBiasModel:
        """Only the flow switches modes: the autoencoder stays in eval mode (frozen expert)."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @torch.no_grad()
    def encode(self, x: Tensor, sample: bool = False) -> Tensor:
        """z = E(x): the posterior mode, or a sample of it (training draws samples)."""
        posterior = self.autoencoder.encode(x)
        return posterior.sample() if sample else posterior.mode()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return self.autoencoder.decode(z)

    def condition(self, domain: Tensor) -> Tensor:
        return one_hot(domain, self.config.num_domains).to(next(self.flow.parameters()))

    def to_shared(self, z: Tensor, domain: Tensor) -> tuple[Tensor, Tensor]:
        """v = τ⁻¹(z | y) and log|det ∂v/∂z|."""
        return self.flow(z, self.condition(domain))

    def from_shared(self, v: Tensor, domain: Tensor) -> Tensor:
        """z = τ(v | y)."""
        return self.flow.inverse(v, self.condition(domain))
