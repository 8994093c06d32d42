"""LPIPS, the learned perceptual distance (Zhang et al., CVPR 2018; arXiv 1801.03924), VGG16.

The perceptual term of the VQGAN loss (chapter 10, Taming Transformers) in the layout of the
official ``taming/modules/losses/lpips.py``: images in [−1, 1] pass a fixed ``ScalingLayer``, then
VGG16's convolutional stack cut into five slices ending at relu1_2, relu2_2, relu3_3, relu4_3 and
relu5_3. Each slice's features are unit-normalised over channels, the two images' features are
subtracted and squared, a learned non-negative 1×1 convolution ``lin_k`` (no bias) weighs the
channels, and the result is averaged over space and summed over the five slices:

    d(x, x̂) = Σ_k mean_{h,w} w_kᵀ (φ̂_k(x) − φ̂_k(x̂))²,    φ̂ = φ / ‖φ‖₂ (over channels)

The state-dict keys match the official module (``net.slice1.0.weight`` …, ``lin0.model.1.weight``,
``scaling_layer.shift``), so the ``loss.perceptual_loss.*`` keys of a released VQGAN checkpoint
load into it. ``LPIPS(vgg16_path, lin_path)`` reads two weight files: torchvision's VGG16 ImageNet
weights (``vgg16-397923af.pth``, keys ``features.N.*``) and the LPIPS linear weights (``vgg.pth``
of the LPIPS release, keys ``linK.model.1.weight``), by default from ``data/checkpoints/lpips/``.
:func:`esser_lab.pretrained.lpips` builds it from ``Scale.pretrained`` instead: those files, else
the published weights fetched with their checksum, or seeded stand-ins.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from esser_lab.cards import repository_root
from esser_lab.losses.perceptual import load_state_dict_file

__all__ = ["LPIPS", "NetLinLayer", "ScalingLayer", "default_lpips_paths"]

# indices into torchvision's ``vgg16().features`` where each slice ends (exclusive): the slices
# end at relu1_2 (3), relu2_2 (8), relu3_3 (15), relu4_3 (22) and relu5_3 (29)
VGG16_SLICE_ENDS = (4, 9, 16, 23, 30)
VGG16_CHANNELS = (64, 128, 256, 512, 512)


def default_lpips_paths() -> tuple[Path, Path]:
    """``data/checkpoints/lpips/vgg16.pth`` and ``…/vgg.pth`` under the repository (or the cwd)."""
    root = repository_root() or Path.cwd()
    folder = root / "data" / "checkpoints" / "lpips"
    return folder / "vgg16.pth", folder / "vgg.pth"


class ScalingLayer(nn.Module):
    """Maps images in [−1, 1] to the statistics the LPIPS VGG16 was calibrated with."""

    def __init__(self) -> None:
        super().__init__()
        # the official constants (ImageNet mean/std re-expressed for inputs in [−1, 1])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """``lin_k``: dropout, then a 1×1 convolution to one channel without bias (``model.1``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        # the dropout sits at index 0 so that the weight is ``model.1.weight`` as released
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(in_channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _VGG16Slices(nn.Module):
    """VGG16's conv stack as ``slice1`` … ``slice5``; child names = the original indices."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"])  # VGG16 ``features``, without building the classifier
        start = 0
        for k, end in enumerate(VGG16_SLICE_ENDS, start=1):
            layers = OrderedDict((str(i), features[i]) for i in range(start, end))
            self.add_module(f"slice{k}", nn.Sequential(layers))
            start = end

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for k in range(1, len(VGG16_SLICE_ENDS) + 1):
            x = getattr(self, f"slice{k}")(x)
            outputs.append(x)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
        return outputs


def _unit_normalise(features: Tensor, eps: float = 1e-10) -> Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The VGG16 LPIPS distance, frozen; ``forward(x, x_hat)`` → ``(b, 1, 1, 1)`` per image.

    ``vgg16_path``/``lin_path`` name the two weight files (defaults: :func:`default_lpips_paths`).
    Pass ``None`` for both to build the network without weights, e.g. to load the
    ``loss.perceptual_loss.*`` tensors of a released VQGAN checkpoint into it afterwards; a
    half-loaded network is refused.
    """

    def __init__(
        self,
        vgg16_path: str | Path | None = None,
        lin_path: str | Path | None = None,
        *,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = _VGG16Slices()
        for k, channels in enumerate(VGG16_CHANNELS):
            self.add_module(f"lin{k}", NetLinLayer(channels))
        if pretrained:
            default_vgg, default_lin = default_lpips_paths()
            self._load_vgg16(Path(vgg16_path or default_vgg))
            self._load_lin(Path(lin_path or default_lin))
        elif vgg16_path is not None or lin_path is not None:
            raise ValueError("pretrained=False builds LPIPS without weights: pass no paths")
        self.requires_grad_(False).eval()

    def _load_vgg16(self, path: Path) -> None:
        _require_file(path, "torchvision's VGG16 ImageNet weights (vgg16-397923af.pth)")
        self.load_vgg16_state(load_state_dict_file(path), path)

    def load_vgg16_state(self, state: dict[str, Tensor], source: str | Path) -> None:
        """Load torchvision's VGG16 state dict (``features.N.*``; the classifier is ignored)."""
        slice_of = {}  # feature index → slice number
        start = 0
        for k, end in enumerate(VGG16_SLICE_ENDS, start=1):
            slice_of |= {i: k for i in range(start, end)}
            start = end
        renamed = {}
        for key, value in state.items():
            if not key.startswith("features."):
                continue  # the classifier is not used
            index, name = key.removeprefix("features.").split(".", 1)
            if int(index) in slice_of:  # the last max-pool (30) has no weights anyway
                renamed[f"slice{slice_of[int(index)]}.{index}.{name}"] = value
        _load_strict(self.net, renamed, source, "VGG16 feature")

    def _load_lin(self, path: Path) -> None:
        _require_file(path, "the LPIPS v0.1 VGG linear weights (vgg.pth)")
        self.load_lin_state(load_state_dict_file(path), path)

    def load_lin_state(self, state: dict[str, Tensor], source: str | Path) -> None:
        """Load the LPIPS linear weights (``linK.model.1.weight``, K = 0 … 4)."""
        lins = nn.ModuleDict({f"lin{k}": getattr(self, f"lin{k}") for k in range(5)})
        wanted = {k: v for k, v in state.items() if k.startswith("lin")}
        _load_strict(lins, wanted, source, "LPIPS linear")

    def train(self, mode: bool = True) -> LPIPS:
        """A fixed metric: stays in eval mode (``lin_k`` dropout off) when its owner trains."""
        return super().train(False)

    def forward(self, x: Tensor, x_hat: Tensor) -> Tensor:
        if x.shape != x_hat.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects two (b, 3, h, w) images in [-1, 1], got {tuple(x.shape)} "
                f"and {tuple(x_hat.shape)}"
            )
        features = self.net(self.scaling_layer(x))
        features_hat = self.net(self.scaling_layer(x_hat))
        distance = x.new_zeros(x.shape[0], 1, 1, 1)
        for k, (f, f_hat) in enumerate(zip(features, features_hat, strict=True)):
            squared = (_unit_normalise(f) - _unit_normalise(f_hat)).pow(2)  # (b, c, h, w)
            weighted = getattr(self, f"lin{k}")(squared)  # (b, 1, h, w)
            distance = distance + weighted.mean(dim=(2, 3), keepdim=True)
        return distance


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS needs {what} at {path}: place the file there (see data/README.md), pass its "
            "path, or build it with esser_lab.pretrained.lpips('published'), which fetches the "
            "published weights with their checksum."
        )


def _load_strict(module: nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: {what} weights do not match; missing {missing}, unexpected {unexpected}"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        shapes = {k: (tuple(state[k].shape), tuple(expected[k].shape)) for k in wrong}
        raise ValueError(f"{path}: {what} tensors of the wrong shape (file, expected): {shapes}")
    module.load_state_dict(state, strict=True)
