"""The denoiser protocol and the time convention of the generative core (see the package docstring).

Every sampler in :mod:`esser_lab.diffusion` takes one kind of model, a :data:`Denoiser`
``model(x_t, t, cond) -> prediction``, and one clock: continuous t ∈ [0, 1], t = 1 pure noise,
t = 0 data. A discrete schedule of T steps has indices n = 0 … T − 1 (n = T − 1 the noisiest, as in
the official DDPM/LDM code) placed at t = (n + 1) / T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import torch
from torch import Tensor

from esser_lab.checks import in_range

__all__ = [
    "Denoiser",
    "check_cond_batch",
    "discrete_time",
    "expand_like",
    "index_to_time",
    "time_to_index",
]

Denoiser = Callable[[Tensor, Tensor, Any], Tensor]
"""``model(x_t, t, cond) -> prediction``: the one signature every sampler calls.

* ``x_t`` (b, ...): the noisy input at time t.
* ``t`` (b,): continuous time in [0, 1], float32, t = 1 noise (a DDPM index n arrives as
  (n + 1) / T; :func:`discrete_time` turns it back into n for a network trained on indices).
* ``cond``: whatever the network is conditioned on (class indices (b,), embeddings (b, l, d), a
  dict for several inputs), batch first. ``None`` means *no conditioning input at all*: the model
  is unconditional. A conditional model's "no condition" is not ``None`` but its null condition
  (the null class, the empty prompt's embedding), passed like any other condition, e.g. by
  :func:`esser_lab.diffusion.classifier_free_guidance`.
* the prediction has ``x_t``'s shape; what it means (ε, x₀, v or a velocity) is the sampler's
  ``parameterization`` argument.

The samplers never switch the model between train and eval mode: the caller does.
"""


@overload
def index_to_time(n: int, T: int) -> float: ...
@overload
def index_to_time(n: Tensor, T: int) -> Tensor: ...
def index_to_time(n: int | Tensor, T: int) -> float | Tensor:
    """The continuous time t = (n + 1) / T of the DDPM index n ∈ {0, …, T − 1}.

    An ``int`` gives a ``float``; an integer tensor gives a float32 tensor of its shape (float32,
    not the data's dtype: in bfloat16 the times of neighbouring indices would collide).
    """
    _check_T(T)
    if isinstance(n, Tensor):
        if n.is_floating_point() or n.is_complex():
            raise TypeError(f"n must be an integer tensor of DDPM indices, got {n.dtype}")
        if not in_range(n, 0, T):
            # read where it costs no host sync (esser_lab.checks: not inside a training step)
            raise ValueError(
                f"indices must lie in [0, {T - 1}], got {int(n.min())}..{int(n.max())}"
            )
        return (n.to(torch.float64) + 1).div(T).to(torch.float32)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int or an integer tensor, got {type(n).__name__}")
    if not 0 <= n < T:
        raise ValueError(f"index must lie in [0, {T - 1}], got {n}")
    return (n + 1) / T


@overload
def time_to_index(t: float, T: int) -> int: ...
@overload
def time_to_index(t: Tensor, T: int) -> Tensor: ...
def time_to_index(t: float | Tensor, T: int) -> int | Tensor:
    """The DDPM index n = round(t T − 1), clamped to [0, T − 1]: the inverse of
    :func:`index_to_time` (exact round trip), and the nearest index for any other t (t = 0 → 0).

    A ``float`` gives an ``int``; a tensor gives a long tensor of its shape (computed in float64).
    """
    _check_T(T)
    if isinstance(t, Tensor):
        if not t.is_floating_point():
            raise TypeError(f"t must be a floating tensor of times in [0, 1], got {t.dtype}")
        return torch.round(t.to(torch.float64) * T - 1).clamp_(0, T - 1).long()
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"t must be a float or a floating tensor, got {type(t).__name__}")
    if not math.isfinite(t):
        raise ValueError(f"t must be finite, got {t}")
    return int(min(max(round(t * T - 1), 0), T - 1))


def expand_like(t: float | Tensor, x: Tensor) -> Tensor:
    """``t`` as a tensor that broadcasts against ``x``, in ``x``'s dtype and on its device.

    ``t`` is a scalar (a float or a 0-dim tensor: one value for every element), a per-sample
    (b,) tensor, or any per-position tensor whose shape is a prefix of ``x``'s, e.g. per-token
    (b, l) against x (b, l, d); trailing axes of size 1 are appended: (b,) → (b, 1, 1, 1) for
    images (b, c, h, w).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if not isinstance(t, Tensor):
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
        return torch.full((), t, dtype=x.dtype, device=x.device)  # filled there: no copy
    if t.dim() > x.dim() or tuple(t.shape) != tuple(x.shape[: t.dim()]):
        raise ValueError(
            f"t must be a scalar, (b,) or a prefix of x's shape {tuple(x.shape)} "
            f"(e.g. per-token (b, l)), got {tuple(t.shape)}"
        )
    return t.to(device=x.device, dtype=x.dtype).reshape(*t.shape, *([1] * (x.dim() - t.dim())))


def discrete_time(net: Callable[[Tensor, Tensor, Any], Tensor], T: int) -> Denoiser:
    """A :data:`Denoiser` around a network trained on DDPM indices (the official LDM/SD UNets
    embed n ∈ {0, …, T − 1}): it calls ``net(x_t, time_to_index(t, T), cond)``."""
    _check_T(T)

    def denoiser(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        return net(x_t, time_to_index(t, T), cond)

    return denoiser


def check_cond_batch(cond: Any, batch: int, name: str = "cond") -> None:
    """A ``ValueError`` when a tensor in ``cond`` (a tensor, a mapping or a sequence of tensors,
    or ``None``) does not have ``batch`` rows."""
    if cond is None:
        return
    if isinstance(cond, Tensor):
        if cond.dim() == 0 or cond.shape[0] != batch:
            raise ValueError(
                f"{name} must have the batch of x ({batch}) as its first axis, "
                f"got shape {tuple(cond.shape)}"
            )
    elif isinstance(cond, Mapping):
        for key, value in cond.items():
            check_cond_batch(value, batch, f"{name}[{key!r}]")
    elif isinstance(cond, Sequence) and not isinstance(cond, str):
        for i, value in enumerate(cond):
            check_cond_batch(value, batch, f"{name}[{i}]")


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T (the number of diffusion steps) must be an int, got {type(T).__name__}")
    if T < 1:
        raise ValueError(f"T (the number of diffusion steps) must be ≥ 1, got {T}")
