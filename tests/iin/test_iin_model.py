"""The IIN networks at tiny size: configuration, shapes, invertibility, log-det, checkpoints."""

import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.iin import FactorTransformer, IINConfig
from esser_lab.training import load_checkpoint, save_checkpoint


def codes(config: IINConfig, b: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, config.z_dim, generator=torch.Generator().manual_seed(seed))


def test_paper_configuration():
    c = IINConfig.paper()
    assert (c.z_dim, c.n_flows, c.hidden_dim, c.hidden_depth) == (64, 12, 512, 2)
    assert (c.n_factors, c.rho, c.batch_size, c.betas) == (3, 0.975, 25, (0.5, 0.9))
    assert c.learning_rate == pytest.approx(4.5e-6 * 25)
    assert c.sizes() == (22, 22, 20)  # torch.chunk of 64 into 3, as the code does
    assert replace(c, factor_sizes=(22, 11, 31)).sizes() == (22, 11, 31)  # cmnist_clf_diin
    assert IINConfig.unsupervised().sizes() == (64,)


def test_tiny_only_shrinks():
    tiny, paper = IINConfig.tiny(), IINConfig.paper()
    assert (tiny.rho, tiny.betas, tiny.n_factors) == (paper.rho, paper.betas, paper.n_factors)
    assert IINConfig.from_dict(asdict(tiny)) == tiny


@pytest.mark.parametrize(
    "changes",
    [{"factor_sizes": (3, 3)}, {"factor_sizes": (3, 3, 11)}, {"rho": 1.0}, {"n_flows": 0}],
)
def test_bad_config_raises(changes):
    with pytest.raises(ValueError):
        replace(IINConfig.tiny(), **changes)


def test_forward_shapes_and_inverse():
    config = replace(IINConfig.tiny(), factor_sizes=(3, 3, 10))
    model = FactorTransformer(config)
    z = codes(config)
    factors, logdet = model(z)  # the first (training-mode) pass initialises ActNorm
    assert [f.shape for f in factors] == [(8, 3), (8, 3), (8, 10)]
    assert logdet.shape == (8,)
    model.eval()
    factors, _ = model(z)
    assert torch.allclose(model.inverse(factors), z, atol=1e-5)


def test_logdet_matches_autograd():
    config = replace(IINConfig.tiny(), z_dim=6, factor_sizes=(2, 2, 2))
    model = FactorTransformer(config).double()
    model(codes(config).double())  # data-dependent ActNorm init
    model.eval()
    z = codes(config, b=1, seed=1).double()[0]
    jacobian = torch.autograd.functional.jacobian(lambda x: torch.cat(model(x[None])[0], 1)[0], z)
    _, logdet = model(z[None])
    assert torch.allclose(logdet[0], torch.linalg.slogdet(jacobian)[1], atol=1e-8)


def test_bad_inputs_raise():
    model = FactorTransformer(IINConfig.tiny())
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 5))
    model(codes(IINConfig.tiny()))
    with pytest.raises(ValueError, match="sizes"):
        model.inverse([torch.randn(2, 16)])


def test_same_seed_same_model_and_checkpoint_round_trip(tmp_path):
    config = IINConfig.tiny()
    torch.manual_seed(0)
    first = FactorTransformer(config)
    torch.manual_seed(0)
    second = FactorTransformer(config)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    first(codes(config))
    first.eval()
    path = save_checkpoint(first, tmp_path / "iin.safetensors", asdict(config))
    torch.manual_seed(1)
    restored = FactorTransformer(config)
    stored = load_checkpoint(restored, path)
    restored.eval()
    assert IINConfig.from_dict(stored) == config
    z = codes(config, seed=3)
    for a, b in zip(first(z)[0], restored(z)[0], strict=True):
        assert torch.equal(a, b)


def test_network_does_not_import_lightning():
    code = "import sys, esser_lab.iin; assert 'lightning' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
