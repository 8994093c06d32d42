"""The experts Net2Net translates between: toy stand-ins, and the paper's SBERT and BigGAN.

At tiny/small scale (trained or built inside the chapter):

* :class:`WordEmbeddingEncoder` (Φ, "the language model"): a *fixed random* word-embedding
  table, mean-pooled over a caption's words. It is never trained, on anything: like SBERT for
  the paper, it is a representation the translator must take as it is. It can read text but
  cannot make images.
* :class:`AutoencoderExpert` (Θ): the first-stage autoencoder
  (:class:`~esser_lab.nn.autoencoder.DenseAutoencoder`) behind the ``encode``/``decode``
  interface (``encode`` samples the posterior, as the code's ``BigAE.encode``). It can make
  images but cannot read text.

At full scale (never downloaded; local files only):

* :class:`SentenceEmbedder`: SBERT through the ``sentence-transformers`` package
  (``net2net/modules/sbert/model.py``; the configs use ``bert-base-nli-stsb-mean-tokens``, 768-d).
* :class:`BigGANExpert`: a BigGAN generator that decodes ``[z (140) ‖ class embedding (128)]``
  (``net2net/modules/gan/biggan.py``); it cannot encode, so its training pairs are sampled
  (``Net2BigGANFlow``: sample z and a class, render, caption the image, embed the caption).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from esser_lab.nn import placement
from esser_lab.nn.autoencoder import DenseAutoencoder

__all__ = ["AutoencoderExpert", "BigGANExpert", "SentenceEmbedder", "WordEmbeddingEncoder"]


class WordEmbeddingEncoder(nn.Module):
    """Φ for the toy: mean of fixed random word vectors (``N(0, I)``, drawn once from ``seed``).

    Args:
        vocabulary: the words it knows; an unknown word is an error (no silent ``<unk>``).
        dim: embedding size.
        seed: draws the table.
    """

    def __init__(self, vocabulary: Sequence[str], dim: int = 32, seed: int = 0) -> None:
        super().__init__()
        words = sorted(set(vocabulary))
        if not words or dim < 1:
            raise ValueError(f"need a non-empty vocabulary and dim >= 1, got {len(words)}, {dim}")
        self.index = {word: i for i, word in enumerate(words)}
        self.dim = dim
        table = torch.randn(len(words), dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("table", table)  # a buffer: never a parameter, never trained

    def tokenize(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Word indices ``(b, l)`` (padded with 0) and a mask ``(b, l)`` of real words."""
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a sequence of strings (a list of captions)")
        rows = []
        for caption in captions:
            words = re.findall(r"[a-z]+", caption.lower())
            unknown = [w for w in words if w not in self.index]
            if unknown or not words:
                raise ValueError(f"caption {caption!r} has no words or unknown words {unknown}")
            rows.append([self.index[w] for w in words])
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
        mask = torch.tensor([[1.0] * len(r) + [0.0] * (length - len(r)) for r in rows])
        return ids, mask

    def encode(self, captions: Sequence[str]) -> Tensor:
        """``(b, dim)``: the masked mean of the captions' word vectors."""
        ids, mask = self.tokenize(captions)
        ids = placement.to_device(ids, self.table.device)  # no host sync on a GPU
        mask = placement.to_device(mask, self.table.device).to(self.table.dtype)
        vectors = self.table[ids]  # (b, l, d)
        return (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    def forward(self, captions: Sequence[str]) -> Tensor:
        return self.encode(captions)


class AutoencoderExpert(nn.Module):
    """Θ for the toy: a trained :class:`DenseAutoencoder` as ``encode(x) -> z``, ``decode(z) -> x``.

    ``encode`` draws from the posterior (``sample=True``, as ``BigAE.encode``: the noise acts as
    dequantisation for the flow) or returns its mean.
    """

    def __init__(self, autoencoder: DenseAutoencoder, sample: bool = True) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.sample = sample

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        posterior = self.autoencoder.encode(x)
        return posterior.sample(generator) if self.sample else posterior.mode()

    def decode(self, z: Tensor) -> Tensor:
        return self.autoencoder.decode(z)


class SentenceEmbedder(nn.Module):
    """Φ at full scale: SBERT (``sentence-transformers``) loaded from a *local* folder.

    esser_lab never downloads: save the model once where there is internet
    (``SentenceTransformer("bert-base-nli-stsb-mean-tokens").save(folder)``) and pass ``folder``.
    """

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        super().__init__()
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"SBERT weights not found at {folder}: save 'bert-base-nli-stsb-mean-tokens' "
                "with sentence-transformers on a machine with internet and pass that folder "
                "(esser_lab never downloads weights)"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ImportError(
                "SentenceEmbedder needs the 'sentence-transformers' package "
                "(pip install sentence-transformers); the toy uses WordEmbeddingEncoder instead"
            ) from error
        self.model = SentenceTransformer(str(folder), device=device).eval()

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> Tensor:
        return self.model.encode(list(captions), convert_to_tensor=True, show_progress_bar=False)


class BigGANExpert(nn.Module):
    """Θ at full scale: a BigGAN generator behind ``decode([z ‖ class embedding])``.

    ``generator(z, class_embedding)`` is any module with the official ``Generator256`` call
    (``forward(z, emb, from_class_embedding=True)`` there); build it yourself and load its
    weights with :meth:`from_file`. A GAN has no encoder: :meth:`encode` raises, and Net2Net's
    training codes come from sampling z and classes (``Net2BigGANFlow``).
    """

    def __init__(
        self, generator: Callable[[Tensor, Tensor], Tensor], z_dim: int = 140, class_dim: int = 128
    ):
        super().__init__()
        self.generator = generator
        self.z_dim, self.class_dim = z_dim, class_dim

    @classmethod
    def from_file(cls, generator: nn.Module, path: str | Path, **kwargs: int) -> BigGANExpert:
        """Load a local BigGAN state dict into ``generator`` (``weights_only=True``, strict).

        :func:`esser_lab.weights.load_weights`: every failure is a ``WeightsError``.
        """
        from esser_lab.weights import load_weights

        hint = (
            "BigGAN weights: the official code uses the 256×256 generator of the GANalyze port "
            "(biggan-256); download it where there is internet and pass the file (esser_lab "
            "never downloads weights)"
        )
        load_weights(generator, path, what=f"BigGAN weights {path}", hint=hint)
        return cls(generator, **kwargs)

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError("BigGAN has no encoder; sample (z, class) pairs to train τ")

    def decode(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim + self.class_dim:
            raise ValueError(
                f"BigGAN codes are (batch, {self.z_dim} + {self.class_dim}), got {tuple(z.shape)}"
            )
        latent, class_embedding = z.split((self.z_dim, self.class_dim), dim=1)
        return self.generator(latent, class_embedding)
