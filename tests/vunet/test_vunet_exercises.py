"""Chapter 1's exercise 1 checker: the KL per latent scale, on a tiny VUNet."""

import torch

from esser_lab.data import figures
from esser_lab.vunet import VUNet, VUNetConfig, figure_boxes, normalize_parts
from esser_lab.vunet.exercises import check_kl_per_scale, kl_per_scale


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
