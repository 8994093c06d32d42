"""Chapter 5's claims: the ridge probe, the centroid shift and the card they fill."""

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.iin import linear_r2
from esser_lab.iin.claims import KEYS, Paired, file_claims, paired
from esser_lab.iin.evaluate import centroid_shift


def closed_form_ridge_r2(train_x, train_y, test_x, test_y, ridge=1e-3):
    """The formula linear_r2 used before scikit-learn: penalty ridge · n, intercept unpenalised."""
    x_mean, y_mean = train_x.double().mean(0), train_y.double().mean(0)
    x, y = train_x.double() - x_mean, train_y.double() - y_mean
    gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, x.T @ y)
    predicted = (test_x.double() - x_mean) @ weight + y_mean
    residual = (test_y.double() - predicted).pow(2).sum(0)
    total = (test_y.double() - test_y.double().mean(0)).pow(2).sum(0)
    return float((1 - residual / total).mean())


def test_linear_r2_is_ridge_with_a_per_example_penalty():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 5, generator=g) * 3 + 2
    w = torch.randn(5, 2, generator=g)
    y = x @ w + torch.randn(600, 2, generator=g) * 2 + 1
    for ridge in (1e-3, 1.0):
        ours = linear_r2(x[:400], y[:400], x[400:], y[400:], ridge=ridge)
        assert ours == pytest.approx(
            closed_form_ridge_r2(x[:400], y[:400], x[400:], y[400:], ridge)
        )
    # a heavy penalty shrinks the fit: R² falls
    assert linear_r2(x[:400], y[:400], x[400:], y[400:], ridge=100.0) < linear_r2(
        x[:400], y[:400], x[400:], y[400:]
    )
    with pytest.raises(ValueError, match="equal d"):
        linear_r2(x[:400], y[:400], x[400:, :3], y[400:])


def test_centroid_shift_measures_how_far_an_object_moved():
    image = -torch.ones(2, 3, 8, 8)
    image[:, :, 2:4, 2:4] = 1.0
    moved = -torch.ones(2, 3, 8, 8)
    moved[:, :, 2:4, 5:7] = 1.0  # three pixels to the right
    assert centroid_shift(image, image, (-1.0, -1.0, -1.0)).abs().max() == 0
    assert torch.allclose(centroid_shift(moved, image, (-1.0, -1.0, -1.0)), torch.tensor(3.0))
    with pytest.raises(ValueError, match="shapes differ"):
        centroid_shift(moved[:1], image, (-1.0, -1.0, -1.0))


def measured(position_iin=1.2, position_raw=2.5, drift=(0.6, 1.0), nll=(0.4, 1.3)):
    edits = {
        ("colour", "IIN"): {"colour": 0.2, "position": 1.0},
        ("colour", "linear z"): {"colour": 0.45, "position": 0.9},
        ("position", "IIN"): {"colour": 0.1, "position": position_iin},
        ("position", "linear z"): {"colour": 0.1, "position": position_raw},
    }
    return dict(
        probe_gap={"IIN": 0.6, "raw": -0.4},
        edits=edits,
        drift=paired(torch.full((8,), drift[0]), torch.full((8,), drift[1])),
        nll={"IIN": nll[0], "Gaussian": nll[1]},
        n_test=1024,
    )


def card() -> Card:
    return Card("05_iin", "tiny", 0, 0.0)


def test_file_claims_files_every_key_in_the_claimed_direction():
    filled = file_claims(card(), **measured())
    assert [c.key for c in filled.claims] == list(KEYS)
    assert all(c.holds for c in filled.claims)
    assert filled["probe-gap"].better == "higher"
    # the position claim compares the IIN colour edit's drift with the linear colour edit's
    assert filled["colour-keeps-position"].our_value == 0.6
    assert filled["colour-keeps-position"].baseline_value == 1.0
    assert "linear edit of z" in filled["colour-keeps-position"].baseline


def test_an_edit_that_moves_the_object_as_far_as_the_linear_edit_fails():
    filled = file_claims(card(), **measured(drift=(1.1, 0.9)))
    assert not filled["colour-keeps-position"].holds
    filled = file_claims(card(), **measured(drift=(0.9, 0.9)))  # a tie is no win
    assert not filled["colour-keeps-position"].holds
    filled = file_claims(card(), **measured(position_iin=3.0, nll=(1.5, 1.3)))
    assert not filled["position-edit"].holds and not filled["density"].holds


def test_paired_compares_item_by_item():
    ours = torch.tensor([0.5, 0.5, 2.0, 0.5])
    baseline = torch.tensor([1.0, 1.0, 1.0, 1.0])
    result = paired(ours, baseline)
    assert isinstance(result, Paired)
    assert result.ours == pytest.approx(0.875) and result.baseline == pytest.approx(1.0)
    assert result.difference == pytest.approx(0.125)  # baseline − ours: positive = ours lower
    assert result.ours_lower == pytest.approx(0.75)
    differences = torch.tensor([0.5, 0.5, -1.0, 0.5], dtype=torch.float64)
    assert result.standard_error == pytest.approx((differences.std() / 2).item())
    with pytest.raises(ValueError, match="same n"):
        paired(ours, baseline[:3])


def test_file_claims_names_what_is_missing():
    values = measured()
    del values["edits"]["colour", "linear z"]
    with pytest.raises(KeyError, match="linear z"):
        file_claims(card(), **values)
    values = measured()
    values["nll"] = {"IIN": 0.4}
    with pytest.raises(KeyError, match="Gaussian"):
        file_claims(card(), **values)


def test_the_linear_baseline_edits_exactly_the_fitted_subspace():
    from esser_lab.iin import linear_factor_basis, swap_subspace

    g = torch.Generator().manual_seed(0)
    n, d = 512, 6
    factor = torch.randn(n, 2, generator=g)
    mixing = torch.linalg.qr(torch.randn(d, d, generator=g))[0]  # an orthogonal map
    z = torch.cat([factor, torch.randn(n, d - 2, generator=g)], 1) @ mixing.T
    basis = linear_factor_basis(z, factor)
    assert basis.shape == (d, 2)
    torch.testing.assert_close(basis.T @ basis, torch.eye(2), atol=1e-5, rtol=0)
    # z holds the factor linearly: swapping the subspace transplants the factor, keeps the rest
    donor = torch.roll(torch.arange(n), 1)
    edited = swap_subspace(z, z[donor], basis) @ mixing  # back to (factor, rest) coordinates
    torch.testing.assert_close(edited[:, :2], factor[donor], atol=0.05, rtol=0)
    rest = (z @ mixing)[:, 2:]
    torch.testing.assert_close(edited[:, 2:], rest, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="same n"):
        linear_factor_basis(z, factor[:3])
    with pytest.raises(ValueError, match="basis must be"):
        swap_subspace(z, z, basis[:3])
