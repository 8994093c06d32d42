"""Chapter 7's exercise 2 checker: the share of samples wearing their input's colour."""

import torch

from esser_lab.invariances import (
    ConditionalTransformer,
    Greybox,
    InvariancesConfig,
    explain,
    foreground_stats,
    palette_rgb,
    reconstruct,
    shape_sprites,
    swap_truth,
)
from esser_lab.invariances.exercises import check_colour_kept, check_swap_mse, colour_kept, swap_mse
from esser_lab.metrics.classifiers import ExpertClassifier
from esser_lab.nn.autoencoder import DenseAutoencoder


def setting():
    """12 sprites as 4 images × 3 samples; each image's colour is that of its first sample."""
    sprites = shape_sprites(12, 16, generator=torch.Generator().manual_seed(0))
    samples = sprites.image.view(4, 3, *sprites.image.shape[1:])
    worn = sprites.colour[:, 0].view(4, 3)
    return samples, worn[:, 0], worn


def test_the_share_is_the_true_colours_share_and_the_solution_is_accepted():
    samples, colour, worn = setting()
    by_hand = (worn == colour[:, None]).float().mean().item()  # the sprites' true colours
    assert 1 / 3 <= by_hand < 1 and colour_kept(samples, colour) == by_hand
    nearest = torch.cdist(
        foreground_stats(samples.flatten(0, 1)).colour, palette_rgb(torch.arange(8))
    ).argmin(1)
    solution = (nearest == colour.repeat_interleave(3)).float().mean().item()
    assert check_colour_kept(samples, colour, solution)


def test_repeat_instead_of_repeat_interleave_is_refused_without_the_value():
    samples, colour, worn = setting()
    flat = worn.flatten()
    misaligned = (flat == colour.repeat(3)).float().mean().item()
    exact = colour_kept(samples, colour)
    assert (round(misaligned * 6), exact) == (1, 0.5)  # this seed's sprites, counted by hand
    wrong = check_colour_kept(samples, colour, misaligned)
    assert not wrong and "repeat_interleave" in str(wrong) and "0.5" not in str(wrong)
    count = check_colour_kept(samples, colour, exact * 12)
    assert not count and "too high" in str(count)
    assert "no answer yet" in str(check_colour_kept(samples, colour, None))


def swap_setting():
    torch.manual_seed(0)
    autoencoder = DenseAutoencoder(16, 3, 2, 16, 8).eval()
    with torch.no_grad():  # a decoder whose images depend visibly on the code (not ≈ 0)
        for name, p in autoencoder.named_parameters():
            if name.startswith(("dense_decode", "decoder", "image_layer")) and p.dim() > 1:
                p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    greybox = Greybox.from_expert(ExpertClassifier(4, width=8).eval(), split=8)
    transformer = ConditionalTransformer(InvariancesConfig.tiny())
    test = shape_sprites(12, 16, generator=torch.Generator().manual_seed(0))
    transformer(autoencoder.encode(test.image).mode(), greybox.encode(test.image))  # ActNorm
    transformer.eval()
    e = explain(transformer, autoencoder, greybox, test.image)
    return transformer, autoencoder, e, torch.arange(8).roll(1), test


def test_the_swap_mse_by_hand_is_accepted_and_a_miss_refused():
    transformer, autoencoder, e, partner, test = swap_setting()
    truth = swap_truth(test[:8], test[partner]).image
    with torch.no_grad():
        swapped = reconstruct(transformer, autoencoder, e.phi[partner], e.v[:8])
        reversed_ = reconstruct(transformer, autoencoder, e.phi[:8], e.v[partner])
    by_hand = (swapped - truth).pow(2).mean().item()
    args = (transformer, autoencoder, e, partner, test)
    assert abs(swap_mse(*args) - by_hand) < 1e-6 * by_hand
    assert check_swap_mse(*args, by_hand)
    # the pairing matters (an untrained decoder's swaps differ only slightly, but they differ)
    assert abs((reversed_ - truth).pow(2).mean().item() - swap_mse(*args)) > 1e-5
    for wrong in (check_swap_mse(*args, 1.1 * by_hand), check_swap_mse(*args, 0.9 * by_hand)):
        assert not wrong and "swap_truth(a, b)" in str(wrong) and f"{by_hand:.3f}" not in str(wrong)
    assert "no answer yet" in str(check_swap_mse(*args, None))
