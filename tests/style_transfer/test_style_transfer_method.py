"""Chapter 3 objectives: hand-computed triplets, the losses, training, seeds, checkpoints."""

from dataclasses import replace

import pytest
import torch

from esser_lab.data import art
from esser_lab.style_transfer import (
    StyleBatch,
    StyleTransferConfig,
    StyleTransferModel,
    blur,
    content_fixpoint_loss,
    discriminator_loss,
    fpd_loss,
    fpt_loss,
    generator_loss,
    image_loss,
    interpolate_styles,
    stylise,
    triplet_loss,
    update_success_rate,
)
from esser_lab.training import load_checkpoint, save_checkpoint


def batch(n: int = 8, seed: int = 0) -> StyleBatch:
    return StyleBatch.from_dict(
        art.sample_pairs(n, 16, generator=torch.Generator().manual_seed(seed))
    )


def test_triplet_by_hand() -> None:
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0]])  # ‖a − p‖² = 2
    far = torch.tensor([[-1.0, 0.0]])  # ‖a − n‖² = 4
    near = torch.tensor([[1.0, 0.0]])  # ‖a − n‖² = 0
    assert triplet_loss(a, p, far, margin=0.2).item() == 0.0  # 0.2 + 2 − 4 < 0
    assert triplet_loss(a, p, far, margin=2.5).item() == pytest.approx(0.5)
    assert triplet_loss(a, p, near, margin=0.2).item() == pytest.approx(2.2)
    with pytest.raises(ValueError, match="one shape"):
        triplet_loss(a, p, torch.zeros(1, 3), 0.2)


def test_fpt_and_fpd_by_hand() -> None:
    s_p, s_n = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # re-encoded styles equal their targets: both triplets are satisfied with margin
    assert fpt_loss(s_p, s_n, s_p, s_n, margin=0.5).item() == 0.0
    # swapped: each output sits on the other style, d_pos = 2, d_neg = 0
    assert fpt_loss(s_p, s_n, s_n, s_p, margin=0.5).item() == pytest.approx(2.5)
    # FPD: two photos in one style re-encode alike (distance 0) and away from s (distance 2)
    assert fpd_loss(s_n, s_n, s_p).item() == 0.0
    assert fpd_loss(s_p, s_n, s_p).item() == pytest.approx(2.0)


def test_image_and_content_fixpoint_losses() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert blur(x, 3).shape == (2, 3, 6, 6)
    striped = x.clone()
    striped[..., ::2] += 0.5
    striped[..., 1::2] -= 0.5  # same 2-pixel averages, different pixels
    assert image_loss(x, striped, 2) < 0.05 * (x - striped).square().mean()
    code = torch.randn(4, 8, 2, 2)
    assert content_fixpoint_loss(code, 3 * code).item() == pytest.approx(0.0, abs=1e-6)
    assert content_fixpoint_loss(-code, code).item() == pytest.approx(4.0)


def test_losses_are_finite_and_weighted() -> None:
    torch.manual_seed(0)
    model = StyleTransferModel(StyleTransferConfig.tiny())
    g = generator_loss(model, batch())
    c = model.config
    total = (
        c.adversarial_weight * g.adversarial
        + c.image_weight * g.image
        + c.content_fixpoint_weight * g.content_fixpoint
        + c.fpt_weight * g.fpt
        + c.fpd_weight * g.fpd
        + c.content_class_weight * g.content_class
        + c.style_class_weight * g.style_class
    )
    assert torch.isfinite(g.loss) and g.loss.item() == pytest.approx(total.item(), rel=1e-5)
    ablation = StyleTransferModel(c.without_fixpoint())
    ablation.load_state_dict(model.state_dict())
    g0 = generator_loss(ablation, batch())
    assert g0.loss.item() == pytest.approx(g.loss.item() - 50 * (g.fpt + g.fpd).item(), rel=1e-4)
    d = discriminator_loss(model, batch(), g.stylised)
    assert torch.isfinite(d.loss) and 0 <= d.accuracy.item() <= 1


def test_generator_loss_falls_on_one_batch() -> None:
    torch.manual_seed(0)
    config = StyleTransferConfig.tiny()
    model = StyleTransferModel(config)
    data = batch(16)
    optimizer = torch.optim.Adam(model.generator_parameters(), lr=2e-3, betas=(0.8, 0.999))
    losses = []
    for _ in range(25):
        terms = generator_loss(model, data)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        losses.append(terms.loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_success_rate_rule() -> None:
    # generator stepped and fooled nobody: the discriminator succeeded, the rate rises
    assert update_success_rate(0.5, 0.0, True, 0.1) == pytest.approx(0.55)
    # discriminator stepped with accuracy 0: the rate falls
    assert update_success_rate(0.5, 0.0, False, 0.1) == pytest.approx(0.45)


def test_same_seed_same_result_and_interpolation() -> None:
    data = batch(4)
    outs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        model = StyleTransferModel(StyleTransferConfig.tiny()).eval()
        outs.append(stylise(model, data.photo, data.painting))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    s = model.encode_style(data.painting)
    path = interpolate_styles(model, data.photo[0], s[0], s[1], steps=5)
    assert path.shape == (5, 3, 16, 16)
    assert torch.allclose(path[0], model(data.photo[:1], s[:1])[0], atol=1e-5)


def test_batch_keys_are_checked() -> None:
    rows = art.sample_pairs(2, 16, generator=torch.Generator().manual_seed(0))
    del rows["painting_negative"]
    with pytest.raises(ValueError, match="painting_negative"):
        StyleBatch.from_dict(rows)


def test_checkpoint_round_trip(tmp_path) -> None:
    config = StyleTransferConfig.tiny()
    model = StyleTransferModel(config).eval()
    path = save_checkpoint(model, tmp_path / "st.safetensors", config.__dict__)
    restored = StyleTransferModel(StyleTransferConfig.tiny()).eval()
    stored = load_checkpoint(restored, path)
    assert StyleTransferConfig.from_dict(stored) == config
    data = batch(2)
    assert torch.equal(
        stylise(model, data.photo, data.painting), stylise(restored, data.photo, data.painting)
    )
    other = StyleTransferModel(replace(config, num_residual_blocks=1))
    with pytest.raises(ValueError, match="missing keys|unexpected keys"):
        load_checkpoint(other, path)


def test_lit_style_transfer_trains_a_few_steps() -> None:
    from esser_lab.data.modules import ArtPairsDataModule
    from esser_lab.scale import profile
    from esser_lab.style_transfer.training import LitStyleTransfer
    from esser_lab.training.trainer import make_trainer

    for rate in (-1.0, 0.5):
        config = replace(StyleTransferConfig.tiny(), batch_size=8, discriminator_success_rate=rate)
        system = LitStyleTransfer(config)
        data = ArtPairsDataModule(16, 8, num_train=32, num_val=8, seed=0)
        trainer = make_trainer(profile("tiny"), 4, progress_every=2)
        trainer.fit(system, datamodule=data)
        assert system.generator_steps >= 1
        if rate < 0:
            assert system.generator_steps == system.discriminator_steps == 2


def test_fpt_has_no_gradient_at_a_collapsed_style_code() -> None:
    """Why ``tiny`` raises the artist weight: once every style vector is the same, FPT sits at its
    margin with zero gradient (squared distances), so it cannot pull the codes apart again."""
    s = torch.nn.functional.normalize(torch.ones(4, 16), dim=1)
    s_p, s_n, out_p, out_n = (s.clone().requires_grad_(True) for _ in range(4))
    loss = fpt_loss(s_p, s_n, out_p, out_n, margin=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.2)
    for t in (s_p, s_n, out_p, out_n):
        assert t.grad.abs().max().item() == 0.0
