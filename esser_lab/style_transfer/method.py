"""The objectives of Kotovenko et al. (ICCV 2019) as plain functions.

Section and equation names follow the paper (sec. 3: the fix-point triplet style loss "FPT",
the disentanglement loss "FPD"); the weights, margins and exact forms follow the official code
(``model.py`` of ``CompVis/content-style-disentangled-ST``, branch ``dev_subm_1``):

* the image loss compares *blurred* photo and stylisation (average pooling, stride 1, VALID);
* the content fix-point loss is ``(1 − cos(E_c(G(x, s)), E_c(x)))²``;
* both triplets use squared Euclidean distances of the unit style vectors; FPD has margin 0;
* every classifier and real/fake term is a sigmoid cross-entropy (one-hot targets), as the
  code's ``sce_criterion``; the artist head is supervised at every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from esser_lab.style_transfer.layers import DiscriminatorOutput
from esser_lab.style_transfer.model import StyleTransferModel


@dataclass
class StyleBatch:
    """One training batch: two photos and two paintings by *different* artists per row."""

    photo: torch.Tensor  # (b, 3, h, w)
    photo_negative: torch.Tensor  # (b, 3, h, w), another photo (for FPD)
    content: torch.Tensor  # (b,) long, the class of ``photo``
    painting: torch.Tensor  # (b, 3, h, w), by artist ``style``
    style: torch.Tensor  # (b,) long
    painting_negative: torch.Tensor  # (b, 3, h, w), by artist ``style_negative`` ≠ ``style``
    style_negative: torch.Tensor  # (b,) long

    @classmethod
    def from_dict(cls, batch: dict[str, torch.Tensor]) -> StyleBatch:
        names = cls.__dataclass_fields__
        missing = sorted(set(names) - set(batch))
        if missing:
            raise ValueError(f"batch is missing {missing}; expected keys {sorted(names)}")
        return cls(**{name: batch[name] for name in names})


def blur(image: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``blur_img``: average pooling with a ``kernel_size`` window, stride 1, no padding."""
    return F.avg_pool2d(image, kernel_size, stride=1)


def image_loss(photo: torch.Tensor, stylised: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The blurred-image loss: ``MSE(blur(x), blur(G(x, s)))``; keeps the layout, frees texture."""
    return F.mse_loss(blur(stylised, kernel_size), blur(photo, kernel_size))


def content_fixpoint_loss(
    code_of_output: torch.Tensor, code_of_photo: torch.Tensor
) -> torch.Tensor:
    """Content fix-point: ``mean (1 − cos(E_c(G(x, s)), E_c(x)))²`` over the batch."""
    cos = F.cosine_similarity(code_of_output.flatten(1), code_of_photo.flatten(1), dim=1)
    return (1 - cos).square().mean()


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """``max(0, margin + ‖a − p‖² − ‖a − n‖²)`` per row: ``(b,)``; zero once n is far enough."""
    if not anchor.shape == positive.shape == negative.shape or anchor.ndim != 2:
        raise ValueError(
            "anchor, positive and negative must be (b, d) of one shape, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    d_pos = (anchor - positive).square().sum(dim=1)
    d_neg = (anchor - negative).square().sum(dim=1)
    return F.relu(margin + d_pos - d_neg)


def fpt_loss(
    s_p: torch.Tensor,
    s_n: torch.Tensor,
    style_of_output_p: torch.Tensor,
    style_of_output_n: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """FPT, the fix-point triplet style loss (sec. 3.2), symmetric in the two styles.

    Re-encoding a stylisation must give back its style: ``E_s(G(x, s_p))`` is pulled to ``s_p``
    and pushed from ``E_s(G(x, s_n))`` (the same photo in the other style), and vice versa.
    """
    first = triplet_loss(s_p, style_of_output_p, style_of_output_n, margin).mean()
    second = triplet_loss(s_n, style_of_output_n, style_of_output_p, margin).mean()
    return 0.5 * first + 0.5 * second


def fpd_loss(
    style_of_output: torch.Tensor, style_of_output_other_photo: torch.Tensor, s_p: torch.Tensor
) -> torch.Tensor:
    """FPD, the disentanglement loss (sec. 3.3): triplet with margin 0.

    Two photos stylised with one style vector must have re-encoded styles closer to each other
    than to the style vector itself, so the style code cannot carry the photo's content.
    """
    return triplet_loss(style_of_output, style_of_output_other_photo, s_p, margin=0.0).mean()


def style_class_loss(style_logits: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Per-pixel artist classification, sigmoid cross-entropy on one-hot targets."""
    target = F.one_hot(style, style_logits.shape[1]).to(style_logits)[:, :, None, None]
    return F.binary_cross_entropy_with_logits(style_logits, target.expand_as(style_logits))


def content_class_loss(content_logits: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Content classification, sigmoid cross-entropy on one-hot targets."""
    target = F.one_hot(content, content_logits.shape[1]).to(content_logits)
    return F.binary_cross_entropy_with_logits(content_logits, target)


def real_fake_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Patch-wise sigmoid cross-entropy towards "painting" (``real``) or "stylised photo"."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


@dataclass
class GeneratorLoss:
    """The generator's objective and its terms (detached), plus what the discriminator needs."""

    loss: torch.Tensor
    adversarial: torch.Tensor
    image: torch.Tensor
    content_fixpoint: torch.Tensor
    fpt: torch.Tensor
    fpd: torch.Tensor
    content_class: torch.Tensor
    style_class: torch.Tensor
    fooled: torch.Tensor  # fraction of stylised patches the discriminator calls real
    stylised: torch.Tensor  # G(photo, s_p), detached


def generator_loss(model: StyleTransferModel, batch: StyleBatch) -> GeneratorLoss:
    """The full generator objective (``g_optim_step`` of the official ``model.py``).

    ``L_G = dlw·adv + ilw·image + cfplw·content-FP + sfplw·(FPT + FPD) + cclw·CE_content
    + cslw·CE_style``; the weights live in ``model.config``.
    """
    c = model.config
    b = batch.photo.shape[0]
    # one pass per network over stacked inputs (every layer is per-sample, so this is exact)
    codes = model.encode_content(torch.cat([batch.photo, batch.photo_negative]))
    s_p, s_n = model.encode_style(torch.cat([batch.painting, batch.painting_negative])).split(b)
    code, code_negative = codes.split(b)
    outputs = model.decode(
        torch.cat([code, code_negative, code]), torch.cat([s_p, s_p, s_n])
    )  # G(x, s_p), G(x', s_p), G(x, s_n)
    output, output_other_photo, output_shifted = outputs.split(b)
    re_style = model.encode_style(outputs)
    style_out, style_out_other_photo, style_out_shifted = re_style.split(b)
    code_of_output = model.encode_content(output)
    judged: DiscriminatorOutput = model.discriminate(output)

    adversarial = real_fake_loss(judged.real, real=True)
    image = image_loss(batch.photo, output, c.blur_kernel_size)
    content_fp = content_fixpoint_loss(code_of_output, code)
    fpt = fpt_loss(s_p, s_n, style_out, style_out_shifted, c.margin)
    fpd = fpd_loss(style_out, style_out_other_photo, s_p)
    content_ce = content_class_loss(judged.content, batch.content)
    style_ce = style_class_loss(judged.style, batch.style)
    loss = (
        c.adversarial_weight * adversarial
        + c.image_weight * image
        + c.content_fixpoint_weight * content_fp
        + c.fpt_weight * fpt
        + c.fpd_weight * fpd
        + c.content_class_weight * content_ce
        + c.style_class_weight * style_ce
    )
    fooled = (judged.real > 0).float().mean()
    terms = [adversarial, image, content_fp, fpt, fpd, content_ce, style_ce]
    return GeneratorLoss(loss, *(t.detach() for t in terms), fooled, output.detach())


@dataclass
class DiscriminatorLoss:
    loss: torch.Tensor
    real_fake: torch.Tensor
    content_class: torch.Tensor
    style_class: torch.Tensor
    accuracy: torch.Tensor  # mean of "painting called real" and "stylisation called fake"


def discriminator_loss(
    model: StyleTransferModel, batch: StyleBatch, stylised: torch.Tensor
) -> DiscriminatorLoss:
    """``d_optim_step``: real paintings vs stylised photos, artist of the painting, photo class."""
    c = model.config
    b = batch.photo.shape[0]
    judged = model.discriminate(torch.cat([batch.painting, stylised.detach(), batch.photo]))
    real_logits, fake_logits, _ = judged.real.split(b)
    style_logits = judged.style[:b]
    content_logits = judged.content[2 * b :]
    real_fake = 0.5 * (real_fake_loss(real_logits, True) + real_fake_loss(fake_logits, False))
    content_ce = content_class_loss(content_logits, batch.content)
    style_ce = style_class_loss(style_logits, batch.style)
    loss = (
        c.adversarial_weight * real_fake
        + c.content_class_weight * content_ce
        + c.style_class_weight * style_ce
    )
    accuracy = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
    return DiscriminatorLoss(
        loss, real_fake.detach(), content_ce.detach(), style_ce.detach(), accuracy
    )


def update_success_rate(
    rate: float, accuracy: float, generator_stepped: bool, alpha: float
) -> float:
    """The running discriminator success rate that decides who steps next (official ``train``).

    After a generator step the discriminator "succeeded" where it was not fooled; after a
    discriminator step, where it classified correctly. The generator steps while the rate is at
    least ``discriminator_success_rate``, else the discriminator.
    """
    success = 1.0 - accuracy if generator_stepped else accuracy
    return rate * (1.0 - alpha) + alpha * success


@torch.no_grad()
def stylise(model: StyleTransferModel, photo: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """``G(photo, E_s(painting))``: the photo in the style of the painting (eval mode)."""
    return model(photo, model.encode_style(painting))


@torch.no_grad()
def interpolate_styles(
    model: StyleTransferModel, photo: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor, steps: int
) -> torch.Tensor:
    """Stylise one photo along the great circle from ``s_a`` to ``s_b``: ``(steps, 3, h, w)``.

    Style vectors live on the unit sphere, so the mix ``(1−t) s_a + t s_b`` is re-normalised.
    """
    t = torch.linspace(0, 1, steps, device=photo.device)[:, None]
    mix = F.normalize((1 - t) * s_a.reshape(1, -1) + t * s_b.reshape(1, -1), dim=1)
    return model(photo.reshape(1, *photo.shape[-3:]).expand(steps, -1, -1, -1), mix)
