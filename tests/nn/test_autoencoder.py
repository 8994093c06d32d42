"""The shared first-stage autoencoder and its trainer."""

import pytest
import torch

from esser_lab.nn.autoencoder import DenseAutoencoder, DiagonalGaussian, autoencoder_loss


def test_shapes_and_official_widths():
    ae = DenseAutoencoder(in_size=32, in_channels=3, n_down=4, z_dim=64, width=64)
    x = torch.randn(2, 3, 32, 32)
    posterior = ae.encode(x)
    assert posterior.mean.shape == (2, 64)
    assert ae.decode(posterior.mode()).shape == (2, 3, 32, 32)
    # the code's widths 64·min(2^s, 16): 64, 128, 256, 512
    assert [stage[0].out_channels for stage in ae.encoder] == [64, 128, 256, 512]
    assert ae.dense_encode.kernel_size == (2, 2)


def test_kl_and_deterministic():
    params = torch.zeros(3, 8)
    assert torch.allclose(DiagonalGaussian(params).kl(), torch.zeros(3))
    d = DiagonalGaussian(torch.randn(3, 8), deterministic=True)
    assert torch.equal(d.sample(), d.mode()) and torch.equal(d.kl(), torch.zeros(3))


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    ae = DenseAutoencoder(16, 3, 2, 8, width=8)
    logvar = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([*ae.parameters(), logvar], lr=3e-3)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    first = None
    for _ in range(60):
        rec, posterior = ae(x)
        loss, parts = autoencoder_loss(x, rec, posterior, logvar, 1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(parts["rec"])
    assert float(parts["rec"]) < first


def test_bad_input_is_named():
    ae = DenseAutoencoder(16, 3, 2, 8, width=8)
    with pytest.raises(ValueError, match=r"\(batch, 3, 16, 16\)"):
        ae.encode(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(batch, 8\)"):
        ae.decode(torch.randn(2, 7))
    with pytest.raises(ValueError, match="multiple"):
        DenseAutoencoder(in_size=20, n_down=3)


def test_train_first_stage_freezes_and_is_reproducible():
    from esser_lab import scale
    from esser_lab.training.first_stage import train_first_stage

    images = torch.rand(64, 3, 16, 16) * 2 - 1
    outs = []
    for _ in range(2):
        torch.manual_seed(0)  # the network's initialisation
        ae, system = train_first_stage(
            images,
            DenseAutoencoder(16, 3, 2, 4, width=4),
            scale=scale.profile("tiny"),
            steps=5,
            batch_size=16,
        )
        outs.append(ae.encode(images[:4]).mode())
        assert len(system.history) == 5
    assert torch.equal(outs[0], outs[1])
    ae.train()  # a frozen expert stays in eval mode
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    with pytest.raises(ValueError, match=r"\(n, c, h, w\)"):
        train_first_stage(images[0], ae, scale=scale.profile("tiny"), steps=1)
