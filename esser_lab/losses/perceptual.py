"""Perceptual feature losses on a frozen VGG19 (weights from a file or a state dict).

The VUNet's likelihood (official ``deeploss.py``) is an L1 distance between VGG19 features of
the image and the reconstruction at the layers ``input, block1_conv2, …, block5_conv2``, each
weighted 1.0 and averaged over its elements. The official code uses Keras' ImageNet VGG19; here
it is torchvision's VGG19 architecture with its ImageNet weights, read from a file the user gives
(``data/checkpoints/vgg19/vgg19.pth`` or ``.safetensors``) or passed as a state dict:
:func:`esser_lab.pretrained.vgg19_feature_loss` builds it from ``Scale.pretrained`` (that file,
else torchvision's weights fetched with their checksum, or a seeded stand-in). At tiny scale the
chapters use a pixel loss instead and say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# indices into torchvision's ``vgg19().features`` of the ReLU after each block's 2nd conv
# (Keras' ``blockN_conv2`` outputs include their ReLU)
VGG19_LAYERS = {
    "block1_conv2": 3,
    "block2_conv2": 8,
    "block3_conv2": 13,
    "block4_conv2": 22,
    "block5_conv2": 31,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load tensors from ``.safetensors`` or a tensor-only ``.pth``/``.pt`` (``weights_only``).

    :func:`esser_lab.weights.read_state_dict` (a Lightning ``state_dict`` is unwrapped); every
    failure is a :class:`~esser_lab.weights.WeightsError`.
    """
    from esser_lab.weights import read_state_dict

    return read_state_dict(path)


class VGG19FeatureLoss(nn.Module):
    """``Σ_l w_l · mean |φ_l(x) − φ_l(x̂)|`` over the chosen VGG19 layers (plus the input)."""

    def __init__(
        self,
        weights_path: str | Path | Mapping[str, torch.Tensor],
        layers: Sequence[str] = ("input", *VGG19_LAYERS),
        layer_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        unknown = [name for name in layers if name != "input" and name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(
                f"unknown VGG19 layer(s) {unknown}; expected 'input' or {list(VGG19_LAYERS)}"
            )
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights or [1.0] * len(self.layers))
        if len(self.layer_weights) != len(self.layers):
            raise ValueError(f"{len(self.layer_weights)} weights for {len(self.layers)} layers")
        if isinstance(weights_path, Mapping):  # a state dict (esser_lab.pretrained)
            state = dict(weights_path)
            weights_path = "the given VGG19 state dict"
        else:
            state = load_state_dict_file(weights_path)
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
        last = max((VGG19_LAYERS[name] for name in self.layers if name != "input"), default=-1)
        features = make_layers(cfgs["E"])[: last + 1]  # VGG19's convolutional part
        missing, unexpected = features.load_state_dict(
            {k: v for k, v in state.items() if int(k.split(".")[0]) <= last}, strict=False
        )
        if missing:
            raise ValueError(f"{weights_path}: missing VGG19 feature weights {missing}")
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std  # images in [-1, 1] → ImageNet normalisation
        outputs = [h] if "input" in self.layers else []
        wanted = {VGG19_LAYERS[name] for name in self.layers if name != "input"}
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in wanted:
                outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        if x.shape != x_hat.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"expected two (b, 3, h, w) images, got {tuple(x.shape)} and {tuple(x_hat.shape)}"
            )
        total = x.new_zeros(())
        for weight, f, f_hat in zip(
            self.layer_weights, self._features(x), self._features(x_hat), strict=True
        ):
            total = total + weight * F.l1_loss(f_hat, f)
        return total
