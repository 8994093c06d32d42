"""The book's "FID-style" score: a Fréchet distance on the features of a small, seeded network.

The real FID (Heusel et al. 2017) compares Inception-v3 features of two image sets. Inception's
weights cannot be had offline and its features mean little on 16×16 sprites, so at ``tiny`` and
``small`` scale the book uses one stand-in everywhere:

* **the feature network** :class:`FeatureNet` is a small CNN trained once, with a fixed seed, to
  name every factor of the procedural sprites (shape, colour, texture) from 32×32 renders with
  random position, scale and rotation; its 64-d pooled penultimate activations are the features.
  Inputs of any size are resized to 32×32 first. The trained weights ship inside the package
  (``esser_lab/metrics/weights/fid_features.safetensors``) and are re-made, bit for bit on a CPU,
  by ``python -m esser_lab.metrics.fid`` (:func:`train_feature_net`);
* **the distance** is the Fréchet distance between Gaussians fitted to the two feature sets,
  ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½), as for FID.

Numbers on this scale are comparable within the book, never with published FIDs. At ``full``
scale chapters use the real FID (torchmetrics' ``FrechetInceptionDistance``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.checks import check_tensor

__all__ = ["FeatureNet", "fid_style", "frechet_distance", "load_feature_net", "train_feature_net"]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "fid_features.safetensors"
SIZE = 32
HEADS = {"shape": 6, "colour": 8, "texture": 4}


class FeatureNet(nn.Module):
    """Four 3×3 conv stages (stride 2 from the second) with GroupNorm and SiLU, global average
    pooling to 64 features, and one linear head per sprite factor."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = (width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(c_in, c, 3, 1 if i == 0 else 2, 1), nn.GroupNorm(8, c), nn.SiLU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Linear(c_in, n) for name, n in HEADS.items()})
        self.dim = c_in

    def features(self, x: Tensor) -> Tensor:
        """``(b, 3, h, w)`` images in [-1, 1] → ``(b, 64)`` features."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"FeatureNet expects RGB images (batch, 3, h, w), got {tuple(x.shape)}"
            )
        check_tensor(x, "images", ("batch", 3, "h", "w"), like=self, training=self.training)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}


def train_feature_net(steps: int = 1200, batch_size: int = 64, seed: int = 0) -> FeatureNet:
    """Train :class:`FeatureNet` on fresh sprites every step (deterministic on a CPU for a seed)."""
    from esser_lab.data import sprites

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = FeatureNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        batch = sprites.sample(batch_size, SIZE, generator=generator)
        logits = net(batch.image)
        loss = sum(F.cross_entropy(logits[name], getattr(batch, name)[:, 0]) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval().requires_grad_(False)


def load_feature_net(path: str | Path = WEIGHTS) -> FeatureNet:
    """The shipped, frozen feature network (see the module docstring for how it is made).

    Read strictly by :func:`esser_lab.weights.load_weights`; a missing, unreadable or
    mismatched file raises :class:`~esser_lab.weights.WeightsError`.
    """
    from esser_lab.weights import load_weights

    hint = (
        "These are the FID-style feature weights: re-make them with "
        "`python -m esser_lab.metrics.fid` (a few minutes on a CPU)"
    )
    net = load_weights(FeatureNet(), path, what="FID-style feature weights", hint=hint)
    return net.eval().requires_grad_(False)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two ``(n, d)`` feature sets (float64)."""
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            "need two (n, d) feature sets of the same d, got "
            f"{tuple(features_a.shape)} and {tuple(features_b.shape)}"
        )
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("each feature set needs at least 2 rows to estimate a covariance")
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.t()), torch.cov(b.t())
    # tr((Σa Σb)^½) = Σ √λ over the eigenvalues of Σa Σb (real and ≥ 0 for PSD Σa, Σb)
    eigenvalues = torch.linalg.eigvals(cov_a @ cov_b).real.clamp(min=0)
    trace_sqrt = eigenvalues.sqrt().sum()
    distance = (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return float(distance.clamp(min=0))


@torch.no_grad()
def fid_style(images_a: Tensor, images_b: Tensor, net: FeatureNet | None = None) -> float:
    """The book's FID-style score between two image sets ``(n, 3, h, w)`` in [-1, 1]."""
    net = load_feature_net() if net is None else net
    feats = [torch.cat([net.features(c) for c in x.split(512)]) for x in (images_a, images_b)]
    return frechet_distance(*feats)


if __name__ == "__main__":
    from safetensors.torch import save_file

    torch.set_num_threads(1)  # bit-for-bit reproducible on a CPU
    trained = train_feature_net()
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(WEIGHTS))
    from esser_lab.data import sprites

    test = sprites.sample(1024, SIZE, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        out = trained(test.image)
    for name in HEADS:
        acc = (out[name].argmax(1) == getattr(test, name)[:, 0]).float().mean().item()
        print(f"{name} accuracy on fresh sprites: {acc:.3f}")
    print(f"wrote {WEIGHTS}")
