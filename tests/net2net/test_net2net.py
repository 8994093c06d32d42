"""Net2Net at tiny size: the config, the experts, the translator's properties, training, I/O."""

from dataclasses import replace

import pytest
import torch

from esser_lab.net2net import (
    AutoencoderExpert,
    BigGANExpert,
    Net2Net,
    Net2NetConfig,
    RegressionBaseline,
    SentenceEmbedder,
    WordEmbeddingEncoder,
    conditional_nll,
    regression_loss,
    sample,
    shift,
    translate,
)
from esser_lab.net2net.data import captioned_sprites, recolour
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.training import load_checkpoint, save_checkpoint

VOCABULARY = ["a", "an", "red", "blue", "orange", "circle", "square"]


def build(seed: int = 0) -> Net2Net:
    torch.manual_seed(seed)
    config = replace(Net2NetConfig.tiny(), cond_in=8, n_flows=2, hidden_dim=16)
    autoencoder = DenseAutoencoder(in_size=16, in_channels=3, n_down=2, z_dim=16, width=4)
    return Net2Net(config, WordEmbeddingEncoder(VOCABULARY, 8), AutoencoderExpert(autoencoder))


def test_paper_config_is_the_official_yaml():
    c = Net2NetConfig.paper()
    assert (c.dim, c.cond_in, c.embedding_dim, c.n_flows) == (268, 768, 268, 24)
    assert (c.hidden_dim, c.hidden_depth, c.conditioning_hidden_dim, c.conditioning_depth) == (
        1024,
        2,
        256,
        2,
    )
    assert c.conditioner_batch_norm and c.amsgrad and c.betas == (0.5, 0.9)
    assert c.learning_rate() == pytest.approx(4.5e-6 * 16)
    assert c.learning_rate(devices=8) == pytest.approx(4.5e-6 * 16 * 8)
    for preset in (Net2NetConfig.small(), Net2NetConfig.tiny()):
        assert preset.amsgrad and preset.betas == c.betas and preset.conditioner_batch_norm
    assert Net2NetConfig.from_dict({"n_flows": 3}).n_flows == 3
    with pytest.raises(ValueError, match="unknown"):
        Net2NetConfig.from_dict({"n_flow": 3})
    with pytest.raises(ValueError, match="dim"):
        Net2NetConfig(dim=1)


def test_word_embedding_encoder_is_fixed_and_checks_words():
    phi = WordEmbeddingEncoder(VOCABULARY, 8, seed=1)
    assert list(phi.parameters()) == []  # never trained
    z = phi.encode(["a red circle", "an orange square"])
    assert z.shape == (2, 8)
    by_hand = (
        phi.table[phi.index["a"]] + phi.table[phi.index["red"]] + phi.table[phi.index["circle"]]
    ) / 3
    torch.testing.assert_close(z[0], by_hand)
    torch.testing.assert_close(
        WordEmbeddingEncoder(VOCABULARY, 8, seed=1).encode(["a red circle"]), z[:1]
    )
    with pytest.raises(ValueError, match="unknown words"):
        phi.encode(["a purple circle"])
    with pytest.raises(TypeError, match="sequence of strings"):
        phi.encode("a red circle")


def test_shapes_and_frozen_experts():
    net = build()
    x = captioned_sprites(4, 16, generator=torch.Generator().manual_seed(0))
    captions = ["a red circle", "a blue square", "an orange circle", "a red square"]
    z, c = net.encode_target(x.image), net.encode_condition(captions)
    assert z.shape == (4, 16) and c.shape == (4, 8)
    v, logdet = net(z, c)
    assert v.shape == (4, 16) and logdet.shape == (4,)
    net.train()
    assert not net.source.training and not net.target.training
    assert all(not p.requires_grad for p in net.target.parameters())
    assert all(p.requires_grad for p in net.flow.parameters())
    assert net.decode(z).shape == (4, 3, 16, 16)


def test_translate_inverts_the_flow_and_logdet_matches_autograd():
    net = build()
    c = net.encode_condition(["a red circle", "a blue square", "an orange circle"])
    z = torch.randn(3, 16)
    net.flow.train()
    net(z, c)  # data-dependent ActNorm initialisation
    net.flow.eval()
    v, logdet = net(z, c)
    torch.testing.assert_close(translate(net.flow, c, v), z, atol=1e-4, rtol=1e-4)
    jacobian = torch.autograd.functional.jacobian(
        lambda row: net.flow(row[None], c[:1])[0][0], z[0]
    )
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jacobian)[1], atol=1e-4, rtol=1e-4)


def test_shift_to_the_same_condition_is_identity_and_sample_is_seeded():
    net = build().eval()
    c = net.encode_condition(["a red circle", "a blue square"])
    c_new = net.encode_condition(["a blue circle", "a red square"])
    z = torch.randn(2, 16)
    torch.testing.assert_close(shift(net.flow, z, c, c), z, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(shift(net.flow, z, c, c_new), z)
    a = sample(net.flow, c, generator=torch.Generator().manual_seed(5))
    b = sample(net.flow, c, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="v must have shape"):
        translate(net.flow, c, torch.randn(3, 16))
    with pytest.raises(ValueError, match="equal shapes"):
        shift(net.flow, z, c, c_new[:1])


def test_loss_falls_on_one_batch():
    net = build()
    c = net.encode_condition(["a red circle", "a blue square"] * 16)
    z = torch.randn(32, 16) * 0.3 + c[:, :1] * 2  # codes that depend on the condition
    optimizer = torch.optim.Adam(net.flow.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, parts = conditional_nll(net.flow, z, c)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 5
    assert parts["reference_nll"].item() == 8.0  # dim / 2
    regressor = RegressionBaseline(net.config)
    assert regression_loss(regressor(c), z).dim() == 0


def test_same_seed_same_model_and_checkpoint_round_trip(tmp_path):
    a, b = build(seed=3), build(seed=3)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    path = save_checkpoint(a, tmp_path / "net2net.safetensors", config={"n_flows": 2})
    c = build(seed=4)
    assert load_checkpoint(c, path) == {"n_flows": 2}
    for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q)


def test_clear_errors_for_bad_input(tmp_path):
    net = build()
    with pytest.raises(TypeError, match="source must be"):
        Net2Net(net.config, object(), net.target)
    with pytest.raises(TypeError, match="target must be"):
        Net2Net(net.config, net.source, WordEmbeddingEncoder(VOCABULARY, 8))
    with pytest.raises(ValueError, match="cond"):
        net(torch.randn(2, 16), torch.randn(2, 5))
    with pytest.raises(ValueError, match="z_cond must have shape"):
        RegressionBaseline(net.config)(torch.randn(2, 5))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        SentenceEmbedder(tmp_path / "missing")
    with pytest.raises(ValueError, match="never downloads"):  # a WeightsError
        BigGANExpert.from_file(torch.nn.Linear(1, 1), tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="140 \\+ 128"):
        BigGANExpert(lambda z, e: z).decode(torch.randn(1, 10))
    with pytest.raises(ValueError, match="scale_range"):
        captioned_sprites(2, 16, generator=torch.Generator(), scale_range=(0.4, 0.6))


def test_recolour_is_the_exact_edit():
    x = captioned_sprites(3, 16, generator=torch.Generator().manual_seed(1))
    same = recolour(x, x.colour)
    torch.testing.assert_close(same.image, x.image)
    other = recolour(x, (x.colour + 1) % 8)
    assert (other.mask == x.mask).all() and not torch.equal(other.image, x.image)


def test_lit_net2net_trains_the_flow_only():
    from esser_lab.net2net.training import LitNet2Net, LitRegressionBaseline, fit
    from esser_lab.scale import profile

    net = build()
    x = captioned_sprites(64, 16, generator=torch.Generator().manual_seed(2))
    captions = [c.replace("green", "red").replace("yellow", "blue") for c in x.caption]
    captions = [
        " ".join(w for w in c.split() if w in VOCABULARY) or "a red circle" for c in captions
    ]
    target_before = {k: v.clone() for k, v in net.target.state_dict().items()}
    system = fit(
        LitNet2Net(net), {"image": x.image, "caption": captions}, scale=profile("tiny"), steps=3
    )
    assert len(system.history) == 3 and "nll" in system.history[0]
    for k, v in net.target.state_dict().items():
        torch.testing.assert_close(v, target_before[k])
    optimizer = system.configure_optimizers()
    assert optimizer.defaults["amsgrad"] and optimizer.defaults["betas"] == (0.5, 0.9)
    baseline = LitRegressionBaseline(net, RegressionBaseline(net.config))
    codes = {"z_target": torch.randn(64, 16), "z_cond": torch.randn(64, 8)}
    assert len(fit(baseline, codes, scale=profile("tiny"), steps=2).history) == 2
    with pytest.raises(ValueError, match="fields must be"):
        fit(baseline, {"image": x.image}, scale=profile("tiny"), steps=1)


def test_network_layer_does_not_import_lightning():
    import subprocess
    import sys

    code = "import sys, esser_lab.net2net; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
