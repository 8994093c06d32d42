"""Chapter 4's claims: every model scored on the same triplets, and the card filed from it."""

from dataclasses import replace

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.rodi import RoDi, RoDiConfig, transfer_triplets
from esser_lab.rodi.claims import MODEL_NAMES, SCORE_KEYS, file_claims, score_models


def scores(**changes: dict[str, float]) -> dict[str, dict[str, float]]:
    base = {
        "RoDi": {"transfer": 0.10, "reconstruction": 0.07, "leak": 0.03},
        "MIMin": {"transfer": 0.12, "reconstruction": 0.11, "leak": 0.01},
        "AE": {"transfer": 0.13, "reconstruction": 0.06, "leak": 0.07},
        "VAE": {"transfer": 0.11, "reconstruction": 0.11, "leak": 0.00},
    }
    return {name: base[name] | changes.get(name, {}) for name in base}


def card(tmp_path) -> Card:
    return Card("04_rodi", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")


def test_files_the_paper_comparisons(tmp_path):
    filed = file_claims(card(tmp_path), scores())
    assert [c.key for c in filed.claims] == [
        "transfer-vs-mimin",
        "transfer-vs-vae",
        "transfer-vs-ae",
        "leak-vs-ae",
        "reconstruction-vs-vae",
    ]
    assert all(c.holds and c.kind == "claim" and c.better == "lower" for c in filed.claims)
    assert filed["transfer-vs-mimin"].baseline_value == 0.12
    assert filed["transfer-vs-mimin"].margin == pytest.approx(0.02)
    paper = filed["transfer-vs-mimin"].paper
    assert paper.value < paper.baseline and "unverified" in paper.source
    assert filed["leak-vs-ae"].paper is None


def test_a_baseline_that_wins_makes_its_claim_fail(tmp_path):
    filed = file_claims(
        card(tmp_path),
        scores(MIMin={"transfer": 0.09}, AE={"leak": 0.02}, VAE={"reconstruction": 0.05}),
    )
    failed = {c.key for c in filed.claims if not c.holds}
    assert failed == {"transfer-vs-mimin", "leak-vs-ae", "reconstruction-vs-vae"}
    text = filed.text("transfer-vs-mimin", holds="wins", fails="loses {ours} vs {baseline}")
    assert text == "loses 0.1 vs 0.09"


def test_every_model_is_needed(tmp_path):
    partial = scores()
    del partial["MIMin"]
    with pytest.raises(KeyError, match="MIMin"):
        file_claims(card(tmp_path), partial)


def test_score_models_scores_each_model_on_the_same_triplets():
    config = replace(RoDiConfig.tiny(), encoder_blocks=1, decoder_blocks=1)
    torch.manual_seed(0)
    models = {name: RoDi(config).eval() for name in MODEL_NAMES}
    test = transfer_triplets(6, config.image_size, seed=1)
    scored = score_models(models, test)
    assert list(scored) == list(MODEL_NAMES)
    for values in scored.values():
        assert set(SCORE_KEYS) <= set(values)
        assert values["leak"] == pytest.approx(values["transfer"] - values["reconstruction"])
    assert scored["RoDi"] != scored["MIMin"]  # different initial weights, different scores


def test_the_metric_names_the_test_set_size_and_triplets_move_to_a_device(tmp_path):
    assert "512 held-out triplets" in file_claims(card(tmp_path), scores()).claims[0].metric
    filed = file_claims(card(tmp_path), scores(), num_test=256)
    assert "256 held-out triplets" in filed.claims[0].metric
    moved = transfer_triplets(3, 8, seed=1).to("meta")  # meta stands in for a GPU
    assert {f.image.device.type for f in (moved.x, moved.x_view, moved.y, moved.y_view)} == {"meta"}
    assert moved.truth.part_masks.device.type == "meta"


def test_the_baselines_name_the_gamma_rodi_starts_from(tmp_path):
    """Issue 11: MIMin and the VAE keep γ fixed where RoDi starts it, and the card says so."""
    filed = file_claims(card(tmp_path), scores(), gamma0=1.0)
    for key in ("transfer-vs-mimin", "transfer-vs-vae", "reconstruction-vs-vae"):
        assert "γ fixed at 1" in filed[key].baseline and "γ₀" in filed[key].baseline
    other = file_claims(card(tmp_path), scores(), gamma0=0.5)
    assert "γ fixed at 0.5" in other["transfer-vs-mimin"].baseline
