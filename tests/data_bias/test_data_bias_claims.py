"""Chapter 9's claims: the read-out of translations and the card filed from it."""

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.data import sprites
from esser_lab.data_bias import sample_domains
from esser_lab.data_bias.claims import (
    SCORE_KEYS,
    FactorChanges,
    bias_readout,
    factor_changes,
    file_claims,
    fit_judges,
    random_pairing_error,
)


def readout(**changes: float) -> dict[str, float]:
    base = dict.fromkeys(SCORE_KEYS, 0.3) | {"position error (px)": 0.3, "area": 0.2}
    return base | changes


def card(tmp_path) -> Card:
    return Card("09_data_bias", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")


def biased() -> tuple[dict, dict, dict]:
    control = readout()
    to_b = readout(red=0.5, **{"flip, rare in B": 0.5, "flip, common": 0.35})
    to_b["position error (px)"] = 0.4
    to_c = readout(area=0.3)
    return control, to_b, to_c


def changes(colour: float = 0.4, position: float = 0.1) -> FactorChanges:
    return FactorChanges(
        colour=torch.full((16,), colour),
        position=torch.full((16,), position),
        colour_spread=0.5,
        position_spread=3.0,
    )


def test_files_the_four_claims_and_a_sanity_row(tmp_path):
    filed = file_claims(card(tmp_path), *biased(), chance_position=3.0, changes_b=changes())
    keys = [c.key for c in filed.claims]
    assert keys == ["b-red", "b-rare-shapes", "b-position-kept", "c-size", "b-position-chance"]
    assert [c.kind for c in filed.claims].count("sanity") == 1
    assert filed["b-position-chance"].kind == "sanity"
    assert all(c.holds for c in filed.claims)
    assert filed["b-rare-shapes"].our_value == pytest.approx(0.2)
    assert filed["b-rare-shapes"].baseline_value == pytest.approx(0.05)
    # position kept: the normalised position change against the normalised colour change
    assert filed["b-position-kept"].our_value == pytest.approx(0.1)
    assert filed["b-position-kept"].baseline_value == pytest.approx(0.4)
    assert filed["b-position-kept"].kind == "claim"
    assert "no seeds recorded" in filed.text("b-red", holds="{seeds}", fails="x")


def test_a_control_that_wins_makes_the_claims_fail(tmp_path):
    control, to_b, to_c = biased()
    control |= {"red": 0.6, "area": 0.5, "flip, rare in B": 0.5}
    # the translation drags objects further than it recolours them
    filed = file_claims(
        card(tmp_path), control, to_b, to_c, chance_position=3.0, changes_b=changes(0.2, 0.5)
    )
    assert not any(filed[k].holds for k in ("b-red", "b-rare-shapes", "b-position-kept", "c-size"))
    assert "does *not*" in filed.text("c-size", holds="grows", fails="does *not* grow")
    # a translation that changes nothing keeps the position but shows no bias: no win either
    filed = file_claims(card(tmp_path), *biased(), chance_position=3.0, changes_b=changes(0.0, 0.0))
    assert not filed["b-position-kept"].holds


def test_missing_scores_raise(tmp_path):
    control, to_b, to_c = biased()
    del to_c["area"]
    with pytest.raises(KeyError, match="area"):
        file_claims(card(tmp_path), control, to_b, to_c, chance_position=3.0, changes_b=changes())


def render(colour: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    n = len(colour)
    return sprites.render(
        torch.zeros(n, 1, dtype=torch.long),  # circles
        colour[:, None],
        torch.zeros(n, 1, dtype=torch.long),
        position[:, None],
        torch.full((n, 1), 0.2),
        torch.zeros(n, 1),
        16,
        background=torch.tensor([-1.0, -1.0, -1.0]),
    ).image


def test_factor_changes_tell_a_recolouring_from_a_move():
    g = torch.Generator().manual_seed(0)
    n = 64
    colour = torch.randint(len(sprites.COLOURS), (n,), generator=g)
    position = 0.25 + 0.5 * torch.rand(n, 2, generator=g)
    control = render(colour, position)
    recoloured = render((colour + 1) % len(sprites.COLOURS), position)
    moved = render(colour, 1 - position)  # mirrored through the centre
    same = factor_changes(control, control)
    assert same.colour.abs().max() == 0 and same.position.abs().max() == 0
    assert same.position_spread > 2.0 and same.colour_spread > 0.3
    by_colour = factor_changes(recoloured, control)
    assert by_colour.position.mean() < 0.05 < 0.5 < by_colour.colour.mean()
    assert by_colour.colour_more() > 0.9 and by_colour.difference.mean() > 0.5
    by_position = factor_changes(moved, control)
    assert by_position.colour.mean() < 0.05 < 0.5 < by_position.position.mean()
    assert by_position.difference.mean() < -0.5
    assert by_position.standard_error() > 0
    with pytest.raises(ValueError, match="same shape"):
        factor_changes(moved[:3], control)
    with pytest.raises(ValueError, match="no spread"):
        factor_changes(control[:1].expand(4, -1, -1, -1), control[:1].expand(4, -1, -1, -1))


def test_readout_of_the_sources_themselves():
    source = sample_domains(
        torch.zeros(256, dtype=torch.long), 16, generator=torch.Generator().manual_seed(0)
    )
    judges = fit_judges(16, num=1024, shape_steps=150, colour_steps=60)
    scores = bias_readout(source.image, source, judges)
    assert set(scores) == set(SCORE_KEYS)
    assert scores["colour kept"] > 0.6
    assert scores["position error (px)"] < 0.5 < random_pairing_error(source)
    moved = torch.roll(source.image, shifts=3, dims=3)  # every object 3 px to the right
    assert bias_readout(moved, source, judges)["position error (px)"] > 2.0
    with pytest.raises(ValueError):
        bias_readout(source.image[:10], source, judges)
