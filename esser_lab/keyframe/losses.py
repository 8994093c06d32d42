"""LaMa's losses, the official objective of the keyframe propagation generator (chapter 15).

Esser, Michael & Sengupta 2022 (arXiv 2205.09731) train their generator with the recipe of LaMa
(Suvorov et al. 2022, arXiv 2109.07161; the vendored ``saicinpainting/training/losses`` of
runwayml/guided-inpainting), at the weights of ``configs/ours.yaml``
(:data:`~esser_lab.keyframe.method.PAPER_LOSS`). With x the target frame, x̂ the generator's raw
output (``predicted_image``, not composited), m the hole (1 inside), D the discriminator
(:class:`LamaNLayerDiscriminator`, logits per patch, and its intermediate activations D_l) and
σ₊(t) = log(1 + eᵗ) (softplus):

* (L1) known-region L1: mean over pixels and channels of (w_known·(1 − m) + w_missing·m)·|x̂ − x|
  (:func:`masked_l1_loss`; the paper: w_known 10, w_missing 0);
* (G) the generator's non-saturating adversarial loss: mean σ₊(−D(x̂)), weight 10
  (:func:`adversarial_generator_loss`);
* (FM) discriminator feature matching: the mean over D's intermediate layers of the mean squared
  difference D_l(x̂) − D_l(x), weight 100 (:func:`feature_matching_loss`);
* (PL) the high-receptive-field perceptual loss: Σ over the four stages of a pretrained ADE20k
  ResNet-50 (dilated) of the mean squared feature difference of the ImageNet-normalised images,
  weight 30 (:func:`resnet_perceptual_loss`; the network: :mod:`esser_lab.keyframe.pretrained`);
* (D) the discriminator's loss: mean over patches of σ₊(−D(x)) + γ·R1 + m'·σ₊(D(x̂)) +
  (1 − m')·σ₊(−D(x̂)), m' the hole resized (nearest) to the logit map: with
  ``mask_as_fake_target`` only the hole's patches of x̂ are fake, the known ones count as real
  (:func:`adversarial_discriminator_loss`);
* (R1) the gradient penalty on real images: mean over the batch of ‖∇ₓ Σ D(x)‖², γ = 0.001
  (:func:`r1_penalty`).

The generator minimises L1 + 10·G + 100·FM + 30·PL (:func:`lama_generator_loss`), the
discriminator D, with Adam at a tenth of the generator's learning rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "GeneratorTerms",
    "LamaNLayerDiscriminator",
    "adversarial_discriminator_loss",
    "adversarial_generator_loss",
    "feature_matching_loss",
    "lama_generator_loss",
    "masked_l1_loss",
    "r1_penalty",
    "resnet_perceptual_loss",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LamaNLayerDiscriminator(nn.Module):
    """LaMa's ``NLayerDiscriminator`` (``pix2pixhd_nlayer``; the paper: ``input_nc`` 3, ``ndf``
    64, ``n_layers`` 4): 4×4 convolutions with padding 2 and biases, a stride-2 input conv with
    LeakyReLU 0.2, ``n_layers − 1`` stride-2 [conv, BatchNorm, LeakyReLU] (widths doubling,
    capped at 512), one stride-1 such block, and a stride-1 conv to one logit per patch.

    Parameters are named as the official ``model0`` … ``model{n_layers + 1}`` groups (keys
    ``discriminator.model{i}.{j}.*`` of a released checkpoint). Unlike the taming PatchGAN
    (:class:`esser_lab.losses.adversarial.NLayerDiscriminator`, padding 1, convs before a
    BatchNorm without bias, N(0, 0.02) init) it keeps torch's default initialisation, as LaMa.
    :meth:`forward` returns the logits ``(b, 1, h', w')`` and the ``n_layers + 1``
    intermediate activations (feature matching reads them).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        if input_nc < 1 or ndf < 1 or n_layers < 1:
            raise ValueError(
                f"need input_nc, ndf and n_layers ≥ 1, got {input_nc}, {ndf} and {n_layers}"
            )
        self.n_layers = n_layers

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=stride, padding=2)
            return [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]

        groups: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]
        ]
        width = ndf
        for _ in range(1, n_layers):
            previous, width = width, min(width * 2, 512)
            groups.append(block(previous, width, 2))
        previous, width = width, min(width * 2, 512)
        groups.append(block(previous, width, 1))
        groups.append([nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=2)])
        for i, group in enumerate(groups):
            self.add_module(f"model{i}", nn.Sequential(*group))

    def output_size(self, size: int) -> int:
        """The side of the logit map for an input of side ``size``."""
        for _ in range(self.n_layers):
            size = (size + 4 - 4) // 2 + 1
        return size + 2  # two stride-1 4×4 convs with padding 2 each add one

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        activations = []
        for i in range(self.n_layers + 2):
            x = getattr(self, f"model{i}")(x)
            activations.append(x)
        return activations[-1], activations[:-1]


def masked_l1_loss(
    prediction: Tensor, image: Tensor, mask: Tensor, weight_known: float, weight_missing: float
) -> Tensor:
    """(L1): mean over all pixels and channels of (w_known·(1 − m) + w_missing·m)·|x̂ − x|
    (LaMa's ``masked_l1_loss``; ``mask`` (b, 1, H, W) broadcasts over the channels)."""
    weights = mask * weight_missing + (1 - mask) * weight_known
    return (weights * (prediction - image).abs()).mean()


def adversarial_generator_loss(fake_logits: Tensor) -> Tensor:
    """(G): mean σ₊(−D(x̂)), the non-saturating generator loss (LaMa's ``NonSaturatingWithR1``
    at the paper's settings: every patch of x̂ counts, none reweighted)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """(R1): mean over the batch of ‖∇ₓ Σ D(x)‖² (all pixels and channels of one image in one
    norm). ``real`` must require grad and ``real_logits`` come from it; the graph is kept
    (``create_graph``) so that the penalty trains the discriminator. Under ``torch.no_grad``
    it is 0, as LaMa's ``make_r1_gp``."""
    if not torch.is_grad_enabled():
        return real_logits.new_zeros(())
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).norm(dim=1).square().mean()


def adversarial_discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    real: Tensor,
    mask: Tensor,
    *,
    gp_coef: float,
) -> tuple[Tensor, Tensor]:
    """(D) and its R1 term: mean over patches of σ₊(−D(x)) + γ·R1 + m'·σ₊(D(x̂)) +
    (1 − m')·σ₊(−D(x̂)), m' = ``mask`` resized to the logit map (nearest), γ = ``gp_coef``
    (``mask_as_fake_target``: the known patches of x̂ are x's own pixels, so they count as
    real). Returns (loss, R1 penalty before γ)."""
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            f"real and fake logits must match, got {tuple(real_logits.shape)} and "
            f"{tuple(fake_logits.shape)}"
        )
    penalty = r1_penalty(real_logits, real)
    m = F.interpolate(mask, size=fake_logits.shape[-2:], mode="nearest")
    fake = m * F.softplus(fake_logits) + (1 - m) * F.softplus(-fake_logits)
    loss = (F.softplus(-real_logits) + gp_coef * penalty + fake).mean()
    return loss, penalty.detach()


def feature_matching_loss(
    fake_features: Sequence[Tensor], real_features: Sequence[Tensor]
) -> Tensor:
    """(FM): the mean over layers of mean((D_l(x̂) − D_l(x))²) (LaMa's ``feature_matching_loss``
    without a mask, as the paper's config: ``pass_mask`` unset)."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(
            f"need as many fake as real feature maps (≥ 1), got {len(fake_features)} and "
            f"{len(real_features)}"
        )
    terms = [F.mse_loss(f, r) for f, r in zip(fake_features, real_features, strict=True)]
    return torch.stack(terms).mean()


def resnet_perceptual_loss(
    encoder: Callable[[Tensor], Sequence[Tensor]], prediction: Tensor, image: Tensor
) -> Tensor:
    """(PL): Σ over the encoder's feature maps of mean((φ_l(x̂) − φ_l(x))²), images in [0, 1]
    normalised with ImageNet's mean and std first (LaMa's ``ResNetPL`` before its weight).
    ``encoder`` maps a batch to its list of feature maps (the ADE20k ResNet-50's four stages)."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    fake = encoder((prediction - mean) / std)
    real = encoder((image - mean) / std)
    terms = [F.mse_loss(f, r) for f, r in zip(fake, real, strict=True)]
    return torch.stack(terms).sum()


@dataclass(frozen=True)
class GeneratorTerms:
    """The generator's objective and its terms (before their weights)."""

    loss: Tensor
    l1: Tensor
    adversarial: Tensor
    feature_matching: Tensor
    perceptual: Tensor


def lama_generator_loss(
    prediction: Tensor,
    image: Tensor,
    mask: Tensor,
    discriminator: nn.Module,
    perceptual: Callable[[Tensor], Sequence[Tensor]] | None,
    weights: dict[str, float],
) -> GeneratorTerms:
    """L1 + w_adv·G + w_fm·FM + w_pl·PL for the raw ``prediction`` (official
    ``generator_loss``), ``weights`` keyed as :data:`~esser_lab.keyframe.method.PAPER_LOSS`.
    The discriminator sees x and x̂ (its own gradients are the caller's to switch off); with
    ``perceptual`` None the PL term is 0 and must have weight 0."""
    l1 = masked_l1_loss(
        prediction, image, mask, weights["l1_weight_known"], weights["l1_weight_missing"]
    )
    real_logits, real_features = discriminator(image)
    fake_logits, fake_features = discriminator(prediction)
    adversarial = adversarial_generator_loss(fake_logits)
    matching = feature_matching_loss(fake_features, real_features)
    w_pl = weights["resnet_perceptual_weight"]
    if perceptual is None:
        if w_pl:
            raise ValueError(f"resnet_perceptual_weight={w_pl} needs a perceptual encoder")
        perceptual_term = prediction.new_zeros(())
    else:
        perceptual_term = resnet_perceptual_loss(perceptual, prediction, image)
    loss = (
        l1
        + weights["adversarial_weight"] * adversarial
        + weights["feature_matching_weight"] * matching
        + w_pl * perceptual_term
    )
    del real_logits  # official: D(x) is computed in the generator step for its features only
    return GeneratorTerms(loss, l1, adversarial, matching, perceptual_term)
