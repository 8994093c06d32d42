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
from esser_lab.cards import (
    Card,
    Claim,
    PaperPair,
    cards_dir,
    read_cards,
    read_seed_rows,
    seed_verdicts,
    verdict_label,
    write_card,
)

REPO = Path(__file__).resolve().parent.parent


def make_claim(**overrides) -> Claim:
    fields = dict(
        chapter="01_vunet",
        key="shape",
        claim="appearance transfer keeps the target shape",
        metric="shape error",
        our_value=0.2,
        baseline="the no-latent U-Net, trained the same way",
        baseline_value=0.4,
        why="the paper's ablation",
        better="lower",
        scale="tiny",
        seed=0,
        seconds=12.5,
        paper=PaperPair(0.5, 0.7, "shape error", "unverified"),
    )
    fields.update(overrides)
    return Claim(**fields)


@pytest.fixture
def cards_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cards"
    monkeypatch.setenv(cards.ENV_VAR, str(folder))
    return folder


# --------------------------------------------------------------------------------------------
# holds and margin: computed from the numbers and the claimed direction
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "better, our, baseline, expected, margin",
    [
        ("lower", 0.2, 0.4, True, 0.2),
        ("lower", 0.4, 0.2, False, -0.2),
        ("lower", 0.3, 0.3, False, 0.0),  # a tie is not an improvement
        ("higher", 0.9, 0.5, True, 0.4),
        ("higher", 0.1, 0.5, False, -0.4),
        ("lower", math.nan, 0.5, False, math.nan),  # NaN never holds
    ],
)
def test_holds_follows_the_direction(better, our, baseline, expected, margin) -> None:
    claim = make_claim(better=better, our_value=our, baseline_value=baseline)
    assert claim.holds is expected
    assert claim.to_dict()["holds"] is expected
    assert claim.margin == pytest.approx(margin, nan_ok=True)
    assert claim.criterion == ("our < baseline" if better == "lower" else "our > baseline")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"better": "smaller"}, "better must be 'lower' or 'higher'"),
        ({"kind": "extra"}, "kind must be 'claim' or 'sanity'"),
        ({"key": "two words"}, "short id without spaces"),
        ({"key": ""}, "short id without spaces"),
        ({"baseline": " "}, "name the baseline"),
        ({"why": ""}, "name the baseline and say why"),
    ],
)
def test_malformed_claims_are_refused(overrides, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_claim(**overrides)


@pytest.mark.parametrize("value", [None, "0.3", True])
def test_values_must_be_numbers(value) -> None:
    with pytest.raises(TypeError, match="baseline_value must be a number"):
        make_claim(baseline_value=value)


def test_paper_pair_needs_a_source() -> None:
    with pytest.raises(ValueError, match="needs its source"):
        PaperPair(4.98, 7.94, "rFID", "")
    assert PaperPair(4.98, 7.94, "rFID", "README").describe() == "rFID: 4.98 vs 7.94 (README)"
    assert PaperPair(0.786, None, "SSIM", "Table 1").describe() == "SSIM: 0.786 (Table 1)"


def test_the_card_records_the_paper_pair_and_the_baseline() -> None:
    record = make_claim().to_dict()
    assert record["paper_value"] == 0.5 and record["paper_baseline_value"] == 0.7
    assert record["paper_metric"] == "shape error" and record["paper_source"] == "unverified"
    assert record["baseline"].startswith("the no-latent U-Net") and record["margin"] > 0
    assert "paper" not in record
    assert make_claim(paper=None).to_dict()["paper_value"] is None


# --------------------------------------------------------------------------------------------
# Verdicts across seeds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "held, seeds, label",
    [
        (5, 5, "reproduced"),
        (4, 5, "reproduced"),
        (3, 5, "not settled"),
        (2, 5, "not settled"),
        (1, 5, "not reproduced"),
        (0, 5, "not reproduced"),
        (3, 3, "too few seeds"),
        (8, 10, "reproduced"),
        (7, 10, "not settled"),
    ],
)
def test_verdict_labels(held: int, seeds: int, label: str) -> None:
    assert verdict_label(held, seeds) == label


def test_verdict_needs_a_possible_count() -> None:
    with pytest.raises(ValueError, match="held must lie in 0..5"):
        verdict_label(6, 5)


def seeds_csv(path: Path, margins: list[float], key: str = "shape") -> Path:
    lines = ["chapter,key,seed,our_value,baseline_value,margin,holds,scale,commit,date"]
    for seed, margin in enumerate(margins):
        holds = "true" if margin > 0 else "false"
        lines.append(f"01_vunet,{key},{seed},0,0,{margin},{holds},tiny,abc123,2026-12-04")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_seed_verdicts_from_the_bench_file(tmp_path: Path) -> None:
    path = seeds_csv(tmp_path / "claims_seeds.csv", [0.1, 0.3, -0.1, 0.2, 0.1])
    verdict = seed_verdicts(read_seed_rows(path))[("01_vunet", "shape", "tiny")]
    assert (verdict.held, verdict.seeds, verdict.label) == (4, 5, "reproduced")
    assert verdict.margin_mean == pytest.approx(0.12)
    assert verdict.commits == ("abc123",)
    assert verdict.describe() == "reproduced: held in 4 of 5 seeds, margin 0.12 ± 0.15"


def test_a_seed_file_in_the_old_layout_is_named(tmp_path: Path) -> None:
    path = tmp_path / "claims_seeds.csv"
    path.write_text("chapter,claim,seed,our_value,baseline_value,scale,holds\n")
    with pytest.raises(ValueError, match="columns .*'key'.* are missing"):
        read_seed_rows(path)
    assert read_seed_rows(tmp_path / "absent.csv") == []


# --------------------------------------------------------------------------------------------
# Card: the chapter's helper
# --------------------------------------------------------------------------------------------


def make_card(tmp_path: Path, margins: list[float] | None = None) -> Card:
    seeds = tmp_path / "claims_seeds.csv"
    if margins is not None:
        seeds_csv(seeds, margins)
    card = Card("01_vunet", "tiny", 0, started=0.0, seeds_file=seeds)
    card.add(
        "shape",
        "transfer keeps the shape",
        metric="shape error",
        ours=0.123456,
        baseline="the U-Net",
        baseline_value=0.2,
        why="the paper's ablation",
        better="lower",
    )
    card.add(
        "chance",
        "better than chance",
        metric="accuracy",
        ours=0.3,
        baseline="chance",
        baseline_value=0.5,
        why="sanity",
        better="higher",
        kind="sanity",
    )
    return card


def test_card_rounds_and_files_claims(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    assert card["shape"].our_value == 0.1235 and card["shape"].holds
    assert not card["chance"].holds and card["chance"].kind == "sanity"
    with pytest.raises(ValueError, match="already on the card"):
        card.add("shape", "again", metric="m", ours=1, baseline="b", baseline_value=2,
                 why="w", better="lower")  # fmt: skip
    with pytest.raises(KeyError, match="no claim 'shapes'.*shape, chance"):
        card["shapes"]
    path = card.write(tmp_path / "cards")
    assert [c["key"] for c in json.loads(path.read_text())] == ["shape", "chance"]


def test_card_text_follows_the_run_and_the_seeds(tmp_path: Path) -> None:
    card = make_card(tmp_path, margins=[0.1, -0.1, 0.2, 0.1, -0.3])
    sentence = card.text("shape", holds="wins by {margin}: {seeds}", fails="loses ({ours})")
    assert sentence.startswith(
        "wins by 0.077: not settled: held in 3 of 5 seeds, margin 0.00 ± 0.20"
    )
    assert card.text("chance", holds="wins", fails="loses ({ours} vs {baseline})") == (
        "loses (0.3 vs 0.5)"
    )
    assert card.text("shape", holds="{extra}", fails="", extra="x") == "x"
    table = card.markdown()
    assert "✓ holds" in table and "✗ does not hold" in table and "*(sanity check)*" in table
    assert "not settled: held in 3 of 5 seeds" in table
    (tmp_path / "none").mkdir()
    assert "no seeds recorded at scale tiny" in make_card(tmp_path / "none").markdown()


# --------------------------------------------------------------------------------------------
# Where cards go
# --------------------------------------------------------------------------------------------


def test_card_written_under_env_folder(cards_env: Path) -> None:
    second = make_claim(key="second", claim="second", our_value=0.9)
    path = write_card("01_vunet", [make_claim(), second])
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
    second = [make_claim(), replace(make_claim(), key="a2", claim="a2", better="higher")]
    write_card("02_next", first)
    write_card("01_vunet", second)
    claims = read_cards()
    assert [c["chapter"] for c in claims] == ["01_vunet", "01_vunet", "02_next"]  # chapter order
    assert claims[:2] == [c.to_dict() for c in second]
    assert claims[2] == first[0].to_dict()
    assert read_cards(cards_env) == claims


def test_rewriting_a_card_replaces_it(cards_env: Path) -> None:
    write_card("01_vunet", [make_claim(), make_claim(key="old", claim="old")])
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
    assert line == (
        "holds: shape error: ours 0.2 vs 0.4 (the no-latent U-Net, trained the same way); "
        "paper shape error: 0.5 vs 0.7 (unverified)"
    )
    failing = make_claim(our_value=0.6, paper=None).summary()
    assert failing.startswith("does NOT hold:") and "paper" not in failing


def test_repeated_keys_cannot_be_written(cards_env: Path) -> None:
    with pytest.raises(ValueError, match="claim keys repeat"):
        write_card("01_vunet", [make_claim(), make_claim(claim="other")])


def test_a_record_with_other_numbers_for_this_seed_is_called_stale(tmp_path: Path) -> None:
    card = make_card(tmp_path, margins=[0.1, 0.2, 0.3, 0.1, 0.2])  # seed 0 recorded as 0 vs 0
    assert "the record predates this run's numbers" in card.seeds_phrase("shape")
    lines = (tmp_path / "claims_seeds.csv").read_text().splitlines()
    lines[1] = "01_vunet,shape,0,0.1235,0.2,0.1,true,tiny,abc123,2026-12-04"  # this run's numbers
    (tmp_path / "claims_seeds.csv").write_text("\n".join(lines) + "\n")
    assert card.seeds_phrase("shape") == "reproduced: held in 5 of 5 seeds, margin 0.180 ± 0.084"


def test_a_timed_claim_is_never_called_stale(tmp_path: Path) -> None:
    """Wall times differ from machine to machine: the record of a timed claim stays valid."""
    card = make_card(tmp_path, margins=[0.1, 0.2, 0.3, 0.1, 0.2])  # seed 0 recorded as 0 vs 0
    card.add(
        "speed",
        "sampling is faster",
        metric="seconds per sample",
        ours=0.002,
        baseline="pixel space",
        baseline_value=0.01,
        why="the paper's Fig. 7",
        better="lower",
        timed=True,
    )
    lines = (tmp_path / "claims_seeds.csv").read_text().splitlines()
    lines.append("01_vunet,speed,0,0.003,0.02,0.017,true,tiny,abc123,2026-12-04")
    (tmp_path / "claims_seeds.csv").write_text("\n".join(lines) + "\n")
    assert "predates" not in card.seeds_phrase("speed")
    assert "predates" in card.seeds_phrase("shape")  # an untimed claim still is


def test_long_runs_need_three_seeds_and_reach_the_text(tmp_path: Path) -> None:
    assert verdict_label(3, 3, minimum=3) == "reproduced"
    assert verdict_label(2, 3, minimum=3) == "not settled"
    assert verdict_label(0, 3, minimum=3) == "not reproduced"
    card = make_card(tmp_path, margins=[-0.1, -0.1, 0.2, -0.1, -0.3])
    assert "no longer run recorded" in card.text("shape", holds="{long}", fails="")
    card.long_file = seeds_csv(tmp_path / "claims_long.csv", [0.1, 0.2, 0.3])
    assert card.long_run("shape").label == "reproduced"
    text = card.text("shape", holds="{seeds}; {long}", fails="")
    assert text.startswith("not reproduced: held in 1 of 5 seeds")
    assert "at the long budget, reproduced: held in 3 of 3 seeds" in text
    assert "at the long budget, reproduced" in card.markdown()
    # a claim only the long budget measures: quoted by name, typos on the card still raise
    with pytest.raises(KeyError, match="long-shape"):
        card.long_run("long-shape")
    assert "no longer run recorded" in card.long_phrase("long-shape", long_only=True)
    card.long_file = seeds_csv(tmp_path / "claims_long.csv", [0.1, -0.2, 0.3], key="long-shape")
    assert card.long_phrase("long-shape", long_only=True).startswith(
        "at the long budget, not settled: held in 2 of 3 seeds"
    )
