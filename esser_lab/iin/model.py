"""The (disentangling) invertible interpretation network: T maps a frozen latent z onto factors.

Esser, Rombach & Ommer, "A Disentangling Invertible Interpretation Network for Explaining Latent
Representations", CVPR 2020, arXiv:2004.13166. Chapter 5 of esser-lab.

A frozen first stage (an autoencoder; or a classifier) gives a code ``z`` of ``z_dim`` numbers.
The interpretation network ``T`` is a flat flow (``esser_lab.nn.flows.Flow``: ActNorm, double
affine coupling, shuffle, ×``n_flows``) whose output ``v = T(z)`` is cut into ``n_factors`` chunks
``(v_1, ..., v_K)``, one per semantic factor, the last one the *residual*. ``T`` is bijective, so
``z`` and the factors carry exactly the same information, and an edit of a factor maps back to an
edit of ``z`` by ``T⁻¹`` (official ``FactorTransformer`` in ``iin/models/iin.py``). With one
factor this is the unsupervised IIN (``VectorTransformer``): ``T(z) ~ N(0, I)``.

Conventions: ``z`` and every factor are flat ``(b, d)`` (the code carries ``(b, d, 1, 1)``);
factor sizes are explicit (``factor_sizes``) or equal ``torch.chunk`` pieces, as in the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.nn.flows import Flow


@dataclass(frozen=True)
class IINConfig:
    """Defaults are the official ColorfulMNIST dIIN (``configs/cmnist_diin.yaml``).

    Sources: ``z_dim`` 64 (the first stage's ``z_dim``), ``n_flows`` 12, ``hidden_dim`` 512,
    ``hidden_depth`` 2, ``n_factors`` 3 (digit, colour, residual) from the ``Transformer`` block;
    ρ = 0.975 from ``Loss``; ``base_learning_rate`` 4.5e-6 × ``batch_size`` 25 (the code's
    ``get_learning_rate``), Adam β = (0.5, 0.9) (``iin/iterators/base.py``); 50 epochs of 60k
    MNIST images at batch 25 = 120k steps, with a linear decay to zero after ``decay_start``
    100001. ``factor_sizes`` empty means equal ``torch.chunk`` pieces ([22, 22, 20] for 64);
    ``configs/cmnist_clf_diin.yaml`` gives [22, 11, 31] explicitly (from ``dim_callback``).
    """

    z_dim: int = 64
    n_flows: int = 12
    hidden_dim: int = 512
    hidden_depth: int = 2
    n_factors: int = 3
    factor_sizes: tuple[int, ...] = ()
    rho: float = 0.975
    base_learning_rate: float = 4.5e-6
    batch_size: int = 25
    betas: tuple[float, float] = (0.5, 0.9)
    num_steps: int = 120_000
    decay_start: int = 100_001
    image_size: int = 32  # the first stage's input (ColorfulMNIST at 32×32)
    seed: int = 0  # seeds the flow's fixed permutations

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive(self, ("image_size",))
        check_positive(self, ("hidden_depth", "decay_start"), 0)
        check_betas(self)
        for name in ("z_dim", "n_flows", "hidden_dim", "n_factors", "batch_size", "num_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_factors > self.z_dim:
            raise ValueError(f"n_factors ({self.n_factors}) cannot exceed z_dim ({self.z_dim})")
        if self.factor_sizes:
            sizes = tuple(self.factor_sizes)
            if (
                len(sizes) != self.n_factors
                or any(s < 1 for s in sizes)
                or sum(sizes) != self.z_dim
            ):
                raise ValueError(
                    f"factor_sizes must be {self.n_factors} positive ints summing to z_dim "
                    f"{self.z_dim}, got {sizes}"
                )
        if not 0.0 < self.rho < 1.0:
            raise ValueError(f"rho must lie in (0, 1), got {self.rho}")
        if self.base_learning_rate <= 0:
            raise ValueError(f"base_learning_rate must be positive, got {self.base_learning_rate}")

    @property
    def learning_rate(self) -> float:
        """Adam's learning rate: per-example rate × batch size (``get_learning_rate``)."""
        return self.base_learning_rate * self.batch_size

    def sizes(self) -> tuple[int, ...]:
        """The factor sizes: explicit, else ``torch.chunk``'s (ceil-sized pieces, last smaller)."""
        if self.factor_sizes:
            return tuple(self.factor_sizes)
        return tuple(len(piece) for piece in torch.arange(self.z_dim).chunk(self.n_factors))

    @classmethod
    def from_dict(cls, values: dict) -> IINConfig:
        return config_from_dict(cls, values)

    @classmethod
    def paper(cls) -> IINConfig:
        """The official ColorfulMNIST dIIN: 12 blocks of width 512 on a 64-d code, 3 factors."""
        return cls()

    @classmethod
    def unsupervised(cls) -> IINConfig:
        """The official unsupervised IIN (``configs/mnist_iin.yaml``): one factor, the NLL."""
        return replace(cls.paper(), n_factors=1)

    @classmethod
    def small(cls) -> IINConfig:
        """32×32 sprites on one GPU in minutes: the paper's flow on a 32-d code, 20k steps."""
        return replace(cls.paper(), z_dim=32, num_steps=20_000, decay_start=15_000)

    @classmethod
    def tiny(cls) -> IINConfig:
        """16×16 sprites on 2 CPU cores in seconds: a 16-d code, 4 blocks of width 64, depth 1.

        Besides sizes and steps, two training settings differ, because the run has 1000 steps
        instead of 120k: the learning rate is 1e-3 (``base_learning_rate`` 1e-3 / 128 at batch
        128, about 9× the official 1.1e-4), and there is no decay (``decay_start`` past the end).
        """
        return replace(
            cls.paper(),
            z_dim=16,
            n_flows=4,
            hidden_dim=64,
            hidden_depth=1,
            base_learning_rate=1e-3 / 128,
            batch_size=128,
            num_steps=1_000,
            decay_start=1_001,
            image_size=16,
        )


class FactorTransformer(nn.Module):
    """``T``: a flat flow on ``z`` whose output is split into factors (``FactorTransformer``)."""

    def __init__(self, config: IINConfig) -> None:
        super().__init__()
        self.config = config
        self.factor_sizes = config.sizes()
        self.flow = Flow(
            config.z_dim, config.n_flows, config.hidden_dim, config.hidden_depth, seed=config.seed
        )

    def split(self, v: Tensor) -> list[Tensor]:
        """``v = T(z)`` ``(b, z_dim)`` → the factors ``[(b, d_1), ..., (b, d_K)]``."""
        return list(v.split(self.factor_sizes, dim=1))

    def merge(self, factors: Sequence[Tensor]) -> Tensor:
        """The factors back into one ``(b, z_dim)`` vector (with a clear error for bad sizes)."""
        sizes = tuple(f.shape[1] if f.dim() == 2 else -1 for f in factors)
        if sizes != self.factor_sizes:
            raise ValueError(f"expected factors of sizes {self.factor_sizes}, got {sizes}")
        return torch.cat(list(factors), dim=1)

    def forward(self, z: Tensor) -> tuple[list[Tensor], Tensor]:
        """``z`` ``(b, z_dim)`` → (the factors of ``T(z)``, log|det ∂T/∂z| ``(b,)``)."""
        v, logdet = self.flow(z)
        return self.split(v), logdet

    def inverse(self, factors: Sequence[Tensor]) -> Tensor:
        """``T⁻¹``: the factors → ``z``."""
        return self.flow.inverse(self.merge(factors))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``z = T⁻¹(v)``, ``v ~ N(0, I)``: samples of the first stage's code (decode them)."""
        return self.flow.sample(n, generator=generator)
