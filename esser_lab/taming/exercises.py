"""Checkers for chapter 10's exercises (see :mod:`esser_lab.exercises`).

Exercise 1 is a choice the checker decides from the numbers it recomputes: quantise the encoder
outputs with the trained codebook under both placements of β in (T3) (``legacy=True``: the
commitment term at weight 1, the codebook term at β; ``legacy=False``: the VQ-VAE paper's
placement) and see which sends the larger gradient to ẑ. Exercise 2 has an answer the checker
recomputes: the adaptive weight λ of (T7), ‖∇_{G_L} L_rec‖ / (‖∇_{G_L} L_GAN‖ + δ) × disc_weight at
the decoder's last layer, with L_rec the L1 reconstruction error and L_GAN = −mean D(x̂).
Exercise 3's count is recomputed from the drawn codes: the number of distinct codes in a sample,
averaged over the samples; how the temperature changes it and the accuracy is the student's
reading.
"""

from __future__ import annotations

import torch
from torch import nn

from esser_lab.exercises import Verdict, check_choice, check_close, no_answer
from esser_lab.losses.adversarial import adaptive_weight
from esser_lab.nn.quantize import VectorQuantizer
from esser_lab.taming.model import VQModel

__all__ = [
    "PLACEMENTS",
    "check_adaptive_weight",
    "check_distinct_codes",
    "check_encoder_pull",
    "distinct_codes",
    "encoder_gradient_norms",
    "gan_weight",
]

PLACEMENTS = ("legacy", "vq-vae")  # legacy=True, legacy=False


def encoder_gradient_norms(quantizer: VectorQuantizer, z_hat: torch.Tensor) -> dict[str, float]:
    """‖∂L/∂ẑ‖ of the (T3) loss for each placement of β, with ``quantizer``'s codebook."""
    norms = {}
    for name in PLACEMENTS:
        twin = VectorQuantizer(quantizer.n_e, quantizer.e_dim, quantizer.beta, name == "legacy")
        twin = twin.to(z_hat.device)
        twin.embedding.weight.data.copy_(quantizer.embedding.weight.detach())
        z = z_hat.detach().clone().requires_grad_(True)
        twin(z).loss.backward()
        norms[name] = float(z.grad.norm())
    return norms


def check_encoder_pull(quantizer: VectorQuantizer, z_hat: torch.Tensor, answer: object) -> Verdict:
    """Exercise 1: which placement, "legacy" or "vq-vae", sends the larger gradient to ẑ."""
    norms = encoder_gradient_norms(quantizer, z_hat)
    larger = max(norms, key=norms.__getitem__)
    verdict = check_choice(answer, larger, PLACEMENTS, what="the placement that moves ẑ more")
    if verdict or no_answer(answer) is not None:
        return verdict
    return Verdict(
        False,
        verdict.message + " Only the commitment term ‖sg[z_q] − ẑ‖² reaches ẑ; which "
        "placement gives it weight 1 and which β?",
    )


def gan_weight(
    model: VQModel, discriminator: nn.Module, images: torch.Tensor, disc_weight: float
) -> float:
    """λ of (T7) for ``model`` on ``images`` with L_rec = mean |x − x̂| and L_GAN = −mean D(x̂);
    the model's and the discriminator's state (``requires_grad``, buffers) is left as it was."""
    last = model.last_layer()
    was = last.requires_grad
    buffers = {k: b.clone() for k, b in discriminator.named_buffers()}
    try:
        last.requires_grad_(True)
        x_hat, _ = model(images)
        rec = (images - x_hat).abs().mean()
        g_loss = -discriminator(x_hat).mean()
        return float(adaptive_weight(rec, g_loss, last, disc_weight))
    finally:
        last.requires_grad_(was)
        for k, b in discriminator.named_buffers():
            b.copy_(buffers[k])


def check_adaptive_weight(
    model: VQModel,
    discriminator: nn.Module,
    images: torch.Tensor,
    disc_weight: float,
    answer: object,
) -> Verdict:
    """Exercise 2: λ · disc_weight of (T7) on ``images``."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    return check_close(
        answer,
        gan_weight(model, discriminator, images, disc_weight),
        what="λ",
        rtol=0.01,
        too_low="λ is the reconstruction term's gradient norm over the GAN term's, both at the "
        "decoder's last layer (its weight), times disc_weight; is the ratio the right way up?",
        too_high="Both gradients are taken at the decoder's last layer (model.last_layer()) and "
        "compared by their norms; is the ratio the right way up, and disc_weight applied once?",
    )


def distinct_codes(codes: torch.Tensor) -> float:
    """The number of distinct entries of each sample's code map ``(b, h, w)``, averaged."""
    if codes.dim() != 3 or codes.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"codes must be (b, h, w) integers, got {codes.dtype} {tuple(codes.shape)}"
        )
    return sum(len(torch.unique(c)) for c in codes) / len(codes)


def check_distinct_codes(codes: torch.Tensor, answer: object) -> Verdict:
    """Exercise 3: distinct codes per sample of ``codes`` ``(b, h, w)``, averaged over samples."""
    return check_close(
        answer,
        distinct_codes(codes),
        what="the mean number of distinct codes",
        rtol=0.0,
        atol=0.05,  # a mean printed to one decimal
        too_low="Count the distinct codes of each sample (torch.unique of its code map), then "
        "average the counts over the samples.",
        too_high="Distinct codes within one sample, averaged: not the distinct codes over all "
        "samples together, and not the number of positions.",
    )
