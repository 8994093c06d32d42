"""The data-bias method as plain functions: the conditional NLL, translation and sampling.

Equation numbers are this chapter's (the note itself numbers none):

    (B1)  L = E_(x, y) [ ½‖τ⁻¹(E(x) | y)‖² − log|det ∂τ⁻¹/∂z| ]     conditional max. likelihood
    (B2)  x_{a→b} = D( τ( τ⁻¹(E(x) | a) | b ) )                     translation between data sets
    (B3)  x ~ D( τ(v | y) ),  v ~ N(0, I)                           samples of one data set
    (B4)  z_α = (1 − α)·E(x) + α·τ(τ⁻¹(E(x) | a) | b)               the demo's animated blend

(B1) is ``Net2NetFlow``'s ``NLL`` with the domain label as the condition; (B2) and (B4) are
``modify_input`` in ``ml4cad.py`` (which encodes with the posterior *mode*); (B3) is
``sample_all_labels``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from esser_lab.data_bias.model import DataBiasModel
from esser_lab.nn.flows import nll_loss
from esser_lab.nn.placement import images_per_pass

__all__ = ["data_bias_loss", "sample", "translate"]


@contextmanager
def _evaluating(model: DataBiasModel) -> Iterator[None]:
    """Eval mode inside (the embedder's BatchNorm must use its running statistics: a batch of
    one label has no variance), the caller's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _labels(domain: Tensor | int, batch: int, device: torch.device) -> Tensor:
    if isinstance(domain, bool) or not isinstance(domain, int | Tensor):
        raise TypeError(
            f"a domain must be an int or a (batch,) integer tensor, got {type(domain).__name__}"
        )
    if isinstance(domain, int):
        return torch.full((batch,), domain, dtype=torch.long, device=device)
    if domain.dim() == 0:
        return domain.long().expand(batch).to(device)
    if domain.shape != (batch,):
        raise ValueError(f"domain labels must have shape ({batch},), got {tuple(domain.shape)}")
    return domain.to(device)


def data_bias_loss(
    model: DataBiasModel, x: Tensor, domain: Tensor, *, sample: bool = True
) -> tuple[Tensor, dict[str, Tensor]]:
    """(B1): the NLL of z = E(x) under the flow conditioned on the data set ``domain``.

    z is a sample of the frozen encoder's posterior during training (``sample=True``), as
    ``Net2NetFlow.encode_to_z``; only the flow receives gradients. Returns the loss and its
    parts (see :func:`esser_lab.nn.flows.nll_loss`).
    """
    z = model.encode(x, sample=sample)
    v, logdet = model.to_shared(z, _labels(domain, x.shape[0], x.device))
    return nll_loss(v, logdet)


@torch.no_grad()
def translate(
    model: DataBiasModel,
    x: Tensor,
    source: Tensor | int,
    target: Tensor | int,
    alpha: float = 1.0,
) -> Tensor:
    """(B2)/(B4): re-express images of data set ``source`` as data set ``target``.

    The shared code v = τ⁻¹(E(x) | source) is kept and re-inverted under the other label;
    ``alpha`` < 1 blends the latents as the demo's animation does. ``source == target`` is the
    control: it only re-encodes (the flow is invertible, so it returns D(E(x))).

    The model runs where its weights are, on as many images a pass as
    :func:`~esser_lab.nn.placement.images_per_pass` allows (one pass at tiny); the images come
    back on ``x``'s device.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    batch, home = x.shape[0], x.device
    device = next(model.flow.parameters()).device
    source = _labels(source, batch, device)
    target = _labels(target, batch, device)
    # (anything but an image batch goes through whole: the model's checks name what is wrong)
    n = images_per_pass(x.shape[-2], x.shape[-1]) if x.dim() == 4 else max(1, batch)
    out = []
    with _evaluating(model):
        for first in range(0, max(1, batch), n):
            part = slice(first, first + n)
            z = model.encode(x[part].to(device))
            v, _ = model.to_shared(z, source[part])
            z_target = model.from_shared(v, target[part])
            out.append(model.decode((1.0 - alpha) * z + alpha * z_target).to(home))
    return torch.cat(out)


@torch.no_grad()
def sample(
    model: DataBiasModel, domain: Tensor | int, n: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """(B3): ``n`` images of data set ``domain``, x = D(τ(v | domain)) with v ~ N(0, I).

    With one ``generator`` seed, samples of different data sets share their v: the same
    "content" rendered with each data set's biases (the demo's ``sample_all_labels``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    device = next(model.flow.parameters()).device
    labels = _labels(domain, n, device)
    with _evaluating(model):
        z = model.flow.sample(n, model.condition(labels), generator=generator)
        return model.decode(z)
