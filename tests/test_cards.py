"""Tests of ``esser_lab.cards``: reproduction cards, where they go and how they are read back."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from esser_lab import cards
from esser_lab.cards import Claim, cards_dir, read_cards, write_card

REPO = Path(__file__).resolve().parent.parent


def make_claim(**overrides) -> Claim:
    fields = dict(
        chapter="01_vunet",
        claim="appearance transfer keeps the target shape",
        metric="shape error",
        paper_value=0.5,
        paper_source="unverified",
        our_value=0.2,
        baseline_value=0.4,
        criterion="our < baseline",
        scale="tiny",
        seed=0,
        seconds=12.5,
    )
    fields.update(overrides)
    return Claim(**fields)


@pytest.fixture
def cards_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cards"
    monkeypatch.setenv(cards.ENV_VAR, str(folder))
    return folder


# --------------------------------------------------------------------------------------------
# holds: computed from the criterion
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "criterion, our, baseline, paper, expected",
    [
        ("our < baseline", 0.2, 0.4, 9.0, True),
        ("our < baseline", 0.4, 0.2, 9.0, False),
        ("our < baseline", 0.3, 0.3, 9.0, False),  # a tie is not an improvement
        ("our > baseline", 0.9, 0.5, 0.0, True),
        ("our > baseline", 0.1, 0.5, 0.0, False),
        ("our < paper", 1.0, None, 2.0, True),
        ("our < paper", 3.0, None, 2.0, False),
        ("our > paper", 3.0, None, 2.0, True),
        ("our > paper", 1.0, None, 2.0, False),
    ],
)
def test_holds_follows_the_criterion(criterion, our, baseline, paper, expected) -> None:
    claim = make_claim(
        criterion=criterion, our_value=our, baseline_value=baseline, paper_value=paper
    )
    assert claim.holds is expected
    assert claim.to_dict()["holds"] is expected


def test_paper_comparison_ignores_the_baseline() -> None:
    claim = make_claim(criterion="our < paper", our_value=1.0, paper_value=2.0, baseline_value=0.5)
    assert claim.holds is True


def test_unknown_criterion_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown criterion 'our <= baseline'"):
        make_claim(criterion="our <= baseline").holds  # noqa: B018


@pytest.mark.parametrize(
    "overrides, missing",
    [
        ({"criterion": "our < baseline", "baseline_value": None}, "baseline"),
        ({"criterion": "our < baseline", "baseline_value": math.nan}, "baseline"),
        ({"criterion": "our > paper", "paper_value": "n/a"}, "paper"),
        ({"criterion": "our > paper", "paper_value": None}, "paper"),
    ],
)
def test_criterion_needs_a_number_to_compare_with(overrides, missing: str) -> None:
    with pytest.raises(ValueError, match=f"needs a numeric {missing}"):
        make_claim(**overrides).holds  # noqa: B018


def test_unknown_criterion_cannot_be_written(cards_env: Path) -> None:
    with pytest.raises(ValueError, match="unknown criterion"):
        write_card("01_vunet", [make_claim(criterion="looks good")])
    assert not (cards_env / "01_vunet.json").exists()


# --------------------------------------------------------------------------------------------
# Where cards go
# --------------------------------------------------------------------------------------------


def test_card_written_under_env_folder(cards_env: Path) -> None:
    path = write_card("01_vunet", [make_claim(), make_claim(claim="second", our_value=0.9)])
    assert path == cards_env / "01_vunet.json"
    data = json.loads(path.read_text())
    assert [c["claim"] for c in data] == ["appearance transfer keeps the target shape", "second"]
    assert [c["holds"] for c in data] == [True, False]
    assert data[0]["criterion"] == "our < baseline"
    assert data[0]["scale"] == "tiny"


def test_explicit_directory_wins_over_env(cards_env: Path, tmp_path: Path) -> None:
    path = write_card("01_vunet", [make_claim()], directory=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "01_vunet.json"
    assert not cards_env.exists()


def test_env_folder_is_resolved_to_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cards.ENV_VAR, "relative/cards")
    assert cards_dir() == tmp_path / "relative" / "cards"


def test_default_folder_is_build_cards_in_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cards.ENV_VAR, raising=False)
    assert cards_dir() == REPO / "_build" / "cards"
    monkeypatch.chdir(tmp_path)  # e.g. a kernel running in notebooks/
    assert cards_dir() == REPO / "_build" / "cards"
    monkeypatch.setenv(cards.ENV_VAR, "")  # an empty variable means unset
    assert cards_dir() == REPO / "_build" / "cards"


def test_default_folder_from_a_notebook_working_directory(tmp_path: Path) -> None:
    # A fresh interpreter started elsewhere (as a kernel is, in notebooks/) finds the same folder.
    env = {k: v for k, v in os.environ.items() if k != cards.ENV_VAR}
    result = subprocess.run(
        [sys.executable, "-c", "from esser_lab.cards import cards_dir; print(cards_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()) == REPO / "_build" / "cards"


def test_outside_a_checkout_cards_go_to_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cards.ENV_VAR, raising=False)
    monkeypatch.setattr(cards, "repository_root", lambda: None)
    assert cards_dir() == Path.home() / "esser_lab" / "cards"


# --------------------------------------------------------------------------------------------
# Writing and reading back
# --------------------------------------------------------------------------------------------


def test_read_cards_round_trip(cards_env: Path) -> None:
    first = [make_claim(chapter="02_next", claim="b", seconds=1.0)]
    second = [make_claim(), replace(make_claim(), claim="a2", criterion="our > baseline")]
    write_card("02_next", first)
    write_card("01_vunet", second)
    claims = read_cards()
    assert [c["chapter"] for c in claims] == ["01_vunet", "01_vunet", "02_next"]  # chapter order
    assert claims[:2] == [c.to_dict() for c in second]
    assert claims[2] == first[0].to_dict()
    assert read_cards(cards_env) == claims


def test_rewriting_a_card_replaces_it(cards_env: Path) -> None:
    write_card("01_vunet", [make_claim(), make_claim(claim="old")])
    write_card("01_vunet", [make_claim(our_value=0.1)])
    claims = read_cards()
    assert len(claims) == 1 and claims[0]["our_value"] == 0.1


def test_read_cards_of_an_empty_folder(tmp_path: Path) -> None:
    assert read_cards(tmp_path) == []


def test_card_needs_claims_of_its_own_chapter(cards_env: Path) -> None:
    with pytest.raises(ValueError, match="at least one claim"):
        write_card("01_vunet", [])
    with pytest.raises(ValueError, match="claim for chapter '02_next' in the card of '01_vunet'"):
        write_card("01_vunet", [make_claim(chapter="02_next")])


def test_bad_card_file_is_an_error(cards_env: Path) -> None:
    cards_env.mkdir(parents=True)
    (cards_env / "01_vunet.json").write_text(json.dumps({"claim": "not a list"}))
    with pytest.raises(ValueError, match=r"01_vunet\.json: a card must be a JSON list"):
        read_cards()


def test_malformed_json_is_an_error(cards_env: Path) -> None:
    cards_env.mkdir(parents=True)
    (cards_env / "01_vunet.json").write_text("[{not json")
    with pytest.raises(json.JSONDecodeError):
        read_cards()


def test_summary_line_states_the_verdict_and_all_numbers() -> None:
    line = make_claim().summary()
    assert line == "holds: shape error: ours 0.2 vs baseline 0.4 (paper 0.5, unverified)"
    failing = make_claim(our_value=0.6, baseline_value=None, criterion="our < paper").summary()
    assert failing.startswith("does NOT hold:") and "vs baseline –" in failing
