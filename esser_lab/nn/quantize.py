"""Vector quantisation with straight-through gradients (VQ-VAE; the VQGAN of Taming Transformers).

Follows ``VectorQuantizer2`` in ``taming/modules/vqvae/quantize.py``: nearest codebook entry by
‖z‖² + ‖e‖² − 2 z·e, codebook initialised uniform(−1/n_e, 1/n_e), straight-through estimator
z_q = z + sg[e − z], and one of two loss placements:

* ``legacy=True`` — what every released VQGAN checkpoint was trained with:
  ‖sg[z_q] − z‖² + β ‖z_q − sg[z]‖², i.e. the *commitment* term has weight 1 and the *codebook*
  term weight β (the opposite of the VQ-VAE paper; issue #46 / PR #58 of the official repository);
* ``legacy=False`` — the VQ-VAE paper's form (van den Oord et al. 2017, eq. 3):
  ‖sg[z] − z_q‖² + β ‖z − sg[z_q]‖² (codebook weight 1, commitment weight β).

Both give the same reconstructions at inference; they differ only in how training moves the
encoder and the codebook. Means are over all elements, as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.checks import check_tensor

__all__ = ["QuantizerOutput", "VectorQuantizer", "codebook_usage"]


@dataclass
class QuantizerOutput:
    """``z_q`` (b, e_dim, h, w) with straight-through gradients, the VQ loss, indices (b, h, w)."""

    z_q: Tensor
    loss: Tensor
    indices: Tensor
    perplexity: Tensor  # exp(entropy) of the batch's code histogram: how many codes are in use


def codebook_usage(indices: Tensor, n_e: int) -> tuple[Tensor, int]:
    """The perplexity of the code histogram of ``indices`` and the number of distinct codes used."""
    counts = _code_counts(indices, n_e)
    return _perplexity(counts), int((counts > 0).sum())


def _code_counts(indices: Tensor, n_e: int) -> Tensor:
    # a scatter rather than ``bincount``, which reads the largest index back to the host on a GPU
    flat = indices.flatten()
    ones = torch.ones(flat.shape, dtype=torch.float32, device=flat.device)
    return torch.zeros(n_e, dtype=torch.float32, device=flat.device).index_add_(0, flat, ones)


def _perplexity(counts: Tensor) -> Tensor:
    p = counts / counts.sum()
    return torch.exp(-(p * torch.log(p + 1e-10)).sum())


class VectorQuantizer(nn.Module):
    """``n_e`` codes of size ``e_dim``; ``beta`` weighs one of the two loss terms (module doc)."""

    def __init__(self, n_e: int, e_dim: int, beta: float = 0.25, legacy: bool = True) -> None:
        super().__init__()
        if n_e < 1 or e_dim < 1:
            raise ValueError(f"n_e and e_dim must be positive, got {n_e} and {e_dim}")
        self.n_e, self.e_dim, self.beta, self.legacy = n_e, e_dim, beta, legacy
        self.embedding = nn.Embedding(n_e, e_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_e, 1.0 / n_e)

    def nearest(self, z: Tensor) -> Tensor:
        """Indices ``(b, h, w)`` of the nearest codes to ``z`` ``(b, e_dim, h, w)``."""
        # NaN in z while training is divergence, not bad input: VQModel.encode checks the images
        shape = ("batch", self.e_dim, "h", "w")
        check_tensor(z, "z", shape, like=self, training=self.training, finite=not self.training)
        flat = rearrange(z, "b c h w -> (b h w) c")
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, z: Tensor) -> QuantizerOutput:
        indices = self.nearest(z)  # in range by construction: no check (a host sync on a GPU)
        z_q = rearrange(self.embedding(indices), "b h w c -> b c h w")
        commitment = (z_q.detach() - z).pow(2).mean()  # moves the encoder
        codebook = (z_q - z.detach()).pow(2).mean()  # moves the codes
        if self.legacy:
            loss = commitment + self.beta * codebook
        else:
            loss = self.beta * commitment + codebook
        z_q = z + (z_q - z).detach()  # straight-through: the decoder's gradient reaches z
        perplexity = _perplexity(_code_counts(indices, self.n_e))
        return QuantizerOutput(z_q, loss, indices, perplexity)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes for ``indices`` ``(b, h, w)`` as ``(b, e_dim, h, w)`` (``get_codebook_entry``)."""
        if indices.dtype not in (torch.int64, torch.int32) or indices.dim() != 3:
            raise ValueError(
                "indices must be an integer (batch, h, w) tensor, "
                f"got {indices.dtype} {tuple(indices.shape)}"
            )
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.n_e):
            raise ValueError(
                f"indices must lie in [0, {self.n_e}), "
                f"got [{int(indices.min())}, {int(indices.max())}]"
            )
        return rearrange(self.embedding(indices), "b h w c -> b c h w")
