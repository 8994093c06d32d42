"""Chapter 9 (data biases): the biased sprites, the model, the method, training and checkpoints."""

from dataclasses import asdict, replace

import pytest
import torch

from esser_lab.data import sprites
from esser_lab.data_bias import (
    DOMAINS,
    DataBiasConfig,
    DataBiasModel,
    DomainSpec,
    data_bias_loss,
    foreground_readout,
    one_hot,
    sample,
    sample_domains,
    translate,
)
from esser_lab.data_bias.data import RED
from esser_lab.training import load_checkpoint, save_checkpoint


def tiny_model(seed: int = 0) -> DataBiasModel:
    torch.manual_seed(seed)
    config = replace(DataBiasConfig.tiny(), n_flows=2, hidden_dim=32)
    model = DataBiasModel(config)
    x = images(64)
    model.to_shared(model.encode(x.image), x.domain)  # ActNorm's data-dependent init
    return model.eval()


def images(n: int = 32, seed: int = 0):
    domain = torch.arange(n) % len(DOMAINS)
    return sample_domains(domain, 16, generator=torch.Generator().manual_seed(seed))


def test_domains_have_the_designed_biases():
    n = 6000
    for k, spec in enumerate(DOMAINS):
        data = sample_domains(torch.full((n,), k), 16, generator=torch.Generator().manual_seed(k))
        red = (data.colour == RED).float().mean().item()
        assert red == pytest.approx(spec.colour_probs[RED], abs=0.03)
        low, high = spec.scale_range
        assert data.scale.min() >= low and data.scale.max() < high
        assert data.image.shape == (n, 3, 16, 16)
    assert DOMAINS[1].colour_probs[RED] == 0.5 and DOMAINS[0].colour_probs[RED] == 0.125


def test_sampling_is_seeded_and_rerenders_exactly():
    a, b = images(seed=3), images(seed=3)
    assert torch.equal(a.image, b.image)
    redrawn = sprites.render(
        a.shape[:, None],
        a.colour[:, None],
        torch.zeros_like(a.shape)[:, None],
        a.position[:, None],
        a.scale[:, None],
        torch.zeros(len(a.shape), 1),
        16,
    )
    assert torch.equal(redrawn.image, a.image)


def test_foreground_readout_finds_the_object():
    data = images(64)
    area, centre = foreground_readout(data.image)
    assert (area > 0).all()
    assert ((centre - data.position).norm(dim=1) * 16).mean() < 0.5  # pixels


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="domain indices"):
        sample_domains(torch.tensor([0, 3]), 16, generator=torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        sample_domains(torch.tensor([0]), 16, generator=None)
    with pytest.raises(ValueError, match="summing to 1"):
        DomainSpec("bad", (0.5,) * 6, DOMAINS[0].colour_probs, (0.2, 0.3))
    with pytest.raises(TypeError, match="integer tensor"):
        one_hot(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot(torch.tensor([0, 5]), 3)
    with pytest.raises(ValueError, match="num_domains"):
        replace(DataBiasConfig.tiny(), num_domains=1)
    with pytest.raises(ValueError, match="unknown DataBiasConfig"):
        DataBiasConfig.from_dict({"z_dims": 3})
    model = tiny_model()
    with pytest.raises(ValueError, match="alpha"):
        translate(model, images(4).image, 0, 1, alpha=1.5)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        translate(model, images(4).image, torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="does not match"):
        DataBiasModel(replace(DataBiasConfig.tiny(), z_dim=8), tiny_model().autoencoder)


def test_presets_and_config_round_trip():
    paper = DataBiasConfig.paper()
    assert (paper.n_flows, paper.hidden_dim, paper.hidden_depth) == (20, 1024, 2)
    assert (paper.z_dim, paper.embedding_dim, paper.num_domains) == (128, 10, 3)
    assert paper.learning_rate == pytest.approx(4.5e-6 * 15)
    tiny = DataBiasConfig.tiny()
    assert DataBiasConfig.from_dict(asdict(tiny)) == tiny
    assert (tiny.embedding_dim, tiny.conditioner_batch_norm, tiny.amsgrad) == (10, True, True)


def test_shapes_and_invertibility():
    model = tiny_model()
    x = images(8)
    z = model.encode(x.image)
    v, logdet = model.to_shared(z, x.domain)
    assert v.shape == (8, 16) and logdet.shape == (8,)
    assert torch.allclose(model.from_shared(v, x.domain), z, atol=1e-4)
    # the control (source == target) is a pure re-encoding D(E(x))
    control = translate(model, x.image, x.domain, x.domain)
    assert torch.allclose(control, model.decode(z), atol=1e-4)
    out = translate(model, x.image, 0, 1)
    assert out.shape == x.image.shape and out.abs().max() <= 1
    assert torch.allclose(translate(model, x.image, 0, 1, alpha=0.0), control, atol=1e-4)


def test_translation_in_passes_equals_one_pass(monkeypatch):
    from esser_lab.nn import placement

    model, x = tiny_model(), images(10)
    whole = translate(model, x.image, x.domain, 1, alpha=0.5)
    side = x.image.shape[-1]
    monkeypatch.setattr(placement, "EVAL_PIXELS_PER_PASS", 3 * side * side)  # passes of 3, 3, 3, 1
    assert placement.images_per_pass(side, side) == 3
    torch.testing.assert_close(translate(model, x.image, x.domain, 1, alpha=0.5), whole)


def test_the_label_changes_the_translation():
    model = tiny_model()
    x = images(8)
    assert not torch.allclose(translate(model, x.image, 0, 1), translate(model, x.image, 0, 2))


def test_logdet_matches_autograd():
    model = tiny_model()
    z = torch.randn(3, 16, dtype=torch.float64)
    model = model.double()
    domain = torch.tensor([0, 1, 2])
    _, logdet = model.to_shared(z, domain)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda row, i=i: model.to_shared(row[None], domain[i : i + 1])[0][0], z[i]
        )
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jac)[1], atol=1e-6)


def test_samples_are_seeded_and_share_v_across_labels():
    model = tiny_model()
    a = sample(model, 0, 4, generator=torch.Generator().manual_seed(1))
    b = sample(model, 0, 4, generator=torch.Generator().manual_seed(1))
    c = sample(model, 1, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (4, 3, 16, 16)
    assert not torch.equal(a, c)
    assert not model.training  # sampling restores the mode it found


def test_loss_falls_on_one_batch_and_only_the_flow_trains():
    model = tiny_model().train()
    x = images(64)
    before = {k: v.clone() for k, v in model.autoencoder.state_dict().items()}
    optimizer = torch.optim.Adam(model.flow.parameters(), lr=3e-3, amsgrad=True)
    torch.manual_seed(0)
    losses = []
    for _ in range(25):
        loss, parts = data_bias_loss(model, x.image, x.domain, sample=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0
    assert set(parts) == {"nll", "nlogdet", "reference_nll"}
    assert all(not p.requires_grad for p in model.autoencoder.parameters())
    after = model.autoencoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.autoencoder.training


def test_same_seed_same_model():
    a, b = tiny_model(seed=4), tiny_model(seed=4)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_lightning_system_step():
    from esser_lab.data_bias.training import LitDataBias

    config = replace(DataBiasConfig.tiny(), n_flows=2, hidden_dim=32)
    system = LitDataBias(config)
    x = images(32)
    loss = system.training_step({"image": x.image, "domain": x.domain}, 0)
    assert torch.isfinite(loss) and len(system.history) == 1
    optimizer = system.configure_optimizers()
    assert optimizer.defaults["amsgrad"] and optimizer.defaults["betas"] == (0.5, 0.9)
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in system.model.flow.parameters()}


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "bias.safetensors", asdict(model.config))
    fresh = DataBiasModel(DataBiasConfig.from_dict(load_checkpoint_config(path)))
    config = load_checkpoint(fresh, path)
    assert DataBiasConfig.from_dict(config) == model.config
    x = images(4)
    assert torch.allclose(translate(fresh.eval(), x.image, 0, 1), translate(model, x.image, 0, 1))


def load_checkpoint_config(path) -> dict:
    from esser_lab.training.checkpoint import read_checkpoint

    return read_checkpoint(path)[1]
