"""The source/camera-use diagnostic of chapter 12 (esser_lab.geofree.diagnostics)."""

import pytest
import torch
import torch.nn.functional as F

from esser_lab.cards import Card
from esser_lab.geofree.diagnostics import (
    SourceUse,
    conditional_nll,
    file_source_use,
    shared_codes,
    source_use_nll,
)
from esser_lab.geofree.method import geofree_loss
from esser_lab.geofree.model import CAMERA_KEYS, GeoFreeConfig, GeoTransformer, first_stage_config
from esser_lab.taming.model import VQModel


def _inputs(pairs, model):
    codes = [model.encode_to_z(x) for x in (pairs.source, pairs.target)]
    return *codes, pairs.camera


def test_conditional_nll_is_the_training_loss_in_eval_mode(model, pairs):
    source, target, camera = _inputs(pairs, model)
    model.train()
    with torch.no_grad():
        expected = float(geofree_loss(model.eval(), source, target, camera))
    model.train()
    got = conditional_nll(model, source, target, camera, batch_size=3)  # chunks of 3, 3, 2
    assert got == pytest.approx(expected, rel=1e-5)
    assert model.training  # the mode is restored


def test_a_camera_blind_model_shows_no_camera_gain(model, pairs):
    source, target, camera = _inputs(pairs, model)
    with torch.no_grad():
        model.emb_stage_model.fc.weight.zero_()  # every camera token is 0: the camera is unread
    use = source_use_nll(model, source, target, camera)
    assert use.camera_gain == 0.0
    assert use.source_gain != 0.0  # an untrained GPT still reacts to its source codes


def test_identical_sources_show_no_source_gain(model, pairs):
    source, target, camera = _inputs(pairs, model)
    same = source[:1].expand_as(source).clone()  # rolling the batch changes nothing
    use = source_use_nll(model, same, target, camera)
    assert use.source_gain == 0.0
    assert use.true == pytest.approx(conditional_nll(model, same, target, camera))


class _Copier(GeoTransformer):
    """Predicts target code i = source code (i + shift) mod N, shift = round(t_x): a model that
    reads both its source and its camera, exactly."""

    def forward(self, source_codes, target_codes, camera):
        shifts = camera["t"][:, 0].round().long()
        moved = torch.stack([s.roll(-int(k)) for s, k in zip(source_codes, shifts, strict=True)])
        return 20.0 * F.one_hot(moved, self.config.vocab_size).float()


def test_a_model_that_reads_source_and_camera_shows_both_gains(pairs):
    model = _Copier(GeoFreeConfig.tiny(), VQModel(first_stage_config("tiny")))
    n, b = model.config.num_codes, len(pairs)
    source = torch.randint(0, 128, (b, n), generator=torch.Generator().manual_seed(0))
    camera = dict(pairs.camera)
    camera["t"] = torch.zeros(b, 3)
    camera["t"][:, 0] = torch.arange(b) % 3  # neighbours always differ in their shift
    target = torch.stack([s.roll(-int(k)) for s, k in zip(source, camera["t"][:, 0], strict=True)])
    use = source_use_nll(model, source, target, camera)
    assert use.true == pytest.approx(0.0, abs=1e-6)  # it predicts every code exactly
    # a wrong code costs 20 nats: another source misses (almost) every code, another camera too
    assert use.source_gain > 15 and use.camera_gain > 15
    assert use.describe().count("barely") == 0


def test_bad_inputs_are_named(model, pairs):
    source, target, camera = _inputs(pairs, model)
    with pytest.raises(ValueError, match="≥ 2 pairs"):
        source_use_nll(model, source[:1], target[:1], {k: v[:1] for k, v in camera.items()})
    with pytest.raises(ValueError, match="one shape"):
        source_use_nll(model, source, target[:, :-1], camera)
    with pytest.raises(ValueError, match="keys"):
        source_use_nll(model, source, target, {"R": camera["R"]})
    with pytest.raises(ValueError, match="rows"):
        source_use_nll(model, source, target, {k: v[:2] for k, v in camera.items()})
    with pytest.raises(TypeError, match="GeoTransformer"):
        source_use_nll(object(), source, target, camera)
    assert set(camera) == set(CAMERA_KEYS)


def test_describe_and_card_rows(tmp_path):
    blind = SourceUse(true=3.9, other_source=4.3, other_camera=3.901, vocab_size=128)
    text = blind.describe()
    assert "3.9000" in text and "4.3000" in text and "3.9010" in text and "4.8520" in text
    assert "barely the camera (0.0010 nats" in text and "(0.4000 nats" in text
    assert "about 49 codes" in text
    assert "and the camera (0.2000" in SourceUse(3.9, 4.3, 4.1, 128).describe()
    assert "does not read its source" in SourceUse(3.9, 3.8, 3.9, 128).describe()
    card = Card("12_geofree", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")
    file_source_use(card, blind)
    rows = {c.key: c for c in card.claims}
    assert set(rows) == {"source-use", "camera-use"}
    assert all(c.kind == "sanity" for c in rows.values()) and rows["source-use"].holds
    # a gain of 0.001 nats is below the 0.01 that counts as reading the camera
    assert not rows["camera-use"].holds
    assert rows["camera-use"].margin == pytest.approx(0.001 - 0.01)
    reads = Card("12_geofree", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")
    file_source_use(reads, SourceUse(3.9, 4.3, 4.1, 128))
    assert reads["camera-use"].holds
    file_source_use(
        card2 := Card("12_geofree", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv"),
        SourceUse(3.9, 3.8, 3.9, 128),
    )
    assert [c.holds for c in card2.claims] == [False, False]
    with pytest.raises(TypeError, match="SourceUse"):
        file_source_use(card, (3.9, 4.3))


def test_shared_codes_counts_target_codes_found_anywhere_in_their_own_source():
    source = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    target = torch.tensor([[4, 3, 9, 9], [1, 2, 3, 5]])  # 2 of 4; 1 of 4 (1, 2, 3 are pair 0's)
    assert shared_codes(source, target) == pytest.approx(3 / 8)
    assert shared_codes(source, source.flip(1)) == 1.0
    with pytest.raises(ValueError, match="one shape"):
        shared_codes(source, target[:, :3])
    with pytest.raises(ValueError, match="at least one pair"):
        shared_codes(source[:0], target[:0])
