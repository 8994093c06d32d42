"""VQGAN blocks: shapes, official names and sizes, straight-through gradients, loss placements."""

import pytest
import torch

from esser_lab.nn.ddconv import Decoder, Encoder
from esser_lab.nn.quantize import VectorQuantizer, codebook_usage
from esser_lab.taming import VQGANConfig, VQModel

TINY = VQGANConfig(
    resolution=16,
    ch=32,
    ch_mult=(1, 2, 2),
    num_res_blocks=1,
    attn_resolutions=(4,),
    z_channels=8,
    embed_dim=8,
    n_embed=32,
)


def test_released_sizes_and_names():
    model = VQModel(VQGANConfig.paper(1024))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(model.encoder) / 1e6, 2) == 29.30
    assert round(count(model.decoder) / 1e6, 2) == 42.45
    keys = model.state_dict()
    assert keys["encoder.conv_out.weight"].shape == (256, 512, 3, 3)
    assert keys["decoder.conv_in.weight"].shape == (512, 256, 3, 3)
    assert keys["encoder.down.4.attn.1.q.weight"].shape == (512, 512, 1, 1)
    assert (
        "decoder.up.4.attn.2.proj_out.weight" in keys
        and "decoder.up.0.upsample.conv.weight" not in keys
    )
    assert keys["decoder.up.1.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)
    assert VQModel(VQGANConfig.paper(16384)).quantize.embedding.weight.shape == (16384, 256)


def test_shapes_and_factor():
    model = VQModel(TINY)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    rec, q = model(x)
    assert rec.shape == x.shape and q.z_q.shape == (2, 8, 4, 4) and q.indices.shape == (2, 4, 4)
    assert TINY.factor == 4
    assert torch.allclose(model.decode_code(q.indices), model.decode(q.z_q), atol=1e-5)


def test_straight_through_and_loss_placement():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    for legacy, (w_commit, w_code) in ((True, (1.0, 0.25)), (False, (0.25, 1.0))):
        vq = VectorQuantizer(8, 4, beta=0.25, legacy=legacy)
        out = vq(z)
        # straight-through: d z_q / d z is the identity
        (grad,) = torch.autograd.grad(out.z_q.sum(), z)
        assert torch.equal(grad, torch.ones_like(z))
        # the encoder's gradient of the loss carries the commitment weight, the codebook's the other
        e = vq.embedding.weight
        g_z, g_e = torch.autograd.grad(out.loss, [z, e])
        q = vq.lookup(out.indices)
        assert torch.allclose(g_z, w_commit * 2 * (z - q).detach() / z.numel(), atol=1e-6)
        assert g_e.abs().sum() > 0 and w_code > 0


def test_nearest_code_and_usage():
    vq = VectorQuantizer(3, 2)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    z = torch.tensor([[0.9, 0.1], [0.1, 0.8], [0.0, 0.1], [0.8, 0.0]]).t().reshape(1, 2, 2, 2)
    assert vq.nearest(z).flatten().tolist() == [1, 2, 0, 1]
    perplexity, used = codebook_usage(torch.tensor([0, 0, 1, 1]), 4)
    assert used == 2 and abs(float(perplexity) - 2.0) < 1e-4


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="multiple of 32"):
        Encoder(
            ch=16,
            ch_mult=(1,),
            num_res_blocks=1,
            attn_resolutions=(),
            in_channels=3,
            resolution=8,
            z_channels=4,
        )
    model = VQModel(TINY)
    with pytest.raises(ValueError, match=r"\(batch, 3, h, w\)"):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        model.decode_code(torch.full((1, 2, 2), 40))
    with pytest.raises(ValueError, match="1024 or 16384"):
        VQGANConfig.paper(512)
    with pytest.raises(ValueError, match="unknown VQGANConfig"):
        VQGANConfig.from_dict({"n_embeds": 3})
    with pytest.raises(ValueError, match=r"\(batch, 8, h, w\)"):
        Decoder(
            ch=32,
            out_ch=3,
            ch_mult=(1, 2),
            num_res_blocks=1,
            attn_resolutions=(),
            resolution=8,
            z_channels=8,
        )(torch.zeros(1, 4, 2, 2))


def test_reconstruction_loss_falls_on_one_batch():
    torch.manual_seed(0)
    model = VQModel(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    losses = []
    for _ in range(15):
        rec, q = model(x)
        loss = (rec - x).abs().mean() + q.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
