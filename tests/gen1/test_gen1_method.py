"""Gen-1's method: the t_s blur, the first stage, the guidance by hand, Eq. 6 falls on one batch,
same seed → same sample, the LitGen1 step."""

from __future__ import annotations

import pytest
import torch

from esser_lab.diffusion import DiscreteSchedule, ddim_sample
from esser_lab.gen1.method import (
    PixelFold,
    blur_depth,
    gen1_loss,
    null_content,
    sample_video,
    structure,
    temporal_guidance,
    video_denoiser,
)
from esser_lab.gen1.model import Gen1Config, Gen1UNet
from esser_lab.gen1.training import LitGen1

D = 12


def _depth(b: int = 2, f: int = 3, side: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    depth = torch.ones(b, f, 1, side, side)
    depth[:, :, :, 4:10, 5:12] = 0.3 + 0.2 * torch.rand(b, f, 1, 1, 1, generator=g)
    return depth


def _gradient_energy(x: torch.Tensor) -> float:
    """Σ of squared neighbour differences: falls strictly under any real blur."""
    return float(
        (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum() + (x[..., 1:] - x[..., :-1]).pow(2).sum()
    )


def test_blur_identity_at_zero_and_monotone_smoothing():
    depth = _depth()
    torch.testing.assert_close(blur_depth(depth, 0), depth, rtol=0, atol=0)
    energies = [_gradient_energy(blur_depth(depth, t_s)) for t_s in range(6)]
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False))
    # a constant map stays constant (the kernel sums to one, replicate padding)
    flat = torch.full_like(depth, 0.4)
    torch.testing.assert_close(blur_depth(flat, 4), flat)
    # one level per clip equals blurring each clip on its own
    mixed = blur_depth(depth, torch.tensor([0, 3]))
    torch.testing.assert_close(mixed[:1], depth[:1], rtol=0, atol=0)
    torch.testing.assert_close(mixed[1:], blur_depth(depth[1:], 3))


def test_one_blur_step_by_hand():
    depth = torch.zeros(1, 1, 1, 9, 9)
    depth[..., 4, 4] = 1.0
    out = blur_depth(depth, 1)[0, 0, 0]
    k = torch.tensor([1.0, 4, 6, 4, 1]) / 16
    torch.testing.assert_close(out[2:7, 2:7], k[:, None] * k[None, :])


def test_structure_on_the_latent_grid_and_the_fold():
    depth = _depth()
    s = structure(depth, 2, factor=2)
    assert s.shape == (2, 3, 1, 8, 8)
    torch.testing.assert_close(s[0, 0, 0, 0, 0], blur_depth(depth, 2)[0, 0, 0, :2, :2].mean())
    fold = PixelFold(2)
    video = torch.randn(2, 3, 3, 16, 16)
    z = fold.encode(video)
    assert z.shape == (2, 3, 12, 8, 8)
    torch.testing.assert_close(fold.decode(z), video, rtol=0, atol=0)
    with pytest.raises(ValueError, match="divisible"):
        fold.encode(torch.randn(1, 2, 3, 15, 16))
    with pytest.raises(ValueError, match="depth"):
        blur_depth(torch.rand(2, 3, 16, 16), 1)


def test_temporal_guidance_by_hand():
    video = lambda x, t, c: torch.full_like(x, 3.0)  # noqa: E731
    frame = lambda x, t, c: torch.full_like(x, 1.0)  # noqa: E731
    x, t = torch.zeros(2, 4), torch.ones(2)
    for scale, expected in ((0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (0.5, 2.0)):
        out = temporal_guidance(video, frame, scale)(x, t, None)
        torch.testing.assert_close(out, torch.full_like(x, expected))


def _model(seed: int = 0) -> Gen1UNet:
    torch.manual_seed(seed)
    model = Gen1UNet(Gen1Config.tiny(content_dim=D))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def _cond(b: int = 2, f: int = 3):
    g = torch.Generator().manual_seed(3)
    return torch.rand(b, f, 1, 8, 8, generator=g), torch.randn(b, D, generator=g)


def test_the_sampler_is_the_nested_guidance():
    model, schedule = _model(), DiscreteSchedule.ldm()
    s, c = _cond()
    noise = torch.randn(2, 3, 12, 8, 8, generator=torch.Generator().manual_seed(4))
    T, cond = schedule.T, {"structure": s, "content": c}
    plain = ddim_sample(video_denoiser(model, T), noise, schedule, steps=4, cond=cond)
    torch.testing.assert_close(sample_video(model, schedule, s, c, steps=4, noise=noise), plain)
    per_frame = ddim_sample(video_denoiser(model, T, False), noise, schedule, steps=4, cond=cond)
    out = sample_video(model, schedule, s, c, steps=4, temporal_scale=0.0, noise=noise)
    torch.testing.assert_close(out, per_frame)

    # one step's guided ε by hand: G_π + ω_t (G_θ − G_π), G = ε(∅) + ω_c (ε(c) − ε(∅))
    def hand(x, t, cond):
        null = {"structure": s, "content": null_content(c)}
        g = {}
        for temporal in (True, False):
            e = video_denoiser(model, T, temporal)
            g[temporal] = e(x, t, null) + 3.0 * (e(x, t, cond) - e(x, t, null))
        return g[False] + 2.0 * (g[True] - g[False])

    expected = ddim_sample(hand, noise, schedule, steps=2, cond=cond)
    got = sample_video(
        model, schedule, s, c, steps=2, content_scale=3.0, temporal_scale=2.0, noise=noise
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_same_seed_same_sample():
    model, schedule = _model(), DiscreteSchedule.ldm()
    s, c = _cond()
    draw = lambda seed: sample_video(  # noqa: E731
        model, schedule, s, c, steps=4, generator=torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close(draw(5), draw(5), rtol=0, atol=0)
    assert (draw(5) - draw(6)).abs().max() > 1e-3


def test_the_loss_falls_on_one_batch_and_image_batches_switch_off_time():
    torch.manual_seed(0)
    model, schedule = Gen1UNet(Gen1Config.tiny(content_dim=D)), DiscreteSchedule.ldm()
    s, c = _cond()
    z0 = torch.randn(1, 1, 12, 8, 8).expand(2, 3, -1, -1, -1).clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = gen1_loss(model, z0, s, c, schedule, generator=torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    images = gen1_loss(model, z0, s, c, schedule, p_image=1.0, generator=torch.Generator())
    assert images.images and images.timesteps.shape == (6,)
    with pytest.raises(ValueError, match="p_drop"):
        gen1_loss(model, z0, s, c, schedule, p_drop=1.5)


def test_litgen1_step_and_errors():
    torch.manual_seed(0)
    system = LitGen1(Gen1UNet(Gen1Config.tiny(content_dim=D)), PixelFold(2), DiscreteSchedule.ldm())
    batch = {
        "video": torch.rand(2, 3, 3, 16, 16) * 2 - 1,
        "depth": _depth(),
        "content": torch.randn(2, D),
    }
    loss = system.training_step(batch, 0)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in system.model.unet.parameters() if p.requires_grad)
    with pytest.raises(KeyError, match="content"):
        system.training_step({"video": batch["video"], "depth": batch["depth"]}, 0)
    with pytest.raises(TypeError, match="Gen1UNet"):
        LitGen1(torch.nn.Linear(2, 2), PixelFold(2), DiscreteSchedule.ldm())


def test_p_drop_one_feeds_the_null_content_and_zero_keeps_it():
    model, schedule = _model(), DiscreteSchedule.ldm()
    s, c = _cond()
    z0 = torch.randn(2, 3, 12, 8, 8)
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[3].clone()))
    gen1_loss(model, z0, s, c, schedule, p_drop=1.0, generator=torch.Generator().manual_seed(0))
    gen1_loss(model, z0, s, c, schedule, p_drop=0.0, generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert seen[0].abs().max() == 0 and seen[0].shape == c.shape
    torch.testing.assert_close(seen[1], c, rtol=0, atol=0)


def test_litgen1_draws_t_s_uniformly_per_clip(monkeypatch):
    import esser_lab.gen1.training as training
    from esser_lab.gen1.method import Gen1Loss

    drawn = []

    def spy(depth, t_s, factor=1, max_level=None):
        assert max_level == system.model.config.max_t_s  # the loop's bound, not read back
        drawn.append(t_s.clone())
        return torch.zeros(depth.shape[0], depth.shape[1], 1, 2, 2)

    monkeypatch.setattr(training, "structure", spy)
    monkeypatch.setattr(
        training, "gen1_loss", lambda *a, **k: Gen1Loss(torch.zeros(()), torch.zeros(1), False)
    )
    system = LitGen1(Gen1UNet(Gen1Config.tiny(content_dim=D)), PixelFold(2), DiscreteSchedule.ldm())
    n = 4000
    batch = {
        "video": torch.zeros(n, 1, 3, 4, 4),
        "depth": torch.zeros(n, 1, 1, 4, 4),
        "content": torch.zeros(n, D),
    }
    system.training_step(batch, 0)
    t_s = drawn[0]
    top = system.model.config.max_t_s
    assert t_s.shape == (n,) and int(t_s.min()) == 0 and int(t_s.max()) == top
    counts = torch.bincount(t_s, minlength=top + 1).float()
    expected = n / (top + 1)
    assert ((counts - expected).abs() < 0.2 * expected).all()  # each level ≈ 1/(top + 1)


def test_image_batches_give_the_temporal_layers_no_gradient():
    model, schedule = _model(), DiscreteSchedule.ldm()
    model.train()
    s, c = _cond()
    out = gen1_loss(model, torch.randn(2, 3, 12, 8, 8), s, c, schedule, p_image=1.0)
    out.loss.backward()
    assert out.images
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.temporal_parameters())
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.unet.parameters())
    model.zero_grad()
    video = gen1_loss(model, torch.randn(2, 3, 12, 8, 8), s, c, schedule, p_image=0.0)
    video.loss.backward()  # the video batch does reach them (the control)
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.temporal_parameters())


def test_no_leak_between_clips_of_a_batch():
    model = _model()
    s, c = _cond()
    z = torch.randn(2, 3, 12, 8, 8, generator=torch.Generator().manual_seed(5))
    n = torch.tensor([300, 300])
    other = z.clone()
    other[1] = torch.randn(3, 12, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a, b = model(z, n, s, c), model(other, n, s, c)
    torch.testing.assert_close(a[0], b[0])  # clip 0 untouched by clip 1's input
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_a_temporal_conv_with_a_known_kernel_shifts_along_the_frames():
    from esser_lab.gen1.model import TemporalConv

    conv = TemporalConv(2, kernel=3)
    with torch.no_grad():  # output at frame k = the input at frame k − 1 (tap 0 of the kernel)
        conv.conv.weight.zero_()
        conv.conv.weight[:, :, 0] = torch.eye(2)
    x = torch.randn(2 * 4, 2, 3, 3)  # (b f) c h w with b = 2, f = 4
    out = conv(x, frames=4).view(2, 4, 2, 3, 3) - x.view(2, 4, 2, 3, 3)
    frames = x.view(2, 4, 2, 3, 3)
    torch.testing.assert_close(out[:, 1:], frames[:, :-1])
    assert out[:, 0].abs().max() == 0  # zero padding before the first frame
