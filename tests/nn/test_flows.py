"""The shared invertible network: exact inverses, log-determinants against autograd, errors."""

import pytest
import torch

from esser_lab.nn.flows import (
    ActNorm,
    ConditionalFlow,
    DoubleAffineCoupling,
    Flow,
    Shuffle,
    nll_loss,
)


def _jacobian_logdet(fn, x):
    """log|det J| of fn at each row of x, by autograd (small dims only)."""
    out = []
    for row in x:
        jac = torch.autograd.functional.jacobian(lambda r: fn(r[None])[0], row)
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


@pytest.fixture
def x():
    return torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_actnorm_initialises_to_unit_statistics_and_inverts(x):
    norm = ActNorm(5).double()
    h, logdet = norm(x)
    assert torch.allclose(h.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(h.std(0), torch.ones(5, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(norm.inverse(h), x, atol=1e-10)
    expected = _jacobian_logdet(lambda r: norm(r)[0], x)
    assert torch.allclose(logdet, expected, atol=1e-8)
    # initialised once: a second batch does not re-initialise
    loc = norm.loc.detach().clone()
    norm(x * 3)
    assert torch.equal(norm.loc.detach(), loc)


def test_actnorm_image_logdet_counts_pixels():
    norm = ActNorm(2)
    x = torch.randn(4, 2, 3, 3)
    h, logdet = norm(x)
    assert h.shape == x.shape
    assert torch.allclose(logdet, 9 * norm.scale.abs().log().sum().expand(4))


def test_actnorm_refuses_inverse_before_initialisation():
    with pytest.raises(RuntimeError, match="forward pass"):
        ActNorm(3).inverse(torch.zeros(2, 3))


@pytest.mark.parametrize("dim", [4, 5])
@pytest.mark.parametrize("cond_dim", [0, 3])
def test_coupling_inverse_and_logdet(dim, cond_dim):
    torch.manual_seed(0)
    coupling = DoubleAffineCoupling(dim, hidden_dim=16, depth=1, cond_dim=cond_dim).double()
    x = torch.randn(6, dim, dtype=torch.float64)
    c = torch.randn(6, cond_dim, dtype=torch.float64) if cond_dim else None
    y, logdet = coupling(x, c)
    assert torch.allclose(coupling.inverse(y, c), x, atol=1e-10)
    if c is None:
        expected = _jacobian_logdet(lambda r: coupling(r)[0], x)
    else:  # the condition is held fixed per row
        expected = torch.stack(
            [
                _jacobian_logdet(lambda r, ci=ci: coupling(r, ci[None])[0], xi[None])[0]
                for xi, ci in zip(x, c, strict=True)
            ]
        )
    assert torch.allclose(logdet, expected, atol=1e-8)


def test_shuffle_is_a_permutation_and_seeded():
    a, b = Shuffle(7, seed=3), Shuffle(7, seed=3)
    assert torch.equal(a.forward_index, b.forward_index)
    assert sorted(a.forward_index.tolist()) == list(range(7))
    x = torch.randn(2, 7)
    z, logdet = a(x)
    assert torch.equal(a.inverse(z), x) and torch.equal(logdet, torch.zeros(2))


def test_flow_inverse_and_logdet_against_autograd(x):
    torch.manual_seed(0)
    flow = Flow(5, n_flows=3, hidden_dim=16, hidden_depth=1).double()
    z, logdet = flow(x)  # initialises the ActNorms
    z, logdet = flow(x)
    assert torch.allclose(flow.inverse(z), x, atol=1e-9)
    assert torch.allclose(logdet, _jacobian_logdet(lambda r: flow(r)[0], x), atol=1e-7)


def test_conditional_flow_inverse_logdet_and_condition_matters(x):
    torch.manual_seed(0)
    flow = ConditionalFlow(
        5, cond_in=2, n_flows=2, hidden_dim=16, hidden_depth=1, embedding_dim=4
    ).double()
    c = torch.randn(8, 2, dtype=torch.float64)
    z, logdet = flow(x, c)
    assert torch.allclose(flow.inverse(z, c), x, atol=1e-9)
    expected = torch.stack(
        [
            _jacobian_logdet(lambda r, ci=ci: flow(r, ci[None])[0], xi[None])[0]
            for xi, ci in zip(x, c, strict=True)
        ]
    )
    assert torch.allclose(logdet, expected, atol=1e-7)
    assert not torch.allclose(flow(x, c.flip(0))[0], z)
    samples = flow.sample(8, c, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (8, 5)


def test_flat_and_singleton_spatial_inputs_agree(x):
    flow = Flow(5, n_flows=2, hidden_dim=8).double()
    z, _ = flow(x)
    assert torch.allclose(flow(x[:, :, None, None])[0], z)


def test_same_seed_same_flow():
    torch.manual_seed(0)
    a = Flow(6, 2, 8, seed=1)
    torch.manual_seed(0)
    b = Flow(6, 2, 8, seed=1)
    x = torch.randn(4, 6)
    assert torch.equal(a(x)[0], b(x)[0])


def test_nll_falls_when_training_a_flow():
    torch.manual_seed(0)
    data = (
        torch.randn(256, 4)
        @ torch.tensor([[2.0, 0, 0, 0], [1, 0.5, 0, 0], [0, 0, 3, 0], [0, 0, 1, 0.2]])
        + 1
    )
    flow = Flow(4, n_flows=3, hidden_dim=32, hidden_depth=1)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, parts = nll_loss(*flow(data))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 1.0
    assert float(parts["reference_nll"]) == 2.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f(torch.randn(3, 4)), ValueError, r"\(batch, 5\)"),
        (lambda f: f(torch.zeros(3, 5, dtype=torch.long)), TypeError, "floating-point"),
        (lambda f: f("x"), TypeError, "torch.Tensor"),
        (lambda f: f(torch.randn(3, 5), torch.randn(3, 2)), ValueError, "unconditional"),
    ],
)
def test_flow_errors_name_what_was_expected(call, error, match):
    with pytest.raises(error, match=match):
        call(Flow(5, 1, 8))


def test_conditional_flow_errors():
    flow = ConditionalFlow(5, cond_in=2, n_flows=1, hidden_dim=8, embedding_dim=4)
    with pytest.raises(ValueError, match="needs a condition"):
        flow(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        flow(torch.randn(3, 5), torch.randn(3, 3))
    with pytest.raises(ValueError, match="rows"):
        flow(torch.randn(3, 5), torch.randn(4, 2))
    with pytest.raises(ValueError, match="positive int"):
        Flow(0, 1, 8)


def test_flow_checkpoint_round_trip(tmp_path):
    from esser_lab.training import load_checkpoint, save_checkpoint

    flow = ConditionalFlow(4, cond_in=3, n_flows=2, hidden_dim=8, embedding_dim=4, seed=2)
    x, c = torch.randn(5, 4), torch.randn(5, 3)
    flow(x, c)
    flow.eval()
    path = save_checkpoint(flow, tmp_path / "flow.safetensors")
    other = ConditionalFlow(4, cond_in=3, n_flows=2, hidden_dim=8, embedding_dim=4, seed=2).eval()
    load_checkpoint(other, path)
    assert torch.equal(other(x, c)[0], flow(x, c)[0])
    assert bool(other.blocks[0].norm.initialized)
