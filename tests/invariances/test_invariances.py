"""Chapter 7: the cINN's bijection, the Greybox split, the NLL, sampling, probes, checkpoints."""

import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.invariances import (
    ConditionalTransformer,
    DenseEmbedder,
    Greybox,
    InvariancesConfig,
    explain,
    foreground_stats,
    invariance_nll,
    palette_rgb,
    reconstruct,
    ridge_probe,
    sample_invariances,
    shape_sprites,
    swap_truth,
)
from esser_lab.metrics.classifiers import ExpertClassifier
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.training import load_checkpoint, save_checkpoint


def tiny(**changes) -> InvariancesConfig:
    return replace(InvariancesConfig.tiny(), **changes)


def experts(seed: int = 0):
    torch.manual_seed(seed)
    autoencoder = DenseAutoencoder(16, 3, 2, 16, 8).eval()
    greybox = Greybox.from_expert(ExpertClassifier(4, width=8).eval(), split=8)
    return autoencoder, greybox


def images(n: int = 8, seed: int = 0):
    return shape_sprites(n, 16, generator=torch.Generator().manual_seed(seed))


def test_paper_configuration():
    c = InvariancesConfig.paper()
    assert (c.z_dim, c.cond_dim, c.n_flows, c.hidden_dim, c.hidden_depth) == (
        128,
        4096,
        20,
        1024,
        2,
    )
    assert (c.embedding_dim, c.embedder_depth, c.batch_size, c.num_steps) == (128, 4, 16, 250_000)
    assert c.learning_rate == pytest.approx(4.5e-6 * 16) and c.betas == (0.5, 0.9)
    for preset in (InvariancesConfig.small(), InvariancesConfig.tiny()):  # only sizes shrink
        assert preset.base_learning_rate == c.base_learning_rate and preset.betas == c.betas


def test_dense_embedder_widths_follow_linspace():
    embedder = DenseEmbedder(4096, 128, depth=4)
    widths = [(m.in_features, m.out_features) for m in embedder.linears]
    assert widths == [(4096, 2773), (2773, 1450), (1450, 128)]
    assert len(embedder.norms) == 2
    assert DenseEmbedder(4, 16, 3)(torch.randn(5, 4)).shape == (5, 16)
    with pytest.raises(ValueError, match="depth"):
        DenseEmbedder(4, 16, 1)


def test_transformer_is_a_bijection_with_correct_logdet():
    torch.manual_seed(0)
    config = tiny(z_dim=6, hidden_dim=16, n_flows=3)
    transformer = ConditionalTransformer(config)
    z, phi = torch.randn(32, 6), torch.randn(32, 4)
    transformer(z, phi)  # data-dependent ActNorm initialisation
    transformer.eval()
    with torch.no_grad():
        v, logdet = transformer(z, phi)
        assert v.shape == (32, 6) and logdet.shape == (32,)
        assert torch.allclose(transformer.inverse(v, phi), z, atol=1e-5)
    # log|det| against autograd, for one sample
    z0, phi0 = z[:1].double(), phi[:1].double()
    transformer.double()
    jacobian = torch.autograd.functional.jacobian(lambda x: transformer(x, phi0)[0], z0)
    expected = torch.linalg.slogdet(jacobian.reshape(6, 6)).logabsdet
    assert torch.allclose(transformer(z0, phi0)[1], expected, atol=1e-8)


def test_condition_changes_the_map():
    torch.manual_seed(0)
    transformer = ConditionalTransformer(tiny()).eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        v1, _ = transformer(z, torch.randn(4, 4))
        v2, _ = transformer(z, torch.randn(4, 4))
    assert not torch.allclose(v1, v2)


def test_greybox_split_reproduces_the_classifier():
    torch.manual_seed(0)
    classifier = ExpertClassifier(4, width=8).eval()
    x = images(5).image
    for split in ("fc", 7, 8):  # vector layers: the pooled features and the logits
        greybox = Greybox.from_expert(classifier, split)
        with torch.no_grad():
            assert torch.allclose(greybox(x), classifier(x), atol=1e-6)
    assert Greybox.from_expert(classifier, "fc").encode(x).shape == (5, 32)
    assert Greybox.from_expert(classifier, 8).encode(x).shape == (5, 4)
    with pytest.raises(ValueError, match="unknown layer"):
        Greybox.from_expert(classifier, "conv9")
    with pytest.raises(ValueError, match="split"):
        Greybox.from_expert(classifier, 12)


def test_reconstruction_is_exact_and_samples_have_shape():
    autoencoder, greybox = experts()
    torch.manual_seed(0)
    transformer = ConditionalTransformer(tiny())
    x = images(16).image
    transformer(autoencoder.encode(x).mode(), greybox.encode(x))  # initialise ActNorm
    transformer.eval()
    e = explain(transformer, autoencoder, greybox, x)
    rebuilt = reconstruct(transformer, autoencoder, e.phi, e.v)
    assert (rebuilt - autoencoder.decode(e.z_ae)).abs().max() < 1e-4
    out = sample_invariances(
        transformer, autoencoder, e.phi[:3], 5, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == (3, 5, 3, 16, 16)
    again = sample_invariances(
        transformer, autoencoder, e.phi[:3], 5, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out, again)  # same seed, same samples
    with pytest.raises(ValueError, match="positive int"):
        sample_invariances(transformer, autoencoder, e.phi, 0)


def test_nll_falls_on_one_batch():
    autoencoder, greybox = experts()
    x = images(64).image
    with torch.no_grad():
        z_ae, phi = autoencoder.encode(x).mode(), greybox.encode(x)
    torch.manual_seed(0)
    transformer = ConditionalTransformer(tiny())
    optimizer = torch.optim.Adam(transformer.parameters(), lr=1e-3, betas=(0.5, 0.9))
    losses = []
    for _ in range(40):
        loss, parts = invariance_nll(transformer, z_ae, phi)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 5
    assert parts["reference_nll"].item() == 8.0
    with pytest.raises(ValueError, match="rows"):
        invariance_nll(transformer, z_ae, phi[:3])


def test_bad_inputs_are_named():
    transformer = ConditionalTransformer(tiny())
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        transformer(torch.randn(2, 16), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(batch, 16\)"):
        transformer(torch.randn(2, 15), torch.randn(2, 4))
    with pytest.raises(ValueError, match="z_dim"):
        tiny(z_dim=1)
    with pytest.raises(ValueError, match="unknown"):
        InvariancesConfig.from_dict({"n_flow": 3})


def test_data_swap_truth_and_foreground_stats():
    a, b = images(6, seed=1), images(6, seed=2)
    truth = swap_truth(a, b)
    assert torch.equal(truth.shape, b.shape) and torch.equal(truth.colour, a.colour)
    stats = foreground_stats(a.image)
    assert torch.allclose(stats.colour, palette_rgb(a.colour[:, 0]), atol=1e-6)
    assert (stats.position - a.position[:, 0]).abs().max() < 0.1
    biased = shape_sprites(20, 16, generator=torch.Generator().manual_seed(0), biased=True)
    assert torch.equal(biased.colour, biased.shape)
    with pytest.raises(ValueError, match="b, 3, h, w"):
        foreground_stats(torch.zeros(2, 1, 4, 4))


def test_ridge_probe_scores():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    y = x[:, :2] @ torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    assert ridge_probe(x[:300], y[:300], x[300:], y[300:]) > 0.99
    noise = torch.randn(400, 2, generator=g)
    assert ridge_probe(x[:300], noise[:300], x[300:], noise[300:]) < 0.1
    labels = (x[:, 0] > 0).long()
    assert ridge_probe(x[:300], labels[:300], x[300:], labels[300:]) > 0.9
    with pytest.raises(ValueError, match="rows"):
        ridge_probe(x[:10], y[:9], x, y)


def test_ridge_probe_matches_the_closed_form_with_its_penalty():
    """alpha = ridge · n on standardised features (population std), intercept unpenalised."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=g, dtype=torch.float64) * 3 + 1
    y = x @ torch.randn(4, 2, generator=g, dtype=torch.float64) + torch.randn(200, 2, generator=g)
    ridge = 0.5
    mean, std = x[:150].mean(0), x[:150].std(0, correction=0)
    xs, ts = (x[:150] - mean) / std, (x[150:] - mean) / std
    yc = y[:150] - y[:150].mean(0)
    w = torch.linalg.solve(xs.T @ xs + ridge * 150 * torch.eye(4, dtype=x.dtype), xs.T @ yc)
    pred = ts @ w + y[:150].mean(0)
    r2 = 1 - (y[150:] - pred).pow(2).sum(0) / (y[150:] - y[150:].mean(0)).pow(2).sum(0)
    assert ridge_probe(x[:150], y[:150], x[150:], y[150:], ridge=ridge) == pytest.approx(
        r2.mean().item(), abs=1e-9
    )


def test_checkpoint_round_trip(tmp_path):
    autoencoder, greybox = experts()
    torch.manual_seed(0)
    config = tiny()
    transformer = ConditionalTransformer(config)
    x = images(8).image
    transformer(autoencoder.encode(x).mode(), greybox.encode(x))
    transformer.eval()
    path = save_checkpoint(transformer, tmp_path / "cinn.safetensors", asdict(config))
    restored = ConditionalTransformer(InvariancesConfig.tiny()).eval()
    assert InvariancesConfig.from_dict(load_checkpoint(restored, path)) == config
    e1 = explain(transformer, autoencoder, greybox, x)
    e2 = explain(restored, autoencoder, greybox, x)
    assert torch.equal(e1.v, e2.v)


def test_lit_invariances_trains_only_the_cinn():
    from esser_lab.invariances.training import encode_experts, fit_invariances
    from esser_lab.scale import profile

    autoencoder, greybox = experts()
    data = encode_experts(autoencoder, greybox, images(64).image)
    assert data["phi"].shape == (64, 4) and data["z_mean"].shape == (64, 16)
    system = fit_invariances(tiny(batch_size=16, num_steps=3), data, scale=profile("tiny"))
    assert len(system.history) == 3 and not system.training
    assert {n.split(".")[0] for n, _ in system.named_parameters()} == {"transformer"}
    with pytest.raises(ValueError, match="cond_dim"):
        fit_invariances(tiny(cond_dim=5), data, scale=profile("tiny"))


def test_networks_do_not_import_lightning():
    code = (
        "import sys, esser_lab.invariances; "
        "assert 'lightning' not in sys.modules, 'lightning imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
