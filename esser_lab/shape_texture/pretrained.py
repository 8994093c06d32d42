"""The paper's backbone with its weights: torchvision's ResNet-50, published or stand-in.

CHAPTER.md's rule for pretrained components: ``"published"`` (``small``/``full``) reads
``data/checkpoints/shape_texture/resnet50.pth`` when the user put a file there (e.g. a
Stylized-ImageNet ResNet-50 of Geirhos et al., converted to torchvision's key names), else
fetches torchvision's ImageNet weights (``ResNet50_Weights.IMAGENET1K_V1``, the weights the
official code loads) with their hash checked; ``"stand-in"`` (``tiny``, tests, CI) builds the
same architecture with torchvision's initialisation from a seeded generator. Files are read
tensor-only through :mod:`esser_lab.weights`-style strict loading.
"""

from __future__ import annotations

from pathlib import Path

import torch

from esser_lab.pretrained import checkpoint_folder
from esser_lab.shape_texture.model import ShapeTextureConfig, ShapeTextureNet

__all__ = ["resnet50"]


def resnet50(pretrained: str, path: str | Path | None = None, *, seed: int = 0) -> ShapeTextureNet:
    """``ShapeTextureNet(ShapeTextureConfig.paper())`` with ``pretrained`` weights (see the
    module docstring); loaded strictly, missing/unexpected keys named."""
    if pretrained not in ("published", "stand-in"):
        raise ValueError(f"pretrained must be 'published' or 'stand-in', got {pretrained!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the stand-in's weights: torchvision's init, seeded
        model = ShapeTextureNet(ShapeTextureConfig.paper())
    if pretrained == "stand-in":
        return model
    path = Path(path) if path is not None else checkpoint_folder() / "shape_texture/resnet50.pth"
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
    else:
        from torchvision.models import ResNet50_Weights

        print(f"{path} not found; fetching torchvision's ResNet-50 ImageNet weights")
        state = ResNet50_Weights.IMAGENET1K_V1.get_state_dict(
            progress=True, check_hash=True, weights_only=True
        )
    expected = set(model.resnet.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path}: not torchvision's ResNet-50 layout; missing {missing[:6]}, "
            f"unexpected {unexpected[:6]}"
        )
    model.resnet.load_state_dict(state, strict=True)
    return model
