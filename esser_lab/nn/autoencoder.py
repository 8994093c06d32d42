"""The dense-latent "first stage" autoencoder of chapters 5–9 (IIN, Net2Net, invariances, biases).

The interpretation and translation papers of 2020 all work on the vector latent of one small
autoencoder family (``iin/models/ae.py`` ``Model``, ``net2net/modules/autoencoder/basic.py``
``BasicAEModel``):

* encoder: ``n_down`` × [Conv 4×4 stride 2 (no bias) → ActNorm → LeakyReLU(0.2)] with widths
  ``width · min(2^scale, 16)`` (the code's ``64 · min(2^scale, 16)``), then a dense layer (a conv
  whose kernel covers the whole bottleneck) to ``2 · z_dim`` numbers: the mean and log-variance
  of a diagonal Gaussian posterior (log-variance clamped to [-30, 10]);
* decoder: the mirror image with transposed convs and a final ``tanh``.

Its objective (``iin/losses/ae.py`` ``LossPND``) is a reconstruction NLL with one learned scalar
log-variance, ``rec / exp(logvar) + logvar`` with ``rec = L1 (+ LPIPS)``, plus ``kl_weight · KL``
and a PatchGAN term. :func:`autoencoder_loss` is that objective without the perceptual and
adversarial terms (which chapter 10 builds, where they are the point); chapters that use this
autoencoder say so.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.nn import placement
from esser_lab.nn.flows import ActNorm

__all__ = ["DenseAutoencoder", "DiagonalGaussian", "autoencoder_loss"]


class DiagonalGaussian:
    """A diagonal Gaussian from [mean, log-variance] stacked on axis 1 (``Distribution``).

    ``parameters`` is ``(b, 2·d)`` (the dense autoencoder here) or ``(b, 2·c, h, w)`` (the KL
    autoencoder of latent diffusion, :class:`esser_lab.nn.first_stage.AutoencoderKL`); the first
    half of axis 1 is the mean, the second the log-variance, clamped to ``logvar_range``:
    [-30, 10] in ``iin``/``net2net`` (the default), [-30, 20] in latent diffusion's
    ``DiagonalGaussianDistribution``. ``kl`` and ``nll`` sum over every axis but the batch.
    """

    def __init__(
        self,
        parameters: Tensor,
        deterministic: bool = False,
        logvar_range: tuple[float, float] = (-30.0, 10.0),
    ) -> None:
        if parameters.dim() < 2 or parameters.shape[1] % 2:
            raise ValueError(
                "parameters must be (batch, 2·d, ...) with the mean and log-variance halves on "
                f"axis 1, got {tuple(parameters.shape)}"
            )
        low, high = logvar_range
        if not low < high:
            raise ValueError(
                f"logvar_range must be (low, high) with low < high, got {logvar_range}"
            )
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(low, high)
        self.deterministic = deterministic
        self.std = torch.zeros_like(self.mean) if deterministic else (0.5 * self.logvar).exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = placement.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q ‖ N(0, I)) per sample, shape ``(b,)`` (zero when deterministic)."""
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)

    def nll(self, sample: Tensor) -> Tensor:
        """−log q(sample) per sample, shape ``(b,)``: ½ Σ (log 2π + logvar + (s − μ)² / σ²).

        Zero when deterministic (as the official ``DiagonalGaussianDistribution.nll``).
        """
        if sample.shape != self.mean.shape:
            raise ValueError(
                f"sample must have the mean's shape {tuple(self.mean.shape)}, "
                f"got {tuple(sample.shape)}"
            )
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        log_two_pi = math.log(2.0 * math.pi)
        terms = log_two_pi + self.logvar + (sample - self.mean).pow(2) / self.logvar.exp()
        return 0.5 * terms.flatten(1).sum(1)


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), ActNorm(c_out), nn.LeakyReLU(0.2)
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), ActNorm(c_out), nn.LeakyReLU(0.2)
    )


def _widths(width: int, scale: int) -> int:
    return width * min(2**scale, 16)


class DenseAutoencoder(nn.Module):
    """Encoder → diagonal Gaussian over a ``z_dim`` vector → decoder (the 2020 papers' first stage).

    Args:
        in_size: image side (a multiple of ``2**n_down``); IIN: 32 (MNIST/CelebA crops).
        in_channels: image channels.
        n_down: stride-2 stages (IIN: 4).
        z_dim: latent size (IIN: 64; Net2Net's BigAE: 128).
        width: channels of the first stage (official: 64); stage ``s`` has ``width · min(2^s, 16)``.
        deterministic: a plain autoencoder (posterior std 0, KL 0), as the code's ``deterministic``.
    """

    def __init__(
        self,
        in_size: int = 32,
        in_channels: int = 3,
        n_down: int = 4,
        z_dim: int = 64,
        width: int = 64,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        if n_down < 1 or in_size % 2**n_down:
            raise ValueError(
                f"in_size ({in_size}) must be a multiple of 2**n_down ({2**n_down}), n_down >= 1"
            )
        self.in_size, self.in_channels, self.n_down, self.z_dim = (
            in_size,
            in_channels,
            n_down,
            z_dim,
        )
        self.deterministic = deterministic
        bottleneck = in_size // 2**n_down
        self.encoder = nn.ModuleList(
            [_down(in_channels, _widths(width, 0))]
            + [_down(_widths(width, s - 1), _widths(width, s)) for s in range(1, n_down)]
        )
        self.dense_encode = nn.Conv2d(_widths(width, n_down - 1), 2 * z_dim, bottleneck)
        self.dense_decode = nn.ConvTranspose2d(z_dim, _widths(width, n_down - 1), bottleneck)
        self.decoder = nn.ModuleList(
            _up(_widths(width, s + 1), _widths(width, s)) for s in reversed(range(n_down - 1))
        )
        self.image_layer = nn.ConvTranspose2d(_widths(width, 0), in_channels, 4, 2, 1, bias=False)
        for m in self.modules():  # the code's weights_init: N(0, 0.02) for every conv
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    @staticmethod
    def _run(stage: nn.Sequential, h: Tensor) -> Tensor:
        conv, norm, act = stage
        h, _ = norm(conv(h))
        return act(h)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        expected = (self.in_channels, self.in_size, self.in_size)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"DenseAutoencoder.encode expects images (batch, {', '.join(map(str, expected))}), "
                f"got {got}"
            )
        check_tensor(x, "x", ("batch", *expected), like=self, training=self.training)
        h = x
        for stage in self.encoder:
            h = self._run(stage, h)
        return DiagonalGaussian(self.dense_encode(h).flatten(1), self.deterministic)

    def decode(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"DenseAutoencoder.decode expects latents (batch, {self.z_dim}), got {got}"
            )
        check_tensor(z, "z", ("batch", self.z_dim), like=self, training=self.training)
        h = self.dense_decode(z[:, :, None, None])
        for stage in self.decoder:
            h = self._run(stage, h)
        return torch.tanh(self.image_layer(h))

    def forward(self, x: Tensor, sample: bool = True) -> tuple[Tensor, DiagonalGaussian]:
        posterior = self.encode(x)
        z = posterior.sample() if sample else posterior.mode()
        return self.decode(z), posterior

    def last_layer(self) -> Tensor:
        """The decoder's last weight (where the adaptive GAN weight is measured)."""
        return self.image_layer.weight


def autoencoder_loss(
    x: Tensor,
    reconstruction: Tensor,
    posterior: DiagonalGaussian,
    logvar: Tensor,
    kl_weight: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``LossPND`` without LPIPS and GAN: Σ_pixels |x − x̂| / e^logvar + logvar, + kl_weight · KL.

    Sums run over pixels and latent dimensions and average over the batch, as in the code; the
    learned scalar ``logvar`` calibrates the reconstruction term (its optimum is log of the mean
    absolute error).
    """
    rec = (x - reconstruction).abs()
    nll = (rec / logvar.exp() + logvar).flatten(1).sum(1).mean()
    kl = posterior.kl().mean()
    loss = nll + kl_weight * kl
    return loss, {
        "rec": rec.mean().detach(),
        "nll": nll.detach(),
        "kl": kl.detach(),
        "logvar": logvar.detach(),
    }
