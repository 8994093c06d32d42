"""Tensors put on a device without host syncs: random draws and host-to-device copies.

:func:`esser_lab.training.seed_everything` returns a CPU ``torch.Generator``, and CUDA's samplers
refuse a generator of another device. So noise is drawn on the *generator's* device and then
moved to the model's: on the CPU (the book's tiny runs) that is the same stream as drawing in
place, bit for bit; with a CUDA model it costs one host-to-device copy. Without a generator the
draw happens on the target device from torch's global stream, as ``torch.randn(..., device=...)``
does.

A plain ``tensor.to("cuda")`` from ordinary (pageable) host memory waits until the GPU has run
everything queued before it, a host sync; :func:`to_device` copies through pinned memory instead,
which does not wait.

Evaluation sets pass a network a chunk at a time (:func:`images_per_pass`): at most a fixed
number of image pixels per pass, so memory does not grow with the set or the resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "EVAL_PIXELS_PER_PASS",
    "draw_device",
    "images_per_pass",
    "multinomial",
    "rand",
    "randint",
    "randn",
    "to_device",
]

#: Pixels per pass of an evaluation set through a network: 2,048 images at 16 px (one pass for
#: every set the tiny chapters evaluate at once), 128 at 64 px, where one pass over a whole set
#: held gigabytes of activations.
EVAL_PIXELS_PER_PASS = 2**19


def images_per_pass(height: int, width: int, pixels: int | None = None) -> int:
    """How many ``height × width`` images one pass may take: ``pixels // (height · width)``, ≥ 1
    (``pixels`` defaults to :data:`EVAL_PIXELS_PER_PASS`, read at each call)."""
    pixels = EVAL_PIXELS_PER_PASS if pixels is None else pixels
    return max(1, pixels // (height * width))


def draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Where to draw: the generator's device when a generator is given, else ``device``."""
    return torch.device(device) if generator is None else generator.device


def to_device(x: Tensor, device: torch.device | str) -> Tensor:
    """``x`` on ``device``; a CPU tensor reaches a CUDA device through pinned memory, so the copy
    does not wait for the GPU's queued work (``x`` itself when it is already there)."""
    device = torch.device(device)
    if x.device == device:
        return x
    if x.device.type == "cpu" and device.type == "cuda":
        # a pageable host-to-device copy waits for the queued GPU work; a pinned one does not
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def randn(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``N(0, I)`` of ``shape`` on ``device``, drawn from ``generator`` on its own device."""
    where = draw_device(generator, device)
    return to_device(
        torch.randn(tuple(shape), generator=generator, device=where, dtype=dtype), device
    )


def rand(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``U[0, 1)`` of ``shape`` on ``device``, drawn from ``generator`` on its own device."""
    where = draw_device(generator, device)
    return to_device(
        torch.rand(tuple(shape), generator=generator, device=where, dtype=dtype), device
    )


def randint(
    high: int,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> Tensor:
    """Integers in ``[0, high)`` of ``shape`` on ``device``, drawn from ``generator``."""
    where = draw_device(generator, device)
    return to_device(torch.randint(high, tuple(shape), generator=generator, device=where), device)


def multinomial(probs: Tensor, num_samples: int, *, generator: torch.Generator | None) -> Tensor:
    """``torch.multinomial`` of ``probs`` (rows on any device) with ``generator`` on its own."""
    where = draw_device(generator, probs.device)
    return to_device(
        torch.multinomial(to_device(probs, where), num_samples, generator=generator), probs.device
    )
