"""The VUNet's building blocks: weight-normalised convolutions and the gated-free residual block.

The official TensorFlow code (``CompVis/vunet``, ``nn.py``) builds every layer from a
weight-normalised convolution (Salimans & Kingma 2016) whose gain and bias are set by a
data-dependent initialisation pass, a "network in network" 1×1 convolution, ELU activations and
dropout inside the residual branch. Up-sampling is sub-pixel (a convolution to 4× the channels,
then depth-to-space); down-sampling is a stride-2 convolution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from esser_lab.nn.distributed import is_distributed, moments_over_ranks


class _ExpELU(torch.autograd.Function):
    """ELU from ``exp`` instead of ``expm1``: the same function, 4× faster on the CPU.

    torch's CPU ``F.elu`` evaluates ``expm1`` one element at a time (measured: about 9 ns per
    element on one core against 1.5 ns here, for the VUNet's activations); ``exp`` is
    vectorised. ``exp(x) − 1`` loses relative precision only where |x| < 1e-7, where the absolute
    error stays below 1e-7. The backward uses the output: ``d elu / dx = 1`` for ``x > 0``,
    ``elu(x) + 1`` otherwise.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out = torch.exp(x.clamp(max=0)).sub_(1).add_(x.clamp(min=0))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (out,) = ctx.saved_tensors
        return grad * out.clamp(max=0).add_(1)


def elu(x: torch.Tensor) -> torch.Tensor:
    """``F.elu`` (α = 1), computed by :class:`_ExpELU` on the CPU; ``F.elu`` elsewhere."""
    return _ExpELU.apply(x) if x.device.type == "cpu" else F.elu(x)


class WNConv2d(nn.Module):
    """A weight-normalised convolution ``y = g · (V / ‖V‖) * x + b`` with data-dependent init.

    While :func:`data_dependent_init` is active, the first forward pass sets ``g`` and ``b`` so
    that the layer's output has zero mean and unit variance per channel on that batch (as the
    official code's ``init=True`` pass does); afterwards it is an ordinary layer. The buffer
    ``initialised`` records that this happened, so a saved or resumed layer is never
    re-initialised; under DDP the statistics are those of every rank's batch together, so the
    replicas agree.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = kernel_size // 2
        self.v = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.05
        )
        self.g = nn.Parameter(torch.ones(out_channels))
        self.b = nn.Parameter(torch.zeros(out_channels))
        self.initialising = False
        self.register_buffer("initialised", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # official code: the norm runs over the kernel's spatial and input axes (one per filter)
        norm = self.v.flatten(1).norm(dim=1).clamp_min(1e-12)
        if self.initialising:
            with torch.no_grad():
                y = F.conv2d(x, self.v / norm[:, None, None, None], None, self.stride, self.padding)
                if is_distributed():
                    rows = y.transpose(0, 1).reshape(y.shape[1], -1)
                    mean, var = moments_over_ranks(rows, unbiased=False)
                else:
                    mean = y.mean(dim=(0, 2, 3))
                    var = y.var(dim=(0, 2, 3), unbiased=False)
                self.g.copy_(1.0 / torch.sqrt(var + 1e-10))
                self.b.copy_(-mean * self.g)
                self.initialised.fill_(1)
            self.initialising = False
        # g · conv(x, V/‖V‖) + b, with g/‖V‖ folded into the (small) kernel: fewer activation ops
        weight = self.v * (self.g / norm)[:, None, None, None]
        return F.conv2d(x, weight, self.b, self.stride, self.padding)


@contextlib.contextmanager
def data_dependent_init(module: nn.Module) -> Iterator[None]:
    """Within this context, the next forward pass initialises every :class:`WNConv2d` in order.

    Layers whose ``initialised`` buffer is already set (trained, loaded or resumed) are left as
    they are.
    """
    layers = [m for m in module.modules() if isinstance(m, WNConv2d) and not m.initialised]
    for layer in layers:
        layer.initialising = True
    try:
        yield
    finally:
        for layer in layers:
            layer.initialising = False


def nin(in_channels: int, out_channels: int) -> WNConv2d:
    """A "network in network" layer: a weight-normalised 1×1 convolution."""
    return WNConv2d(in_channels, out_channels, kernel_size=1)


class ResidualBlock(nn.Module):
    """``x + conv(dropout(elu([x, nin(elu(a))])))``: the official code's residual block.

    ``a`` is an optional skip input (a feature map from the other U-Net path, or a latent
    sample). Without it, the branch is ``conv(dropout(elu(x)))``.
    """

    def __init__(self, channels: int, skip_channels: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.skip = nin(skip_channels, channels) if skip_channels else None
        in_channels = 2 * channels if skip_channels else channels
        self.conv = WNConv2d(in_channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        residual = x
        if self.skip is not None:
            if a is None:
                raise ValueError("this residual block was built with a skip input; pass `a`")
            residual = torch.cat([residual, self.skip(elu(a))], dim=1)
        elif a is not None:
            raise ValueError("this residual block was built without a skip input")
        residual = self.conv(self.dropout(elu(residual)))
        return x + residual


class Downsample(nn.Module):
    """A stride-2 weight-normalised 3×3 convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = WNConv2d(in_channels, out_channels, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Sub-pixel up-sampling: a 3×3 convolution to ``4·out`` channels, then depth-to-space."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = WNConv2d(in_channels, 4 * out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # official code: tf.depth_to_space, whose channel order is (i, j, c)
        return rearrange(self.conv(x), "b (i j c) h w -> b c (h i) (w j)", i=2, j=2)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """``(b, c, 2h, 2w) -> (b, 4c, h, w)`` in TensorFlow's (i, j, c) channel order."""
    return rearrange(x, "b c (h i) (w j) -> b (i j c) h w", i=2, j=2)


def split_groups(z: torch.Tensor) -> list[torch.Tensor]:
    """Split a latent map into its 4 sub-pixel groups: ``(b, c, 2h, 2w) -> 4 × (b, c, h, w)``."""
    return list(rearrange(z, "b c (h i) (w j) -> (i j) b c h w", i=2, j=2).unbind(0))


def merge_groups(groups: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`split_groups`."""
    return rearrange(torch.stack(groups), "(i j) b c h w -> b c (h i) (w j)", i=2, j=2)
