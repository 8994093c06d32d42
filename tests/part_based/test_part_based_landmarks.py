"""The landmark-regression metric the chapter measures with (``esser_lab.metrics.landmarks``)."""

import pytest
import torch

from esser_lab.metrics import fit_landmark_regressor, landmark_error


def test_regressor_recovers_an_exact_linear_map():
    g = torch.Generator().manual_seed(0)
    landmarks = torch.rand(200, 5, 2, generator=g)
    weight = torch.randn(10, 6, generator=g)
    keypoints = (landmarks.flatten(1) @ weight + 0.3).view(200, 3, 2)
    regressor = fit_landmark_regressor(landmarks, keypoints, ridge=0.0)
    torch.testing.assert_close(regressor(landmarks).float(), keypoints, atol=1e-4, rtol=0)
    assert landmark_error(regressor(landmarks), keypoints).max() < 1e-4


def test_error_is_the_mean_euclidean_distance():
    truth = torch.zeros(1, 2, 2)
    predicted = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])
    torch.testing.assert_close(
        landmark_error(predicted, truth), torch.tensor([3.0], dtype=torch.float64)
    )


def test_uninformative_landmarks_give_the_mean_pose():
    g = torch.Generator().manual_seed(1)
    keypoints = torch.rand(500, 4, 2, generator=g)
    noise = torch.rand(500, 3, 2, generator=g)
    regressor = fit_landmark_regressor(noise, keypoints, ridge=10.0)  # heavy ridge: ~ the mean
    mean = keypoints.mean(0, keepdim=True).expand_as(keypoints)
    assert (regressor(noise) - mean).abs().max() < 0.05


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(b, K, 2\)"):
        fit_landmark_regressor(torch.zeros(4, 3), torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="keypoints"):
        fit_landmark_regressor(torch.zeros(4, 3, 2), torch.zeros(5, 2, 2))
    with pytest.raises(ValueError, match="ridge"):
        fit_landmark_regressor(torch.zeros(4, 3, 2), torch.zeros(4, 2, 2), ridge=-1.0)
    regressor = fit_landmark_regressor(torch.rand(8, 3, 2), torch.rand(8, 2, 2))
    with pytest.raises(ValueError, match="fit on 3 landmarks"):
        regressor(torch.rand(2, 4, 2))


def _closed_form(landmarks: torch.Tensor, keypoints: torch.Tensor, ridge: float) -> torch.Tensor:
    """The hand-written solver the metric used before scikit-learn's ``Ridge``:
    ``W = (XᵀX + λ n I)⁻¹ XᵀY`` with an unpenalised bias column."""
    x = landmarks.double().flatten(1)
    x = torch.cat([x, x.new_ones(x.shape[0], 1)], 1)
    penalty = torch.eye(x.shape[1], dtype=x.dtype) * ridge * x.shape[0]
    penalty[-1, -1] = 0.0
    return torch.linalg.solve(x.T @ x + penalty, x.T @ keypoints.double().flatten(1))


@pytest.mark.parametrize("ridge", [0.0, 1e-3, 0.1, 10.0])
def test_scikit_learn_ridge_matches_the_closed_form(ridge):
    g = torch.Generator().manual_seed(2)
    landmarks = torch.rand(300, 6, 2, generator=g) * 2 - 1
    keypoints = (landmarks.flatten(1) @ torch.randn(12, 8, generator=g)).view(300, 4, 2)
    keypoints = keypoints + 0.05 * torch.randn(300, 4, 2, generator=g)
    regressor = fit_landmark_regressor(landmarks, keypoints, ridge=ridge)
    torch.testing.assert_close(
        regressor.weight, _closed_form(landmarks, keypoints, ridge), atol=1e-9, rtol=1e-9
    )
