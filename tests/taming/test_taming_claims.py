"""Chapter 10's claims: the right keys and directions, baselines that can win, real scores."""

import math

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.metrics.fid import load_feature_net
from esser_lab.taming import VQGANConfig, VQModel
from esser_lab.taming.claims import (
    FirstStageScores,
    SecondStageScores,
    evaluate_first_stage,
    file_claims,
    shuffled_labels,
    unigram_nll,
)

KEYS = [
    "codebook-psnr",
    "codebook-fid",
    "codebook-psnr-l1",
    "gan-sharpness",
    "gan-fid",
    "gpt-nll",
    "gpt-nll-uniform",
    "class-samples",
    "class-samples-chance",
]


def _scores(psnr: float, fid: float, hf: float) -> FirstStageScores:
    empty = torch.zeros(0)
    return FirstStageScores(empty, empty, psnr, fid, hf, used=4, perplexity=3.0)


def _stages(small_psnr=12.0, large_psnr=13.0, gan_fid=20.0, l1_fid=40.0, gan_hf=0.8, l1_hf=0.5):
    return {
        "VQGAN K=8": _scores(small_psnr, 30.0, 0.7),
        "L1 VQ-VAE K=8": _scores(14.0, 45.0, 0.5),
        "VQGAN K=64": _scores(large_psnr, gan_fid, gan_hf),
        "L1 VQ-VAE K=64": _scores(15.0, l1_fid, l1_hf),
    }


def _second(nll=1.5, unigram=3.0, samples=0.4, shuffled=0.1) -> SecondStageScores:
    return SecondStageScores(nll, unigram, 64, samples, shuffled, num_classes=8, num_samples=128)


def _card(**kwargs) -> Card:
    card = Card("10_taming", "tiny", 0, 0.0, seeds_file=None)
    second = kwargs.pop("second", _second())
    return file_claims(card, _stages(**kwargs), 8, 64, second)


def test_files_every_claim_with_its_kind():
    card = _card()
    assert [c.key for c in card.claims] == KEYS
    kinds = {c.key: c.kind for c in card.claims}
    assert kinds["gpt-nll-uniform"] == kinds["class-samples-chance"] == "sanity"
    assert sum(k == "claim" for k in kinds.values()) == 7
    assert all(c.holds for c in card.claims)
    assert card["codebook-psnr"].paper.value == 4.98
    assert card["codebook-psnr"].paper.baseline == 7.94
    assert card["gpt-nll-uniform"].baseline_value == pytest.approx(math.log(64), rel=1e-3)


def test_a_baseline_that_wins_makes_the_claim_fail():
    card = _card(small_psnr=14.0, large_psnr=13.0, gan_fid=50.0, gan_hf=0.3)
    assert not card["codebook-psnr"].holds
    assert not card["gan-fid"].holds
    assert not card["gan-sharpness"].holds  # |1 − 0.3| > |1 − 0.5|
    second = _card(second=_second(nll=3.5, samples=0.1, shuffled=0.2))
    assert not second["gpt-nll"].holds and not second["class-samples"].holds
    assert second["gpt-nll-uniform"].holds  # 3.5 < log 64 = 4.16
    assert not second["class-samples-chance"].holds


def test_missing_models_and_bad_sizes_fail_loudly():
    stages = _stages()
    del stages["L1 VQ-VAE K=64"]
    with pytest.raises(KeyError, match="L1 VQ-VAE K=64"):
        file_claims(Card("10_taming", "tiny", 0, 0.0), stages, 8, 64, _second())
    with pytest.raises(ValueError, match="small_k < large_k"):
        file_claims(Card("10_taming", "tiny", 0, 0.0), _stages(), 64, 8, _second())


def test_unigram_nll_is_the_entropy_of_the_frequencies():
    train = torch.tensor([[0, 0, 1, 1]])
    # counts 2+1, 2+1, 0+1 for 3 codes: p = 3/7, 3/7, 1/7
    assert unigram_nll(train, torch.tensor([[0, 1]]), 3) == pytest.approx(-math.log(3 / 7))
    assert unigram_nll(train, torch.tensor([[2]]), 3) == pytest.approx(-math.log(1 / 7))
    with pytest.raises(ValueError, match="test_codes"):
        unigram_nll(train, torch.tensor([[3]]), 3)


def test_shuffled_labels_keep_the_labels_and_lose_the_pairing():
    labels = torch.arange(8).repeat(64)
    shuffled = shuffled_labels(labels, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.sort().values, labels.sort().values)
    assert (shuffled == labels).float().mean() < 0.3


def test_evaluate_first_stage_on_a_real_model():
    torch.manual_seed(0)
    model = VQModel(VQGANConfig.tiny().with_codebook(8)).eval()
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    scores = evaluate_first_stage(model, images, load_feature_net())
    assert scores.x_hat.shape == images.shape and scores.indices.shape == (16, 8, 8)
    assert 1 <= scores.used <= 8 and 1.0 <= scores.perplexity <= 8.0 + 1e-4
    assert math.isfinite(scores.psnr) and math.isfinite(scores.fid) and scores.hf > 0
    assert scores.sharpness_error == pytest.approx(abs(1 - scores.hf))
