"""Unsupervised landmark regression: how much pose the learned part positions carry.

The protocol of Thewlis et al. (2017), Zhang et al. (2018) and Lorenz et al. (2019): fit a linear
map (here scikit-learn's ridge regression) from the learned landmarks of training images to the
true keypoints, and report its error on held-out images, normalised by a reference length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sklearn.linear_model import Ridge


@dataclass(frozen=True)
class LandmarkRegressor:
    """``keypoints ≈ [landmarks, 1] @ weight``; ``weight`` is ``(2K + 1, 2J)`` (float64, CPU).

    Applied on the landmarks' device; the fit itself is scikit-learn's, on the CPU.
    """

    weight: torch.Tensor
    num_keypoints: int

    def __call__(self, landmarks: torch.Tensor) -> torch.Tensor:
        """Landmarks ``(b, K, 2)`` → predicted keypoints ``(b, J, 2)``, float64 on their device."""
        flat = _flat(landmarks)
        if flat.shape[1] + 1 != self.weight.shape[0]:
            raise ValueError(
                f"regressor was fit on {(self.weight.shape[0] - 1) // 2} landmarks, "
                f"got {landmarks.shape[1]}"
            )
        design = torch.cat([flat, flat.new_ones(flat.shape[0], 1)], 1)
        return (design @ self.weight.to(flat.device)).view(-1, self.num_keypoints, 2)


def _flat(landmarks: torch.Tensor) -> torch.Tensor:
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (b, K, 2), got {tuple(landmarks.shape)}")
    return landmarks.detach().double().flatten(1)


def fit_landmark_regressor(
    landmarks: torch.Tensor, keypoints: torch.Tensor, ridge: float = 1e-3
) -> LandmarkRegressor:
    """Ridge regression from ``(b, K, 2)`` landmarks to ``(b, J, 2)`` keypoints, in float64.

    ``sklearn.linear_model.Ridge(alpha=ridge · b)`` with an unpenalised intercept: it minimises
    ``‖Y − XW − c‖² + ridge · b · ‖W‖²``, i.e. ``ridge`` is the penalty per training image, so
    the same ``ridge`` means the same shrinkage for any number of images.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] != landmarks.shape[0]:
        raise ValueError(
            f"keypoints must have shape ({landmarks.shape[0]}, J, 2), got {tuple(keypoints.shape)}"
        )
    if ridge < 0:
        raise ValueError(f"ridge must be ≥ 0, got {ridge}")
    x = _flat(landmarks).cpu()  # scikit-learn fits on the CPU
    y = keypoints.detach().cpu().double().flatten(1)
    model = Ridge(alpha=ridge * x.shape[0], fit_intercept=True).fit(x.numpy(), y.numpy())
    coef = torch.from_numpy(model.coef_).T  # (2K, 2J)
    intercept = torch.from_numpy(model.intercept_)[None]  # (1, 2J)
    return LandmarkRegressor(torch.cat([coef, intercept]).double(), keypoints.shape[1])


def landmark_error(predicted: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Per-image mean Euclidean distance over the keypoints ``(b, J, 2)``, in the units of the
    coordinates (for keypoints in [0, 1]: fractions of the image size), on ``predicted``'s
    device."""
    if predicted.shape != keypoints.shape:
        raise ValueError(f"shapes differ: {tuple(predicted.shape)} vs {tuple(keypoints.shape)}")
    keypoints = keypoints.to(predicted.device)
    return (predicted.double() - keypoints.double()).norm(dim=-1).mean(-1)
