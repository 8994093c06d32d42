"""The IIN objectives, the factor-dimension estimate, factor swaps and the probe score.

Equations, as this chapter numbers them (we could not check the paper's own numbering):

* (I1) unsupervised IIN, ``T(z) ~ N(0, I)``: ``L = E[½‖T(z)‖²] − E[log|det J_T(z)|]``
  (``esser_lab.nn.flows.nll_loss``; the code's ``Loss``);
* (I2) dIIN, a pair ``(z^a, z^b)`` sharing factor ``F`` (the code's ``FactorLoss``): ``v^a`` is
  standard normal; given ``v^a``, the shared factor of ``v^b`` is ``N(ρ v^a_F, (1 − ρ²) I)`` and
  the others are ``N(0, I)``. Minus the log-likelihood of the pair, up to constants::

      L = ½‖v^a‖² − log|det J_T(z^a)|
        + ½‖v^b_F − ρ v^a_F‖² / (1 − ρ²) + Σ_{k≠F} ½‖v^b_k‖² − log|det J_T(z^b)|

* (I3) the factor dimensions (``dim_callback`` in ``iin/iterators/base.py``): for each named
  factor ``F``, ``s_F = Σ_d Cov(z^a_d, z^b_d | pairs sharing F) / Σ_d Var(z_d)``; ``s_residual
  = 1``; ``d_F = ⌊softmax(s)_F · z_dim⌋`` with the residual taking the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from esser_lab.iin.model import FactorTransformer
from esser_lab.nn.flows import nll_loss

__all__ = [
    "linear_factor_basis",
    "swap_subspace",
    "FactorDims",
    "estimate_factor_dims",
    "factor_nll_loss",
    "linear_probe",
    "linear_r2",
    "nll_loss",
    "probe_gap",
    "swap_coordinates",
    "swap_factor",
]


def _check_shared(shared: Tensor, batch: int, n_factors: int) -> None:
    if not isinstance(shared, Tensor) or shared.is_floating_point() or shared.shape != (batch,):
        got = f"{shared.dtype} {tuple(shared.shape)}" if isinstance(shared, Tensor) else shared
        raise ValueError(f"shared must be an integer tensor of shape ({batch},), got {got}")
    if shared.device.type != "cpu":  # no host sync in a training step: a device-side assert
        torch._assert_async(((shared >= 0) & (shared < n_factors)).all())
    elif batch and (shared.min() < 0 or shared.max() >= n_factors):
        raise ValueError(
            f"shared factor indices must lie in [0, {n_factors}), got {shared.tolist()}"
        )


def factor_nll_loss(
    factors_a: Sequence[Tensor],
    logdet_a: Tensor,
    factors_b: Sequence[Tensor],
    logdet_b: Tensor,
    shared: Tensor,
    rho: float = 0.975,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The dIIN's pair NLL (I2), averaged over the batch; returns the loss and its parts.

    ``factors_a``/``factors_b``: the chunks of ``T(z^a)``, ``T(z^b)``; ``shared`` ``(b,)``: the
    index of the factor each pair shares (the residual, the last factor, is shared by no pair,
    but the loss does not need to know which one it is).
    # official code: also accepts negative indices meaning "every factor but −F"; not needed here.
    """
    if len(factors_a) != len(factors_b):
        raise ValueError(f"factor lists differ in length: {len(factors_a)} vs {len(factors_b)}")
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (0, 1), got {rho}")
    batch = factors_a[0].shape[0]
    _check_shared(shared, batch, len(factors_a))
    v_a = torch.cat(list(factors_a), dim=1)
    loss_a = 0.5 * v_a.pow(2).sum(1).mean() - logdet_a.mean()
    nll_b = v_a.new_zeros(batch)
    for k, (f_a, f_b) in enumerate(zip(factors_a, factors_b, strict=True)):
        is_shared = (shared == k).to(f_b.dtype)[:, None]  # (b, 1)
        residual = f_b - is_shared * rho * f_a  # v^b_k − ρ v^a_k where k is shared
        variance = 1.0 - is_shared[:, 0] * rho**2  # (b,)
        nll_b = nll_b + 0.5 * residual.pow(2).sum(1) / variance
    loss_b = nll_b.mean() - logdet_b.mean()
    parts = {
        "loss_a": loss_a.detach(),
        "loss_b": loss_b.detach(),
        "logdet": logdet_a.mean().detach(),
    }
    return loss_a + loss_b, parts


@dataclass(frozen=True)
class FactorDims:
    """The estimate (I3): per-factor scores (residual = 1) and the dimensions they give."""

    scores: tuple[float, ...]
    dims: tuple[int, ...]


def estimate_factor_dims(z_a: Tensor, z_b: Tensor, shared: Tensor, n_factors: int) -> FactorDims:
    """How many of ``z``'s dimensions each factor deserves (I3, the code's ``dim_callback``).

    ``z_a``, ``z_b`` ``(n, d)``: codes of pairs (the code uses the posterior modes); ``shared``
    ``(n,)``: the shared factor in ``[0, n_factors − 1)``; the last factor is the residual.
    A factor whose pairs co-vary strongly (colour, for a pixel autoencoder) gets more dimensions.
    """
    if z_a.dim() != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a and z_b must be equal (n, d) tensors, got {tuple(z_a.shape)}, {tuple(z_b.shape)}"
        )
    _check_shared(shared, z_a.shape[0], n_factors - 1)
    z_all = torch.cat([z_a, z_b])
    total_variance = (z_all - z_all.mean(0)).pow(2).mean(0).sum()
    scores = []
    for factor in range(n_factors - 1):
        a, b = z_a[shared == factor], z_b[shared == factor]
        if len(a) < 2:
            raise ValueError(f"need at least two pairs sharing factor {factor}, got {len(a)}")
        mean = 0.5 * (a.mean(0) + b.mean(0))
        scores.append(float(((a - mean) * (b - mean)).mean(0).sum() / total_variance))
    scores.append(1.0)  # the residual
    weights = torch.tensor(scores, dtype=torch.float64).softmax(0)
    dims = [int(w * z_a.shape[1]) for w in weights.tolist()]
    dims[-1] = z_a.shape[1] - sum(dims[:-1])
    return FactorDims(tuple(scores), tuple(dims))


@torch.no_grad()
def swap_factor(model: FactorTransformer, z: Tensor, z_source: Tensor, factor: int) -> Tensor:
    """``T⁻¹`` of ``T(z)`` with factor ``factor`` taken from ``T(z_source)``: a semantic edit."""
    if not 0 <= factor < len(model.factor_sizes):
        raise ValueError(f"factor must lie in [0, {len(model.factor_sizes)}), got {factor}")
    factors, _ = model(z)
    source, _ = model(z_source)
    factors[factor] = source[factor]
    return model.inverse(factors)


def swap_coordinates(z: Tensor, z_source: Tensor, index: slice | Tensor) -> Tensor:
    """The baseline edit without an interpretation network: copy coordinates ``index`` of
    ``z_source`` into ``z``."""
    if z.shape != z_source.shape:
        raise ValueError(
            f"z and z_source differ in shape: {tuple(z.shape)} vs {tuple(z_source.shape)}"
        )
    edited = z.clone()
    edited[:, index] = z_source[:, index]
    return edited


def linear_factor_basis(z: Tensor, targets: Tensor, ridge: float = 1e-2) -> Tensor:
    """An orthonormal basis ``(d, m)`` of where a *linear* read-out of ``targets`` ``(n, m)``
    (a factor's values, e.g. RGB colour or (x, y) position) looks in the codes ``z`` ``(n, d)``:
    the column space of the ridge regression's weights (centred, standardised codes; ``ridge``
    relative to the codes' scale). With :func:`swap_subspace` it is the strongest edit without
    an interpretation network: a linear concept direction fitted with the true factor values."""
    if z.dim() != 2 or targets.dim() != 2 or len(z) != len(targets):
        raise ValueError(
            f"need z (n, d) and targets (n, m) of the same n, got {tuple(z.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    x = (z - z.mean(0)).double()
    y = (targets - targets.mean(0)).double()
    gram = x.T @ x / len(x)
    weight = torch.linalg.solve(
        gram + ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype),
        x.T @ y / len(x),
    )  # (d, m)
    basis, _ = torch.linalg.qr(weight)  # orthonormal columns spanning the weights
    return basis.to(z.dtype)


def swap_subspace(z: Tensor, z_source: Tensor, basis: Tensor) -> Tensor:
    """Replace the component of ``z`` in the span of ``basis`` (d, m; orthonormal columns) by
    that of ``z_source``, keeping the rest: ``z + (z_source − z) B Bᵀ``."""
    if z.shape != z_source.shape:
        raise ValueError(
            f"z and z_source differ in shape: {tuple(z.shape)} vs {tuple(z_source.shape)}"
        )
    if basis.dim() != 2 or basis.shape[0] != z.shape[-1]:
        raise ValueError(f"basis must be ({z.shape[-1]}, m), got {tuple(basis.shape)}")
    return z + (z_source - z) @ basis @ basis.T


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    *,
    steps: int = 50,
    weight_decay: float = 1e-3,
) -> float:
    """Test accuracy of a multinomial logistic regression (L-BFGS, standardised features).

    A linear read-out: it asks whether a block of numbers *tells* a factor, not whether a deep
    network could dig it out.
    """
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (n, d) with equal d, got {tuple(train_x.shape)}, "
            f"{tuple(test_x.shape)}"
        )
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    weight = train_x.new_zeros(train_x.shape[1] + 1, num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], max_iter=steps, line_search_fn="strong_wolfe")
    design = torch.cat([train_x, train_x.new_ones(len(train_x), 1)], dim=1)
    train_y, test_y = train_y.to(train_x.device), test_y.to(train_x.device)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(design @ weight, train_y)
        loss = loss + weight_decay * weight[:-1].pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    logits = torch.cat([test_x, test_x.new_ones(len(test_x), 1)], dim=1) @ weight.detach()
    return (logits.argmax(1) == test_y).float().mean().item()


def linear_r2(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, ridge: float = 1e-3
) -> float:
    """Test R² of a ridge regression ``y ≈ W x + c`` (``y`` ``(n, m)``: averaged over outputs).

    scikit-learn's ``Ridge(alpha=ridge · n)`` with an unpenalised intercept: it minimises
    ``‖y − W x − c‖² + ridge · n · ‖W‖²`` over the ``n`` training rows, i.e. a penalty of
    ``ridge`` per example.
    """
    from sklearn.linear_model import Ridge  # slow import, done lazily
    from sklearn.metrics import r2_score

    if train_y.dim() == 1:
        train_y, test_y = train_y[:, None], test_y[:, None]
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (n, d) with equal d, got {tuple(train_x.shape)}, "
            f"{tuple(test_x.shape)}"
        )

    def host(x: Tensor):  # scikit-learn works on the CPU, in float64
        return x.detach().cpu().double().numpy()

    model = Ridge(alpha=ridge * len(train_x)).fit(host(train_x), host(train_y))
    predicted = model.predict(host(test_x))
    return float(r2_score(host(test_y), predicted, multioutput="uniform_average"))


def probe_gap(scores: Tensor) -> Tensor:
    """Per named factor ``k``: score of block ``k`` minus the best other block's, on factor ``k``.

    ``scores`` ``(blocks, factors)``: chance-normalised probe accuracies (block ``k`` is meant for
    factor ``k``; extra blocks, like the residual, are only competitors). 1 = only the factor's
    own block tells it; 0 or below = another block tells it as well.
    """
    blocks, factors = scores.shape
    if blocks < factors:
        raise ValueError(f"need at least as many blocks as factors, got {tuple(scores.shape)}")
    gaps = []
    for k in range(factors):
        others = torch.cat([scores[:k, k], scores[k + 1 :, k]])
        gaps.append(scores[k, k] - others.max())
    return torch.stack(gaps)
