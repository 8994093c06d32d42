"""Chapter 7's card: the keys it files, their directions, and that a winning baseline fails."""

import pytest

from esser_lab.cards import Card
from esser_lab.invariances.claims import KEYS, file_claims


def scores(**changes: float) -> dict[str, float]:
    base = {
        "colour R² v": 0.8,
        "colour R² phi": 0.1,
        "position R² v": 0.85,
        "position R² phi": 0.02,
        "consistency": 0.7,
        "swap keeps a": 0.25,
        "colour spread": 0.8,
    }
    return {**base, **changes}


def card(tmp_path, invariant: dict, biased: dict) -> Card:
    fresh = Card("07_invariances", "tiny", 0, 0.0, seeds_file=tmp_path / "none.csv")
    return file_claims(fresh, invariant, biased)


def test_files_every_claim_and_they_hold(tmp_path):
    filed = card(tmp_path, scores(), scores(**{"colour spread": 0.1, "colour R² v": 0.1}))
    assert tuple(c.key for c in filed.claims) == KEYS
    assert all(c.holds for c in filed.claims)
    kinds = {c.key: c.kind for c in filed.claims}
    assert kinds == {
        "colour-r2": "claim",
        "colour-r2-phi": "sanity",
        "position-r2": "sanity",
        "consistency": "claim",
        "colour-bias": "claim",
    }
    assert filed["colour-r2"].baseline_value == pytest.approx(0.1)  # the twin's v
    assert filed["colour-bias"].baseline_value == pytest.approx(0.1)
    assert filed["consistency"].margin == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("key", "invariant", "biased"),
    [
        ("colour-r2", {}, {"colour R² v": 0.9}),
        ("colour-r2-phi", {"colour R² phi": 0.9}, {}),
        ("position-r2", {"position R² v": 0.0}, {}),
        ("consistency", {"swap keeps a": 0.8}, {}),
        ("colour-bias", {}, {"colour spread": 0.9}),
    ],
)
def test_a_baseline_that_wins_makes_the_claim_fail(tmp_path, key, invariant, biased):
    twin = {"colour spread": 0.1, "colour R² v": 0.1, **biased}
    filed = card(tmp_path, scores(**invariant), scores(**twin))
    assert not filed[key].holds
    assert all(c.holds for c in filed.claims if c.key != key)


def test_missing_scores_are_named(tmp_path):
    partial = scores()
    del partial["swap keeps a"]
    with pytest.raises(KeyError, match="swap keeps a"):
        card(tmp_path, partial, scores())
