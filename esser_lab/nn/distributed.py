"""What a data-dependent step needs under data parallelism: statistics over every rank's batch.

Under DDP each process sees its own share of the global batch. A data-dependent initialisation
(ActNorm, the VUNet's weight-normalised layers) or a scalar that steers training (a dual
variable, a running success rate) computed from the local share alone would differ from rank to
rank, and the replicas would drift apart. The helpers here combine the shares with collectives so
every rank gets the same numbers, those of the whole global batch.

They act only when ``torch.distributed`` is initialised with more than one process; a single
process never calls them (callers keep their own single-process arithmetic, so tiny-scale runs
stay bit-identical). Every rank must call them in the same order, as with any collective.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_over_ranks", "is_distributed", "mean_over_ranks", "moments_over_ranks"]


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_over_ranks(value: Tensor) -> Tensor:
    """The mean of ``value`` over all ranks (a new tensor; ``value`` itself when not distributed).

    For a per-batch mean over equal shares this is the mean over the global batch.
    """
    if not is_distributed():
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def moments_over_ranks(rows: Tensor, unbiased: bool) -> tuple[Tensor, Tensor]:
    """Per-row mean and variance of ``rows`` ``(c, n)`` over its ``n`` columns on every rank.

    Two collectives: the sums and counts, then the squared deviations from the global mean (a
    two-pass estimate, as accurate as on one process). Shares may differ in size. Computed and
    returned in float64 (a one-off cost at initialisation).
    """
    if rows.dim() != 2:
        raise ValueError(f"rows must be (channels, n), got {tuple(rows.shape)}")
    rows = rows.detach().double()
    sums = torch.cat([rows.sum(1), rows.new_tensor([rows.shape[1]])])
    if is_distributed():
        dist.all_reduce(sums)
    count = sums[-1]
    mean = sums[:-1] / count
    squares = (rows - mean[:, None]).square().sum(1)
    if is_distributed():
        dist.all_reduce(squares)
    return mean, squares / (count - 1 if unbiased else count)


def gather_over_ranks(value: Tensor) -> Tensor:
    """Every rank's ``value`` (equal shapes) concatenated along dim 0, rank 0's first: the global
    batch, on every rank (``value`` itself when not distributed). Detached; for one-off
    statistics such as LDM's ``scale_by_std``, not for every step."""
    if not is_distributed():
        return value
    shapes = [None] * dist.get_world_size()
    dist.all_gather_object(shapes, tuple(value.shape))
    if len(set(shapes)) != 1:
        raise ValueError(f"gather_over_ranks needs equal shapes on every rank, got {shapes}")
    parts = [torch.empty_like(value) for _ in shapes]
    dist.all_gather(parts, value.detach().contiguous())
    return torch.cat(parts)
