"""The part-based method: equivariance bookkeeping, the objective, training, checkpoints."""

from dataclasses import replace

import pytest
import torch

from esser_lab.part_based import (
    PartBased,
    PartBasedConfig,
    coordinate_grid,
    equivariance_losses,
    make_views,
    part_based_loss,
    part_statistics,
    reconstruction_mask,
    sample_spatial_transform,
    source_moments,
    swap,
)
from esser_lab.training import load_checkpoint, save_checkpoint


def images(b=4, size=16, seed=0):
    from esser_lab.data import figures

    return figures.sample(b, size, generator=torch.Generator().manual_seed(seed)).image


def spline(n, seed, config=None):
    c = config or PartBasedConfig.tiny()
    return sample_spatial_transform(
        n,
        tps_scale=c.tps_scale,
        rotation_scale=c.rotation_scale,
        offset_scale=c.offset_scale,
        zoom=c.zoom,
        zoom_variation=c.zoom_variation,
        generator=torch.Generator().manual_seed(seed),
    )


def test_part_means_of_a_warped_dot_follow_the_point_transform():
    """Warp an image of one bright dot: its mean in the view is where ``to_view`` sends the dot,
    and ``source_moments`` maps it back to the dot (the equivariance bookkeeping)."""
    size = 64
    dots = torch.tensor([[[0.2, -0.3]], [[-0.25, 0.1]]])  # (b, 1, 2)
    grid = coordinate_grid(size)
    blob = torch.exp(-((grid[None] - dots[:, :, None]).pow(2).sum(-1)) / (2 * 0.03**2))
    t = spline(2, seed=3)
    warped = (t.warp(blob[:, None].expand(2, 3, size, size) * 2 - 1)[:, :1] + 1) / 2
    maps = warped / warped.sum((2, 3), keepdim=True)  # (b, 1, h, w) as a "part map"
    mu_view, _, _ = part_statistics(maps, 0.8)
    torch.testing.assert_close(mu_view, t.to_view(dots), atol=0.02, rtol=0)
    mu_source, _ = source_moments(maps, t)
    torch.testing.assert_close(mu_source, dots, atol=0.02, rtol=0)


def test_equivariance_loss_vanishes_for_consistent_views_only():
    mu = torch.randn(3, 5, 2)
    sigma = torch.eye(2).expand(3, 5, 2, 2)
    loss_mu, loss_sigma = equivariance_losses(torch.cat([mu, mu]), torch.cat([sigma, sigma]))
    assert loss_mu == 0 and loss_sigma < 1e-2
    loss_mu, _ = equivariance_losses(torch.cat([mu, mu + 0.1]), torch.cat([sigma, sigma]))
    torch.testing.assert_close(loss_mu, torch.tensor(0.01))


def test_views_pair_shape_and_appearance():
    config = PartBasedConfig.tiny()
    x = images()
    views = make_views(x, config, torch.Generator().manual_seed(0))
    assert views.inputs.shape == (8, 3, 16, 16) and views.targets.shape == (8, 3, 16, 16)
    # without colour jitter, each target is its own input: same spatial view, same colours
    still = replace(config, contrast=0.0, brightness=0.0, saturation=0.0, hue=0.0)
    views = make_views(x, still, torch.Generator().manual_seed(0))
    torch.testing.assert_close(views.inputs, views.targets)
    # and the two views of one image differ (two different warps)
    assert (views.inputs[:4] - views.inputs[4:]).abs().mean() > 0.05


def test_reconstruction_mask_is_normalised_and_local():
    mu = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    mask = reconstruction_mask(mu, 16, scale=0.1, threshold=0.2)
    torch.testing.assert_close(mask.sum(), torch.tensor(1.0))
    assert mask[0, :8, :8].sum() == 0  # far from the parts: ignored


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    config = PartBasedConfig.tiny()
    model = PartBased(config)
    x = images(8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        terms = part_based_loss(model, x, torch.Generator().manual_seed(0))  # the same views
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        losses.append(terms.loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_same_seed_same_result():
    config = PartBasedConfig.tiny()
    x = images()
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = PartBased(config)
        terms = part_based_loss(model, x, torch.Generator().manual_seed(5))
        results.append((terms.loss.detach(), terms.image))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_swap_and_errors():
    config = PartBasedConfig.tiny()
    model = PartBased(config).eval()
    x = images()
    assert swap(model, x, x.flip(0)).shape == x.shape
    with pytest.raises(ValueError, match="shape"):
        part_based_loss(model, x[:, :2], torch.Generator())
    with pytest.raises(TypeError, match="floating-point"):
        part_based_loss(model, (x > 0).long(), torch.Generator())


def test_checkpoint_round_trip(tmp_path):
    from dataclasses import asdict

    config = PartBasedConfig.tiny()
    torch.manual_seed(0)
    model = PartBased(config).eval()
    path = save_checkpoint(model, tmp_path / "part_based.safetensors", asdict(config))
    other = PartBased(config).eval()
    stored = load_checkpoint(other, path)
    assert PartBasedConfig.from_dict(stored) == config
    x = images()
    torch.testing.assert_close(other.encode(x).mu, model.encode(x).mu)
    with pytest.raises(ValueError, match="missing keys|shape mismatch"):
        load_checkpoint(PartBased(replace(config, n_features=4)), path)


def test_lightning_system_runs_a_few_steps():
    from esser_lab.data.modules import FiguresDataModule
    from esser_lab.part_based.training import LitPartBased
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer

    config = replace(PartBasedConfig.tiny(), batch_size=4)
    data = FiguresDataModule(16, 4, num_train=16, num_val=4)
    system = LitPartBased(config)
    trainer = make_trainer(profile("tiny"), 3, progress_every=100)
    trainer.fit(system, datamodule=data)
    assert trainer.global_step == 3
