"""What chapter 7 measures on sprites: colour and position read from pixels, and linear probes.

* :func:`foreground_stats`: the mean colour and the centroid of the non-background pixels of
  images on the sprites' black background (``esser_lab.data.sprites.BACKGROUND``), so generated
  images can be scored without a learned judge;
* :func:`ridge_probe`: a linear (ridge) regression (scikit-learn's ``Ridge``) from one
  representation to a factor, scored on held-out data by R² (1 = perfectly linearly decodable,
  0 = no better than the mean). A classification target is regressed as a one-hot and scored by
  the argmax accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ForegroundStats:
    colour: Tensor  # (b, 3) mean colour of the foreground in [-1, 1]
    position: Tensor  # (b, 2) centroid (x, y) in [0, 1], y down
    area: Tensor  # (b,) fraction of foreground pixels


def foreground_stats(images: Tensor, threshold: float = 0.0) -> ForegroundStats:
    """Colour and centroid of the pixels whose brightest channel exceeds ``threshold``.

    The sprites' background is black (−1 in every channel) and every palette colour has a channel
    at +1, so ``max_c > 0`` separates object from background. An image with no foreground pixel
    gets the background colour and the image centre.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (b, 3, h, w), got {tuple(images.shape)}")
    b, _, h, w = images.shape
    weight = (images.amax(dim=1) > threshold).float()  # (b, h, w)
    count = weight.sum(dim=(1, 2))
    safe = count.clamp_min(1.0)
    colour = (images * weight[:, None]).sum(dim=(2, 3)) / safe[:, None]
    colour = torch.where(count[:, None] > 0, colour, torch.full_like(colour, -1.0))
    ys = (torch.arange(h, dtype=images.dtype) + 0.5) / h
    xs = (torch.arange(w, dtype=images.dtype) + 0.5) / w
    cx = (weight * xs[None, None, :]).sum(dim=(1, 2)) / safe
    cy = (weight * ys[None, :, None]).sum(dim=(1, 2)) / safe
    position = torch.stack([cx, cy], dim=1)
    position = torch.where(count[:, None] > 0, position, torch.full_like(position, 0.5))
    return ForegroundStats(colour=colour, position=position, area=count / (h * w))


def ridge_probe(
    train_features: Tensor,
    train_targets: Tensor,
    test_features: Tensor,
    test_targets: Tensor,
    ridge: float = 1e-3,
) -> float:
    """Held-out score of a linear probe: R² for float targets ``(n, k)`` (averaged over the k
    columns), accuracy for integer class targets ``(n,)`` (regressed as one-hot, scored by argmax).

    scikit-learn's ``StandardScaler`` then ``Ridge(alpha=ridge · n)`` on the training rows: the
    penalty is ``ridge`` per training example on standardised features, and the intercept is not
    penalised.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for name, f in (("train_features", train_features), ("test_features", test_features)):
        if f.dim() != 2:
            raise ValueError(f"{name} must be (n, d), got {tuple(f.shape)}")
    if len(train_features) != len(train_targets) or len(test_features) != len(test_targets):
        raise ValueError("features and targets must have the same number of rows")
    classify = not train_targets.is_floating_point()
    x_train = train_features.detach().double().numpy()
    x_test = test_features.detach().double().numpy()
    if classify:
        num_classes = int(max(train_targets.max(), test_targets.max())) + 1
        y = torch.nn.functional.one_hot(train_targets, num_classes).double().numpy()
    else:
        y = train_targets.detach().double().reshape(len(train_targets), -1).numpy()
    probe = make_pipeline(StandardScaler(), Ridge(alpha=ridge * len(x_train)))
    prediction = probe.fit(x_train, y).predict(x_test)
    if classify:
        return float((prediction.argmax(1) == test_targets.numpy()).mean())
    target = test_targets.detach().double().reshape(len(test_targets), -1).numpy()
    return float(r2_score(target, prediction.reshape(target.shape), multioutput="uniform_average"))
