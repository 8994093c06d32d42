"""ImageBART's first stage: a Taming VQGAN whose codes are remapped to the ones in use.

The official ``VQGANWrapper`` (``imagebart/models/vqgan.py``) is taming's ``VQModel`` with the
quantizer's ``remap`` option: ``quantize.used`` (a persistent int64 buffer, loaded from
``data/vqgan_indices/<data>_indices.npy``) lists the codebook entries the data set actually uses,
and the diffusion runs on positions in that list, so K = ``len(used)`` (FFHQ: 548 of 1024 codes;
ImageNet: 973 of 16384). Encoding maps a code c to its position in ``used``; a code outside the
list (``unknown_index: "random"``, the official default) is replaced by a random position.
Decoding maps a position back to ``used[position]``. The codebook itself keeps all ``n_embed``
entries, so a released VQGAN checkpoint plus its ``used`` buffer loads strictly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.nn import placement
from esser_lab.taming.model import VQGANConfig, VQModel, VQModelConfig

__all__ = ["RemappedVQModel", "used_codes"]


def used_codes(indices: Tensor, n_embed: int) -> Tensor:
    """The sorted codebook entries that occur in ``indices`` (any shape): a ``used`` list."""
    if indices.is_floating_point() or (indices.numel() and int(indices.max()) >= n_embed):
        raise ValueError(f"indices must be integer codes in [0, {n_embed})")
    return torch.unique(indices.flatten()).long()


class RemappedVQModel(VQModel):
    """A :class:`~esser_lab.taming.model.VQModel` with the ``quantize.used`` buffer (module doc).

    ``used`` (K,) int64, sorted or not, without repeats, each in [0, n_embed). The buffer is
    registered on the quantizer, so the state-dict key is ``quantize.used`` as in the released
    ImageBART checkpoints.
    """

    def __init__(self, config: VQModelConfig | VQGANConfig, used: Tensor) -> None:
        super().__init__(config)
        n_embed = self.quantize.n_e
        if not isinstance(used, Tensor) or used.dim() != 1 or used.is_floating_point():
            raise TypeError(f"used must be a 1-D integer tensor of codes, got {used!r}")
        used = used.long()
        if used.numel() < 1 or int(used.min()) < 0 or int(used.max()) >= n_embed:
            raise ValueError(f"used must hold codes in [0, {n_embed}), got {used.tolist()[:8]}…")
        if torch.unique(used).numel() != used.numel():
            raise ValueError("used must not repeat a code")
        self.quantize.register_buffer("used", used.clone())

    @property
    def num_codes(self) -> int:
        """K = len(used): the vocabulary the diffusion and the transformers see."""
        return int(self.quantize.used.numel())

    def count_unknown(self, indices: Tensor) -> int:
        """How many codebook ``indices`` (any shape) are not in ``used``."""
        return int((~torch.isin(indices, self.quantize.used)).sum())

    def remap_to_used(self, indices: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Codebook indices → positions in ``used``; unknown codes → a random position drawn
        from ``generator`` (required when there are any: the draw must be reproducible)."""
        used = self.quantize.used
        match = indices[..., None] == used  # (..., K)
        known = match.any(-1)
        position = match.long().argmax(-1)
        if not bool(known.all()):  # official unknown_index "random"
            if generator is None:
                raise ValueError(
                    f"{int((~known).sum())} codes are not in `used`: pass a seeded "
                    "torch.Generator to draw their random positions reproducibly"
                )
            random = placement.randint(
                used.numel(), indices.shape, generator=generator, device=indices.device
            )
            position = torch.where(known, position, random)
        return position

    def unmap_to_all(self, positions: Tensor) -> Tensor:
        """Positions in ``used`` → codebook indices."""
        if positions.numel() and (
            int(positions.min()) < 0 or int(positions.max()) >= self.num_codes
        ):
            raise ValueError(f"positions must lie in [0, {self.num_codes})")
        return self.quantize.used[positions]

    @torch.no_grad()
    def encode_to_codes(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Remapped codes (b, h·w), row-major, of images ``x`` (b, c, H, W) in [−1, 1];
        codes outside ``used`` get random positions from ``generator`` (see
        :meth:`remap_to_used`)."""
        indices = self.encode(x).indices  # (b, h, w)
        return self.remap_to_used(indices, generator).flatten(1)

    @torch.no_grad()
    def decode_codes(self, codes: Tensor, side: int) -> Tensor:
        """Images from remapped codes (b, h·w) on a ``side`` × ``side`` grid."""
        if codes.dim() != 2 or codes.shape[1] != side * side:
            raise ValueError(f"codes must be (b, {side * side}), got {tuple(codes.shape)}")
        return self.decode_code(self.unmap_to_all(codes).view(-1, side, side))
