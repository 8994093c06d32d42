"""Chapter 2's claims (``esser_lab.part_based.claims``): the scores and the card they file."""

import time

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import figures
from esser_lab.nn import placement
from esser_lab.part_based import PartBased, PartBasedConfig, sample_spatial_transform
from esser_lab.part_based.claims import (
    PartScores,
    file_claims,
    keypoint_motion,
    mean_pose_error,
    part_scores,
)


def card(tmp_path) -> Card:
    return Card("02_part_based", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "no.csv")


def test_part_scores_of_an_untrained_model():
    torch.manual_seed(0)
    config = PartBasedConfig.tiny()
    fit_set = figures.sample(64, 16, generator=torch.Generator().manual_seed(0))
    test = figures.sample(16, 16, generator=torch.Generator().manual_seed(1))
    warp = warps(16, config, seed=2)
    scores = part_scores(PartBased(config), fit_set, test, warp)
    assert 0 < scores.landmarks < 100 and 0 <= scores.equivariance < 100 and scores.swap >= 0
    # untrained part maps are nearly uniform (extent ≈ 1) and their means hardly move
    assert 0.5 < scores.extent <= 1.01 and 0 <= scores.motion < keypoint_motion(test)
    assert 0 < scores.landmarks_fit < 100
    # an identity warp: the equivariance error of any model is zero up to float error
    identity = sample_spatial_transform(
        16, tps_scale=0.0, rotation_scale=0.0, offset_scale=0.0, zoom=1.0, zoom_variation=0.0,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert part_scores(PartBased(config), fit_set, test, identity).equivariance < 0.5
    with pytest.raises(ValueError, match="one warp per test figure"):
        part_scores(PartBased(config), fit_set, test, warps(8, config, seed=4))
    # the test figures' encoding handed in (the chapter has it already) gives the same scores
    model = PartBased(config).eval()
    with torch.no_grad():
        encoding = model.encode(test.image)
    assert part_scores(model, fit_set, test, warp, encoding=encoding) == part_scores(
        model, fit_set, test, warp
    )
    with pytest.raises(ValueError, match="encoding must be of the 16 test figures"):
        part_scores(model, fit_set, test, warp, encoding=model.encode(test.image[:8]))


def warps(n: int, c: PartBasedConfig, seed: int):
    return sample_spatial_transform(
        n, tps_scale=c.tps_scale, rotation_scale=c.rotation_scale, offset_scale=c.offset_scale,
        zoom=c.zoom, zoom_variation=c.zoom_variation, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def test_mean_pose_error_is_positive_and_zero_for_one_pose():
    fit_set = figures.sample(32, 16, generator=torch.Generator().manual_seed(0))
    assert mean_pose_error(fit_set, fit_set) > 0
    assert mean_pose_error(fit_set[:1], fit_set[:1]) == pytest.approx(0.0, abs=1e-9)


def test_file_claims_compares_with_the_ablation(tmp_path):
    full = PartScores(landmarks=5.0, equivariance=2.0, swap=0.30)
    ablation = PartScores(landmarks=4.0, equivariance=4.0, swap=0.35)
    untrained = PartScores(landmarks=9.0, equivariance=1.0, swap=0.4)
    filed = file_claims(card(tmp_path), full, ablation, untrained, mean_pose=10.0)
    keys = [c.key for c in filed.claims]
    assert keys == ["landmarks", "equivariance", "swap", "landmarks-untrained",
                    "landmarks-mean-pose"]  # fmt: skip
    assert all(c.better == "lower" for c in filed.claims)
    # lower is better: the ablation's lower landmark error makes that claim fail
    assert not filed["landmarks"].holds
    assert filed["equivariance"].holds and filed["swap"].holds
    assert [c.kind for c in filed.claims[3:]] == ["sanity", "sanity"]
    assert filed["landmarks"].paper.source.endswith("(unverified)")
    assert filed["landmarks"].paper.better == "lower"
    assert "512 held-out figures" in filed["landmarks"].metric
    smaller = file_claims(card(tmp_path), full, ablation, untrained, 10.0, num_test=256)
    assert "256 held-out figures" in smaller["landmarks"].metric


def test_chunked_evaluation_equals_one_pass_and_is_one_pass_at_tiny(monkeypatch):
    """Evaluation sets are encoded/decoded a chunk at a time beyond tiny (memory at small)."""
    import torch

    from esser_lab.part_based import PartBased, PartBasedConfig

    model = PartBased(PartBasedConfig.tiny()).eval()
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    whole = model.encode(images)
    monkeypatch.setattr(placement, "EVAL_PIXELS_PER_PASS", 2 * 16 * 16)  # chunks of two
    calls = []
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda x: calls.append(len(x)) or real(x))
    chunked = model.encode_in_chunks(images)
    assert calls == [2, 2, 2]
    for name in ("mu", "sigma", "L_inv", "features", "part_maps"):
        assert torch.allclose(getattr(chunked, name), getattr(whole, name), atol=1e-5), name
    decoded = model.decode_in_chunks(whole.mu, whole.L_inv, whole.features)
    assert torch.allclose(decoded, model.decoder(whole.mu, whole.L_inv, whole.features), atol=1e-5)
    monkeypatch.undo()
    assert placement.EVAL_PIXELS_PER_PASS // (16 * 16) >= 2048  # tiny's sets: a single pass
