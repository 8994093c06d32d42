"""Chapter 10's exercise 1 and 2 checkers: the placement of β and the adaptive weight λ (T7)."""

import torch

from esser_lab.data import sprites
from esser_lab.losses.adversarial import NLayerDiscriminator, adaptive_weight
from esser_lab.taming import VQGANConfig, VQModel
from esser_lab.taming.exercises import (
    check_adaptive_weight,
    check_distinct_codes,
    check_encoder_pull,
    distinct_codes,
    encoder_gradient_norms,
    gan_weight,
)


def setting():
    torch.manual_seed(0)
    model, d = VQModel(VQGANConfig.tiny()), NLayerDiscriminator(3, 16, 2)
    x = sprites.sample(8, 16, generator=torch.Generator().manual_seed(0)).image
    return model, d, x


def test_legacy_pulls_the_encoder_by_one_over_beta_and_the_choice_is_checked():
    model, _, x = setting()
    with torch.no_grad():
        z_hat = model.quant_conv(model.encoder(x))
    norms = encoder_gradient_norms(model.quantize, z_hat)
    beta = model.quantize.beta
    assert beta < 1 and abs(norms["legacy"] / norms["vq-vae"] - 1 / beta) < 1e-4 / beta
    assert check_encoder_pull(model.quantize, z_hat, "legacy")
    wrong = check_encoder_pull(model.quantize, z_hat, "vq-vae")
    assert not wrong and "commitment" in str(wrong)
    assert not check_encoder_pull(model.quantize, z_hat, "codebook")  # not an option
    assert "no answer yet" in str(check_encoder_pull(model.quantize, z_hat, None))


def test_lambda_by_hand_is_accepted_and_the_state_is_left_alone():
    model, d, x = setting()
    model.requires_grad_(False)  # frozen, as in the chapter
    before = {k: b.clone() for k, b in d.named_buffers()}
    last = model.last_layer()
    last.requires_grad_(True)
    x_hat, _ = model(x)
    rec, g_loss = (x - x_hat).abs().mean(), -d(x_hat).mean()
    (g_rec,), (g_gan,) = (torch.autograd.grad(loss, last, retain_graph=True)
                          for loss in (rec, g_loss))  # fmt: skip
    by_hand = 0.5 * float(g_rec.norm() / (g_gan.norm() + 1e-4))
    assert abs(float(adaptive_weight(rec, g_loss, last, 0.5)) - by_hand) < 1e-6 * by_hand
    last.requires_grad_(False)
    for k, b in d.named_buffers():
        b.copy_(before[k])
    assert abs(gan_weight(model, d, x, 0.5) - by_hand) < 1e-5 * by_hand
    assert not last.requires_grad
    assert all(torch.equal(b, before[k]) for k, b in d.named_buffers())
    assert check_adaptive_weight(model, d, x, 0.5, by_hand)
    upside_down = check_adaptive_weight(model, d, x, 0.5, 0.25 / by_hand)
    assert not upside_down and "right way up" in str(upside_down)
    assert f"{by_hand:.3f}" not in str(upside_down)
    assert "no answer yet" in str(check_adaptive_weight(model, d, x, 0.5, None))


def test_distinct_codes_by_hand_and_the_usual_miscounts():
    codes = torch.tensor([[[1, 1], [2, 3]], [[4, 4], [4, 4]], [[0, 5], [6, 7]]])  # 3, 1, 4
    assert distinct_codes(codes) == 8 / 3
    assert check_distinct_codes(codes, sum(len(torch.unique(c)) for c in codes) / len(codes))
    pooled = check_distinct_codes(codes, len(torch.unique(codes)))  # over all samples: 8
    assert not pooled and "too high" in str(pooled) and "2.6" not in str(pooled)
    assert not check_distinct_codes(codes, 8 / 3 / 4)  # a share of the 4 positions
    assert "no answer yet" in str(check_distinct_codes(codes, None))
