"""Chapter 1's exercise 1 checker: the KL per latent scale, on a tiny VUNet."""

import torch

from esser_lab.data import figures
from esser_lab.vunet import VUNet, VUNetConfig, figure_boxes, normalize_parts
from esser_lab.vunet.exercises import check_kl_per_scale, check_torso_spread, kl_per_scale


def tiny_output():
    torch.manual_seed(0)
    config = VUNetConfig.tiny()
    model = VUNet(config).eval()
    f = figures.sample(8, config.image_size, generator=torch.Generator().manual_seed(0))
    crops = normalize_parts(f.image, f.keypoints, figure_boxes(), config.crop_size)
    with torch.no_grad():
        return model(f.stickman, crops, sample=False)


def test_the_kl_per_scale_sums_to_the_loss_term_and_the_solution_is_accepted():
    out = tiny_output()
    assert len(kl_per_scale(out)) == len(out.posterior_means) >= 2
    # by hand: the scales' KLs add up to the VUNet's KL term
    total = sum(
        0.5 * (q - p).pow(2).flatten(1).sum(1).mean()
        for q, p in zip(out.posterior_means, out.prior_means, strict=True)
    )
    assert abs(sum(kl_per_scale(out)) - float(total)) < 1e-4 * float(total)
    solution = [
        0.5 * (q - p).pow(2).flatten(1).sum(1).mean().item()
        for q, p in zip(out.posterior_means, out.prior_means, strict=True)
    ]
    assert check_kl_per_scale(out, solution)


def test_typical_mistakes_are_refused_without_the_value():
    out = tiny_output()
    exact = kl_per_scale(out)
    no_half = check_kl_per_scale(out, [2 * k for k in exact])
    assert not no_half and "½" in str(no_half)
    summed = check_kl_per_scale(out, [8 * k for k in exact])  # summed over the 8 figures
    assert not summed and "average" in str(summed)
    assert not check_kl_per_scale(out, exact[:1])
    assert "no answer yet" in str(check_kl_per_scale(out, None))
    for verdict in (no_half, summed):
        assert all(f"{k:.1f}" not in str(verdict) for k in exact)


def test_the_torso_spread_by_hand_and_a_forgotten_mask_are_told_apart():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    samples = torch.rand(6, 3, 8, 8, generator=g) * 0.2  # a dull prior: a small spread
    torso = torch.zeros(6, 8, 8, dtype=torch.bool)
    torso[:, 2:6, 3:5] = True
    by_hand = [images[:, :, 2:6, 3:5].mean((2, 3)).std(0).mean().item(),
               samples[:, :, 2:6, 3:5].mean((2, 3)).std(0).mean().item()]  # fmt: skip
    assert check_torso_spread(samples, images, torso, (by_hand[1], by_hand[0]))
    whole = (samples.mean((2, 3)).std(0).mean().item(), images.mean((2, 3)).std(0).mean().item())
    wrong = check_torso_spread(samples, images, torso, whole)  # the whole image, not the torso
    assert not wrong and "torso" in str(wrong) and f"{by_hand[0]:.3f}" not in str(wrong)
    assert not check_torso_spread(samples, images, torso, by_hand)  # swapped
    assert "no answer yet" in str(check_torso_spread(samples, images, torso, None))
