"""Checks of what enters a public model, loader or config: clear errors instead of silent NaNs.

Every public entry point (a model's ``forward`` / ``encode`` / ``inverse``, the loaders, the
configs) checks what it is given and raises a ``TypeError`` or ``ValueError`` that names the
argument, what was expected and what came. The checks only read their inputs, so a run's numbers
are the same with them as without.

What is checked, and when:

* **type, dtype, shape, channels, size, a non-empty batch**: always. They read tensor metadata
  only (no host sync), so they cost nothing on any device. The dtype must be a floating type; it
  must equal the model's parameter dtype unless autocast is active for the input's device (then
  any floating dtype goes, as autocast casts it).
* **values** (NaN, ±inf; integer labels, codes and time steps in range): a check reads every
  element and, on an accelerator, waits for the result (a host sync). So it runs where it is
  cheap: for tensors on the CPU always; on a GPU only outside training steps (sampling, transfer,
  metrics), never inside one. A call is inside a training step when its module says so
  (``training=True``: the module's ``training``) or when a Lightning trainer that a system
  registered (:func:`watch_trainer`, every ``ResumableModule`` does at fit start) is in its
  training stage: a frozen first stage, a teacher or an expert sits in eval mode inside the step,
  so its own flag cannot tell. ``ESSER_LAB_CHECK_FINITE=1`` asks for the checks everywhere
  (debugging a GPU run), ``ESSER_LAB_CHECK_FINITE=0`` turns them off everywhere. They never run
  while ``torch.compile`` traces, nor on meta tensors (:func:`values_check_enabled`).
* **data-dependent initialisations** (ActNorm) check their one batch (at least two values per
  feature, all finite) once, when they run: a bad first batch would fix NaN parameters for good.
* **configs**: every field's type against its annotation (:func:`esser_lab.config.check_fields`),
  ranges in each config's ``__post_init__``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "check_finite",
    "check_tensor",
    "finite_check_enabled",
    "in_range",
    "in_training_step",
    "values_check_enabled",
    "watch_trainer",
]

FINITE_ENV = "ESSER_LAB_CHECK_FINITE"


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__}"


def _model_dtype(like: nn.Module | torch.dtype | None) -> torch.dtype | None:
    if like is None or isinstance(like, torch.dtype):
        return like
    for p in like.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _autocast(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (then it casts inputs itself)."""
    kind = x.device.type
    return torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)


def check_tensor(
    x: object,
    name: str,
    shape: Sequence[int | str | None] | None,
    *,
    like: nn.Module | torch.dtype | None = None,
    training: bool | None = None,
    finite: bool = True,
) -> Tensor:
    """Check a floating-point input against ``shape``; return it unchanged.

    ``shape`` lists each axis: an int must match, ``"b"`` (or ``"batch"``) is the batch (at least
    one), any other
    string or ``None`` is free; ``shape=None`` takes any shape whose first axis is a batch.
    ``like`` is the model (or dtype) whose parameters ``x`` meets; ``training`` says whether this
    call sits in a training step (the model's ``training``), which decides the finiteness check
    (module docstring; ``None``: the caller has no flag, and only a watched
    trainer's training stage counts). ``finite=False`` skips that check (for
    blocks whose input is made inside a training step, where NaN means divergence, not bad input).
    """
    if shape is None:
        rank = x.ndim if isinstance(x, Tensor) and x.ndim >= 1 else 1
        shape = ("b",) + (None,) * (rank - 1)
    spec = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {spec}, got {_describe(x)}")
    dtype = _model_dtype(like)
    if not x.is_floating_point():
        hint = " (images: convert to float in [-1, 1])" if x.dtype == torch.uint8 else ""
        want = f" ({dtype}, the model's dtype)" if dtype is not None else ""
        raise TypeError(f"{name} must be a floating-point tensor{want}, got {x.dtype}{hint}")
    if dtype is not None and x.dtype != dtype and not _autocast(x):
        raise TypeError(
            f"{name} must be {dtype} like the model's parameters, got {x.dtype} "
            f"(convert with .to({dtype}) or move the model to {x.dtype})"
        )
    if x.ndim != len(shape) or any(
        isinstance(s, int) and n != s for n, s in zip(x.shape, shape, strict=False)
    ):
        raise ValueError(f"{name} must have shape {spec}, got {tuple(x.shape)}")
    batch = next((i for i, s in enumerate(shape) if s in ("b", "batch")), None)
    if batch is not None and x.shape[batch] < 1:
        raise ValueError(
            f"{name} must hold at least one example (shape {spec}), got an empty batch"
        )
    if finite:
        check_finite(x, name, training=training)
    return x


#: Trainers whose training stage counts as a training step (weak: a finished run is forgotten).
_TRAINERS: weakref.WeakSet = weakref.WeakSet()


def watch_trainer(trainer: object) -> None:
    """Count every call made while ``trainer`` is in its training stage (its ``training``
    attribute is true: Lightning's ``Trainer.training``) as made inside a training step."""
    _TRAINERS.add(trainer)


def in_training_step() -> bool:
    """Whether a watched trainer is in its training stage (:func:`watch_trainer`)."""
    return any(getattr(trainer, "training", False) for trainer in list(_TRAINERS))


def _read_is_free(x: Tensor) -> bool:
    """Whether reading ``x``'s values costs no host sync: it lives on the host."""
    return x.device.type == "cpu"


def values_check_enabled(x: Tensor, training: bool | None) -> bool:
    """Whether a check may read ``x``'s values (NaN, a range of labels or codes): the policy in
    the module docstring. ``training`` is the calling module's ``training`` (``None``: the caller
    has no flag); a watched trainer's training stage counts as a training step as well."""
    mode = os.environ.get(FINITE_ENV, "")
    if mode == "0" or x.device.type == "meta" or torch.compiler.is_compiling():
        return False
    if mode == "1" or _read_is_free(x):
        return True
    return not training and not in_training_step()


def finite_check_enabled(x: Tensor, training: bool | None) -> bool:
    """Whether :func:`check_finite` reads ``x``: :func:`values_check_enabled`."""
    return values_check_enabled(x, training)


def check_finite(x: Tensor, name: str, *, training: bool | None = None) -> None:
    """A ``ValueError`` if ``x`` holds NaN or ±inf, where the policy allows the check."""
    if not finite_check_enabled(x, training):
        return
    if not torch.isfinite(x).all():
        n_bad, n_nan = int((~torch.isfinite(x)).sum()), int(torch.isnan(x).sum())
        raise ValueError(
            f"{name} must be finite, got {n_bad} non-finite values ({n_nan} NaN) "
            f"in a tensor of shape {tuple(x.shape)}"
        )


def in_range(x: Tensor, low: int, high: int, *, training: bool | None = None) -> bool:
    """Whether every value of ``x`` lies in ``[low, high)`` (integer labels, codes, time steps),
    read where the policy allows (:func:`values_check_enabled`); where it does not, ``True``,
    after queuing a device-side assert on a CUDA device (no host sync: a bad value stops the run
    at the next sync, as an embedding's own assert would)."""
    if not x.numel():
        return True
    if not values_check_enabled(x, training):
        if x.device.type == "cuda":
            torch._assert_async(((x >= low) & (x < high)).all())
        return True
    return bool(((x >= low) & (x < high)).all())
