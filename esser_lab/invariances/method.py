"""The invariances method as plain functions: the conditional NLL, encoding, sampling, swapping.

Equations of this chapter (the paper's Sec. 3; numbered here (I1)–(I4)):

    (I1)  z_ae = t(v | Φ(x)),  v = t⁻¹(z_ae | Φ(x))             the bijection given Φ(x)
    (I2)  L = E_x [ ½‖t⁻¹(E(x) | Φ(x))‖² − log|det ∂v/∂z_ae| ]    conditional max. likelihood
    (I3)  x̃ = D(t(v' | Φ(x))),  v' ~ N(0, I)                       samples of Φ's invariances
    (I4)  x_{a→b} = D(t(v_a | Φ(x_b)))                             a's invariances, b's features

E and D are the frozen autoencoder's encoder (a sample of its posterior during training, as the
official ``AutoencoderConcatTrainer``) and decoder; Φ the frozen explained network up to the layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.invariances.model import ConditionalTransformer, Greybox
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.nn.flows import nll_loss


@dataclass
class Explanation:
    """An image batch seen through the model: Φ(x), the autoencoder code and the invariances v."""

    phi: Tensor  # (b, cond_dim) the explained representation
    z_ae: Tensor  # (b, z_dim) the autoencoder code (posterior mean)
    v: Tensor  # (b, z_dim) t⁻¹(z_ae | Φ): what Φ does not determine


def invariance_nll(
    transformer: ConditionalTransformer, z_ae: Tensor, phi: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """(I2): the NLL of the autoencoder codes under the cINN given Φ (``iin.losses.iin.Loss``)."""
    if z_ae.shape[0] != phi.shape[0]:
        raise ValueError(f"z_ae has {z_ae.shape[0]} rows but phi has {phi.shape[0]}")
    v, logdet = transformer(z_ae, phi)
    return nll_loss(v, logdet)


@torch.no_grad()
def explain(
    transformer: ConditionalTransformer,
    autoencoder: DenseAutoencoder,
    greybox: Greybox,
    x: Tensor,
) -> Explanation:
    """(I1) on images: Φ(x), z_ae = E(x) (posterior mean) and v = t⁻¹(z_ae | Φ(x)).

    The networks run where their weights are; the results come back on ``x``'s device.
    """
    home, x = x.device, x.to(_device(transformer))
    phi = greybox.encode(x)
    z_ae = autoencoder.encode(x).mode()
    v, _ = transformer(z_ae, phi)
    return Explanation(phi=phi.to(home), z_ae=z_ae.to(home), v=v.to(home))


@torch.no_grad()
def reconstruct(
    transformer: ConditionalTransformer,
    autoencoder: DenseAutoencoder,
    phi: Tensor,
    v: Tensor,
) -> Tensor:
    """D(t(v | Φ)): the image from the features and the invariances ((I1) inverted, decoded).

    With v and Φ from the same image this is the autoencoder's reconstruction D(E(x)), up to
    float error, because t is a bijection for every Φ; with v and Φ from two images it is the
    swap (I4).
    """
    device = _device(transformer)  # computed where the weights are, returned next to ``v``
    return autoencoder.decode(transformer.inverse(v.to(device), phi.to(device))).to(v.device)


@torch.no_grad()
def sample_invariances(
    transformer: ConditionalTransformer,
    autoencoder: DenseAutoencoder,
    phi: Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(I3): ``n`` images per row of Φ with fresh v' ~ N(0, I): ``(b, n, c, h, w)``.

    Everything that varies across a row is something Φ is invariant to.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    phi_rep = phi.repeat_interleave(n, dim=0)  # (b·n, d): each row n times in a row
    phi_rep = phi_rep.to(_device(transformer))  # computed where the weights are
    images = autoencoder.decode(transformer.sample(phi_rep, generator=generator)).to(phi.device)
    return images.reshape(phi.shape[0], n, *images.shape[1:])


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
