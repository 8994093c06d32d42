"""The GAN-autoencoder objective that VQGAN (2021) and latent diffusion's autoencoders (2022) share.

Taming Transformers (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841; chapter 10) trains its
first stage with a reconstruction term (L1 plus a perceptual distance), a PatchGAN whose
generator term is weighted by the adaptive λ measured at the decoder's last layer, and the
codebook term (``VQLPIPSWithDiscriminator``). Latent diffusion (Rombach et al., CVPR 2022;
arXiv 2112.10752; chapter 14) keeps all of it for its KL autoencoder and swaps the codebook term
for a KL term and a learned log-variance (``LPIPSWithDiscriminator``,
``ldm/modules/losses/contperceptual.py``). The shared parts live here, once:

* :func:`reconstruction_terms`: rec = |x − x̂| + w_P · P(x, x̂) per pixel;
* :func:`gan_autoencoder_loss`: nll + regulariser + λ · disc_factor · g, with g = −mean D(x̂)
  and λ = ``adaptive_weight`` at the last layer (the one function both objectives call);
* :func:`discriminator_loss`: the discriminator's side, from ``disc_start`` on;
* :func:`kl_autoencoder_loss`: the KL objective (the VQ one is
  :func:`esser_lab.taming.method.autoencoder_loss`);
* :class:`GANAutoencoderLossConfig`: the loss settings of either, apart from the architecture;
  :class:`GANOptimizerConfig`: the two players' Adams.

Images are in [−1, 1]; logits are unbounded; "real" is data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from torch import Tensor

from esser_lab.config import check_betas, check_fields, check_positive, config_from_dict
from esser_lab.losses.adversarial import (
    adaptive_weight,
    adopt_weight,
    hinge_d_loss,
    vanilla_d_loss,
)
from esser_lab.nn.autoencoder import DiagonalGaussian

__all__ = [
    "DiscriminatorLoss",
    "GANAutoencoderLossConfig",
    "GANOptimizerConfig",
    "GANTerms",
    "KLAutoencoderLoss",
    "Perceptual",
    "ReconstructionTerms",
    "discriminator_loss",
    "gan_autoencoder_loss",
    "kl_autoencoder_loss",
    "reconstruction_terms",
]

Perceptual = Callable[[Tensor, Tensor], Tensor]  # (x, x̂) → a distance per image, e.g. LPIPS


@dataclass(frozen=True)
class GANAutoencoderLossConfig:
    """The loss of a GAN-trained autoencoder (the official ``lossconfig`` block).

    Defaults: latent diffusion's KL autoencoders (``models/first_stage_models/kl-f*``:
    ``disc_start`` 50001, ``kl_weight`` 1e-6, ``disc_weight`` 0.5; the rest the official
    ``LPIPSWithDiscriminator`` defaults: LPIPS weight 1, a 3-layer hinge PatchGAN of width 64,
    ``logvar`` initialised at 0). ``codebook_weight`` is read by the VQ objective only,
    ``kl_weight``, ``logvar_init`` and ``learn_logvar`` by the KL objective only.

    ``learn_logvar``: # official code: ``AutoencoderKL.configure_optimizers`` leaves
    ``loss.logvar`` out of both Adams, so the released KL autoencoders were trained with logvar
    fixed at ``logvar_init``; the loss's design (and chapters 5–9's ``LossPND``) learns it. True
    (the default) learns it; False reproduces the released training.
    """

    disc_start: int = 50_001
    disc_weight: float = 0.5
    perceptual_weight: float = 1.0  # LPIPS; 0 = no perceptual term
    disc_num_layers: int = 3
    disc_in_channels: int = 3
    disc_ndf: int = 64
    disc_loss: Literal["hinge", "vanilla"] = "hinge"
    codebook_weight: float = 1.0  # VQ only
    kl_weight: float = 1e-6  # KL only
    logvar_init: float = 0.0  # KL only
    learn_logvar: bool = True  # KL only (see above)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.disc_loss not in ("hinge", "vanilla"):
            raise ValueError(f"disc_loss must be 'hinge' or 'vanilla', got {self.disc_loss!r}")
        if self.disc_start < 0:
            raise ValueError(f"disc_start must be ≥ 0, got {self.disc_start}")
        weights = (self.disc_weight, self.codebook_weight, self.perceptual_weight, self.kl_weight)
        if min(weights) < 0:
            raise ValueError(
                "loss weights (disc_weight, codebook_weight, perceptual_weight, kl_weight) must "
                f"be ≥ 0, got {weights}"
            )
        if self.disc_num_layers < 1 or self.disc_ndf < 1 or self.disc_in_channels < 1:
            raise ValueError(
                "need disc_num_layers, disc_ndf and disc_in_channels ≥ 1, got "
                f"{self.disc_num_layers}, {self.disc_ndf} and {self.disc_in_channels}"
            )

    @classmethod
    def ldm_kl(cls) -> GANAutoencoderLossConfig:
        """The released KL autoencoders' loss (kl-f4, f8, f16, f32 alike)."""
        return cls()

    @classmethod
    def tiny(cls) -> GANAutoencoderLossConfig:
        """The toy's loss: no LPIPS, a 2-layer PatchGAN of width 16 from step 120.

        As chapter 10's tiny VQGAN (``VQGANConfig.tiny()``): LPIPS's VGG16 is more than the toy
        costs and cannot be had offline; 16-px images fit a 2-layer PatchGAN.
        """
        return replace(cls(), perceptual_weight=0.0, disc_num_layers=2, disc_ndf=16, disc_start=120)

    @classmethod
    def from_dict(cls, values: dict) -> GANAutoencoderLossConfig:
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class GANOptimizerConfig:
    """Both players' Adams (autoencoder and discriminator): the official ``configure_optimizers``.

    learning rate = ``base_learning_rate`` × ``batch_size`` (the official ``main.py`` rule on one
    device without gradient accumulation), β = (0.5, 0.9). Defaults: latent diffusion's kl-f8
    (``base_learning_rate`` 4.5e-6, the config's ``batch_size`` 4); every released KL and VQ
    autoencoder config has base 4.5e-6.
    """

    base_learning_rate: float = 4.5e-6
    batch_size: int = 4
    betas: tuple[float, float] = (0.5, 0.9)

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.base_learning_rate > 0:
            raise ValueError(f"base_learning_rate must be > 0, got {self.base_learning_rate}")
        check_positive(self, ("batch_size",))
        check_betas(self)

    @property
    def learning_rate(self) -> float:
        """``base_learning_rate × batch_size`` (official ``main.py``, one device)."""
        return self.base_learning_rate * self.batch_size

    @classmethod
    def from_dict(cls, values: dict) -> GANOptimizerConfig:
        return config_from_dict(cls, values)


@dataclass
class ReconstructionTerms:
    """``rec`` = |x − x̂| + w_P · P per pixel (keeps its graph); ``l1``: |x − x̂| per pixel;
    ``perceptual``: mean P, detached (0 without a perceptual term)."""

    rec: Tensor
    l1: Tensor
    perceptual: Tensor


def reconstruction_terms(
    x: Tensor, x_hat: Tensor, perceptual: Perceptual | None = None, perceptual_weight: float = 1.0
) -> ReconstructionTerms:
    """|x − x̂| + w_P · P(x, x̂), per pixel.

    P returns one distance per image (``(b, 1, 1, 1)`` for LPIPS), broadcast over the pixels, as
    in both official losses.
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    l1 = (x - x_hat).abs()
    if perceptual_weight > 0:
        if perceptual is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual distance (e.g. LPIPS)")
        p = perceptual(x, x_hat)
        rec = l1 + perceptual_weight * p
        p = p.mean()
    else:
        rec, p = l1, x.new_zeros(())
    return ReconstructionTerms(rec, l1, p.detach())


@dataclass
class GANTerms:
    """The min side's total and its GAN part (scalars; only ``loss`` keeps a graph)."""

    loss: Tensor  # nll + regulariser + λ · disc_factor · g
    g_loss: Tensor  # −mean D(x̂), detached (0 before disc_start)
    d_weight: Tensor  # λ, × disc_weight (0 before disc_start)
    disc_factor: float


def gan_autoencoder_loss(
    nll: Tensor,
    regulariser: Tensor,
    x_hat: Tensor,
    discriminator: Callable[[Tensor], Tensor],
    last_layer: Tensor,
    global_step: int,
    *,
    disc_start: int,
    disc_weight: float,
) -> GANTerms:
    """nll + regulariser + λ · disc_factor · g, the autoencoder's side of the min–max game.

    ``nll`` is the reconstruction term λ balances against (VQ: the mean of |x − x̂| + w_P·P; KL:
    the log-variance-weighted sum per image), ``regulariser`` the weighted codebook or KL term.
    g = −mean D(x̂) (the hinge generator loss); λ = :func:`adaptive_weight` of (nll, g) at
    ``last_layer``, × ``disc_weight``.
    # official code: D(x̂) and λ are computed also before ``disc_start`` and multiplied by 0;
    # we skip them there (the same gradients, one discriminator pass and two autograd calls less).
    """
    disc_factor = adopt_weight(1.0, global_step, threshold=disc_start)
    loss = nll + regulariser
    g_loss = d_weight = nll.new_zeros(())
    if disc_factor > 0:
        g_loss = -discriminator(x_hat).mean()
        d_weight = adaptive_weight(nll, g_loss, last_layer, disc_weight)
        loss = loss + d_weight * disc_factor * g_loss
        g_loss = g_loss.detach()
    return GANTerms(loss, g_loss, d_weight, disc_factor)


@dataclass
class KLAutoencoderLoss:
    """The KL autoencoder's total loss and its parts (scalars; only ``loss`` keeps a graph)."""

    loss: Tensor  # nll + kl_weight · kl + λ · disc_factor · g_loss
    nll: Tensor  # Σ_pixels (rec / e^logvar + logvar), batch mean
    rec: Tensor  # mean of |x − x̂| + w_P · P per pixel
    l1: Tensor  # mean |x − x̂|
    perceptual: Tensor  # mean P (0 without a perceptual term)
    kl: Tensor  # KL(q(z|x) ‖ N(0, I)), summed over c, h, w, batch mean
    logvar: Tensor  # the learned scalar log-variance
    g_loss: Tensor
    d_weight: Tensor
    disc_factor: float


def kl_autoencoder_loss(
    x: Tensor,
    x_hat: Tensor,
    posterior: DiagonalGaussian,
    logvar: Tensor,
    discriminator: Callable[[Tensor], Tensor],
    last_layer: Tensor,
    global_step: int,
    *,
    disc_start: int,
    disc_weight: float,
    kl_weight: float,
    perceptual_weight: float = 1.0,
    perceptual: Perceptual | None = None,
) -> KLAutoencoderLoss:
    """Latent diffusion's autoencoder loss (``LPIPSWithDiscriminator``), the min side.

    rec = |x − x̂| + w_P · P(x, x̂) per pixel; nll = (1/b) Σ (rec / e^logvar + logvar), summed over
    every pixel and channel and averaged over the batch (official: ``torch.sum(nll) / batch``,
    not a mean over pixels); loss = nll + kl_weight · KL + λ · disc_factor · g with KL summed over
    the latent's c, h, w and averaged over the batch, λ measured on nll.
    ``logvar`` is a scalar tensor (``loss.logvar`` of the system); its gradient moves it towards
    log of the mean rec.
    """
    if not isinstance(logvar, Tensor) or logvar.dim() != 0:
        raise ValueError(f"logvar must be a scalar tensor, got {getattr(logvar, 'shape', logvar)}")
    terms = reconstruction_terms(x, x_hat, perceptual, perceptual_weight)
    nll = (terms.rec / logvar.exp() + logvar).sum() / x.shape[0]
    kl = posterior.kl().mean()
    gan = gan_autoencoder_loss(
        nll,
        kl_weight * kl,
        x_hat,
        discriminator,
        last_layer,
        global_step,
        disc_start=disc_start,
        disc_weight=disc_weight,
    )
    return KLAutoencoderLoss(
        gan.loss,
        nll.detach(),
        terms.rec.detach().mean(),
        terms.l1.detach().mean(),
        terms.perceptual,
        kl.detach(),
        logvar.detach().clone(),  # the value of this step (the optimiser updates in place)
        gan.g_loss,
        gan.d_weight,
        gan.disc_factor,
    )


@dataclass
class DiscriminatorLoss:
    loss: Tensor  # disc_factor · (hinge or vanilla loss)
    logits_real: Tensor  # mean D(x), detached
    logits_fake: Tensor  # mean D(x̂), detached
    disc_factor: float


def discriminator_loss(
    x: Tensor,
    x_hat: Tensor,
    discriminator: Callable[[Tensor], Tensor],
    global_step: int,
    *,
    disc_start: int,
    kind: Literal["hinge", "vanilla"] = "hinge",
) -> DiscriminatorLoss:
    """The max side (the discriminator's L_D), on detached images: disc_factor · L_D.

    Before ``disc_start`` the loss is 0 and the discriminator is not run (the official code runs
    it and multiplies by 0; the system skips the step altogether).
    """
    if kind not in ("hinge", "vanilla"):
        raise ValueError(f"kind must be 'hinge' or 'vanilla', got {kind!r}")
    disc_factor = adopt_weight(1.0, global_step, threshold=disc_start)
    if disc_factor == 0:
        zero = x.new_zeros(())
        return DiscriminatorLoss(zero, zero, zero, disc_factor)
    logits_real = discriminator(x.detach())
    logits_fake = discriminator(x_hat.detach())
    d_loss = hinge_d_loss if kind == "hinge" else vanilla_d_loss
    loss = disc_factor * d_loss(logits_real, logits_fake)
    return DiscriminatorLoss(
        loss, logits_real.detach().mean(), logits_fake.detach().mean(), disc_factor
    )
