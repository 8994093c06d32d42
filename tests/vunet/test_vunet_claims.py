"""Chapter 1's claims: keys and directions, a baseline that wins, real scores on a real model."""

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import figures
from esser_lab.vunet import VUNet, VUNetConfig, figure_boxes, normalize_parts
from esser_lab.vunet.claims import (
    TransferScores,
    file_claims,
    random_colour_error,
    transfer_scores,
)


def _card(vunet: TransferScores, baseline: TransferScores, chance: float = 0.3) -> Card:
    return file_claims(Card("01_vunet", "tiny", 0, 0.0), vunet, baseline, chance)


def test_files_the_claims_in_the_right_direction():
    card = _card(TransferScores(0.1, 0.12, 0.3, 0.7), TransferScores(0.2, 0.25, 0.25, 0.5))
    assert [c.key for c in card.claims] == [
        "transfer-colour",
        "transfer-ssim",
        "transfer-colour-chance",
    ]
    assert all(c.holds for c in card.claims)
    assert card["transfer-colour-chance"].kind == "sanity"
    paper = card["transfer-ssim"].paper
    assert (paper.value, paper.baseline) == (0.786, 0.762) and "unverified" in paper.source


def test_a_baseline_that_wins_makes_the_claims_fail():
    card = _card(TransferScores(0.1, 0.3, 0.3, 0.4), TransferScores(0.2, 0.25, 0.25, 0.5), 0.2)
    assert not any(c.holds for c in card.claims)


def test_random_colour_error_is_about_a_third():
    # |U(-1,1) − c| / 2 averaged over c uniform in [-1, 1] is 1/3
    colours = torch.rand(4096, 4, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    error = random_colour_error(colours, torch.Generator().manual_seed(1))
    assert error == pytest.approx(1 / 3, abs=0.01)


def test_transfer_scores_on_a_real_untrained_model():
    config = VUNetConfig.tiny()
    test = figures.sample(8, config.image_size, generator=torch.Generator().manual_seed(0))
    crops = normalize_parts(test.image, test.keypoints, figure_boxes(), config.crop_size)
    torch.manual_seed(0)
    model = VUNet(config).eval()
    pose_of = torch.roll(torch.arange(8), -1)
    scores = transfer_scores(model, test, crops, pose_of)
    assert 0 <= scores.transfer <= 1 and 0 <= scores.reconstruction <= 1
    assert -1 <= scores.ssim <= 1
    with pytest.raises(ValueError, match="pose_of"):
        transfer_scores(model, test, crops, pose_of[:4])


def test_the_metric_names_the_test_set_size():
    vunet, baseline = TransferScores(0.1, 0.12, 0.3, 0.7), TransferScores(0.2, 0.25, 0.25, 0.5)
    assert "512 held-out figures" in _card(vunet, baseline)["transfer-colour"].metric
    card = file_claims(Card("01_vunet", "small", 0, 0.0), vunet, baseline, 0.3, num_test=256)
    assert "256 held-out figures" in card["transfer-colour"].metric
    assert "256 held-out figures" in card["transfer-ssim"].metric


def test_paired_baseline_reads_the_source_image_and_trains_on_pairs():
    from esser_lab.vunet.claims import paired_transfer_scores
    from esser_lab.vunet.training import LitVUNet

    config = VUNetConfig.tiny()
    paired = config.paired_baseline()
    assert paired.num_latent_scales == 0
    assert paired.shape_channels == config.shape_channels + config.image_channels
    test = figures.sample(8, config.image_size, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = VUNet(paired).eval()
    pose_of = torch.roll(torch.arange(8), -1)
    scores = paired_transfer_scores(model, test, pose_of)
    assert 0 <= scores.transfer <= 1 and -1 <= scores.ssim <= 1
    with pytest.raises(ValueError, match="shape_channels must be"):
        paired_transfer_scores(VUNet(config.without_appearance()), test, pose_of)
    # the training input: [ŷ, the same figure in the next figure's pose]
    system = LitVUNet(paired, figure_boxes(), paired=True)
    batch = test.to_dict()
    shape = system.shape_input(batch)
    assert shape.shape == (8, paired.shape_channels, config.image_size, config.image_size)
    truth = figures.render(test.keypoints.roll(1, 0), test.appearance, config.image_size)
    torch.testing.assert_close(shape[:, config.shape_channels :], truth.image)
    torch.testing.assert_close(shape[:, : config.shape_channels], test.stickman)
    assert not torch.equal(truth.image, test.image)  # another pose, not a copy
    loss = system.training_step(batch, 0)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="paired_baseline"):
        LitVUNet(config, figure_boxes(), paired=True)
