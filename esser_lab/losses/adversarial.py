"""Adversarial pieces of the VQGAN loss (Esser, Rombach & Ommer, CVPR 2021; arXiv 2012.09841).

* ``NLayerDiscriminator``: the pix2pix PatchGAN (Isola et al. 2017) as the official
  ``taming/modules/discriminator/model.py`` builds it (BatchNorm, LeakyReLU 0.2, 4×4 kernels, one
  logit per overlapping patch), with the official key layout ``main.{i}`` so that the
  ``loss.discriminator.*`` tensors of a released checkpoint load into it.
* ``hinge_d_loss`` / ``vanilla_d_loss``: the discriminator's two objectives.
* ``adopt_weight``: a weight that is 0 before ``threshold`` steps (``disc_start``).
* ``adaptive_weight``: the paper's adaptive weight λ (Sec. 3.1; (T7) in chapter 10), balancing
  the GAN term against the reconstruction term by their gradient norms at the decoder's last
  layer.

Conventions: logits are unbounded real numbers, "real" = data; the generator loss is −mean D(x̂).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NLayerDiscriminator",
    "adaptive_weight",
    "adopt_weight",
    "hinge_d_loss",
    "vanilla_d_loss",
    "weights_init",
]


def weights_init(module: nn.Module) -> None:
    """The official initialisation: convolutions N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0.

    (Convolution biases keep PyTorch's default initialisation, as in the official code.)
    """
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.constant_(module.bias, 0.0)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4×4 convs (widths ndf·2^i, capped at 8·ndf), one stride-1
    conv, and a 1-channel stride-1 conv. Output ``(b, 1, h', w')``: one logit per patch.

    Layout of ``main`` for ``n_layers = 3``: 0 conv (bias), 1 LeakyReLU, then three
    [conv (no bias), BatchNorm, LeakyReLU] at 2–4, 5–7, 8–10, and the final conv 11 (bias).
    The official ``use_actnorm`` option (never used by a released config) is left out.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if input_nc < 1 or ndf < 1 or n_layers < 1:
            raise ValueError(
                f"need input_nc, ndf and n_layers ≥ 1, got {input_nc}, {ndf} and {n_layers}"
            )
        self.n_layers = n_layers
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last of these keeps the resolution (−1)
            layers += [
                # no bias: BatchNorm's shift replaces it
                nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(weights_init)  # official: ``NLayerDiscriminator(...).apply(weights_init)``

    def output_size(self, size: int) -> int:
        """The side of the logit map for an input of side ``size``."""
        for _ in range(self.n_layers):
            size = size // 2  # 4×4, stride 2, padding 1
        return size - 2  # two 4×4 stride-1 convs with padding 1 each lose one pixel

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.main[0].in_channels:
            raise ValueError(
                f"the discriminator expects (batch, {self.main[0].in_channels}, h, w), "
                f"got {tuple(x.shape)}"
            )
        smallest = min(x.shape[2], x.shape[3])
        if self.output_size(smallest) < 1:
            raise ValueError(
                f"a {self.n_layers}-layer PatchGAN needs images of side ≥ {3 * 2**self.n_layers}, "
                f"got {tuple(x.shape[2:])}"
            )
        return self.main(x)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½ (mean relu(1 − D(x)) + mean relu(1 + D(x̂))): the VQGAN discriminator's default."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½ (mean softplus(−D(x)) + mean softplus(D(x̂))): the non-saturating GAN's cross-entropy."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def adopt_weight(weight: float, global_step: int, threshold: int = 0, value: float = 0.0) -> float:
    """``value`` (0) before ``threshold`` steps, ``weight`` from then on (``disc_start``)."""
    return value if global_step < threshold else weight


def adaptive_weight(
    nll_loss: Tensor, g_loss: Tensor, last_layer: Tensor, disc_weight: float = 1.0
) -> Tensor:
    """λ = ‖∇_{G_L} L_rec‖ / (‖∇_{G_L} L_GAN‖ + δ), clamped to [0, 10⁴], detached, × disc_weight.

    (T7) of chapter 10, the paper's adaptive weight (Sec. 3.1), with G_L the decoder's last layer
    (``decoder.conv_out.weight``).
    # official code: δ = 1e-4; paper: δ = 1e-6. Both losses must still hold their graphs; they
    # are kept (``retain_graph``) for the backward pass that follows.
    """
    if not last_layer.requires_grad:
        raise ValueError("adaptive_weight needs a last_layer that requires grad")
    (nll_grads,) = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)
    (g_grads,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    weight = nll_grads.norm() / (g_grads.norm() + 1e-4)
    return weight.clamp(0.0, 1e4).detach() * disc_weight
