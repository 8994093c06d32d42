"""bench/run_chapters.py: reading reproduction cards into the CSV rows, per seed."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("run_chapters", REPO / "bench/run_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_card(folder: Path, seed: int, ours: float) -> None:
    from esser_lab.cards import Claim, PaperPair

    folder.mkdir(parents=True, exist_ok=True)
    claim = Claim(chapter="04_rodi", key="transfer", claim="A beats B", metric="mse",
                  our_value=ours, baseline="B", baseline_value=0.115, why="the ablation",
                  better="lower", scale="tiny", seed=seed, seconds=50.0,
                  paper=PaperPair(0.0025, 0.007, "mse", "unverified"))  # fmt: skip
    (folder / "04_rodi.json").write_text(json.dumps([claim.to_dict()]))


def test_seed_rows_and_summary(bench, tmp_path):
    rows = []
    for seed, ours in enumerate((0.108, 0.104, 0.118, 0.11, 0.1)):
        write_card(tmp_path / str(seed), seed, ours)
        rows += bench.seed_rows(tmp_path / str(seed), "tiny", seed, "abc1234", "2026-12-04")
    assert [r["seed"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[2] == {"chapter": "04_rodi", "key": "transfer", "seed": "2",
                       "our_value": "0.118", "baseline_value": "0.115", "margin": "-0.003",
                       "holds": "false", "scale": "tiny", "commit": "abc1234",
                       "date": "2026-12-04"}  # fmt: skip
    (row,) = bench.claim_rows(tmp_path / "0", "tiny", "abc1234")
    assert list(row) == bench.CLAIM_COLUMNS
    assert row["paper_value"] == "0.0025" and row["paper_baseline_value"] == "0.007"
    assert row["baseline"] == "B" and row["commit"] == "abc1234" and row["holds"] == "true"
    (line,) = bench.seed_summary(rows)
    assert line.startswith("04_rodi [tiny] transfer: reproduced: held in 4 of 5 seeds")


def test_record_merges_rows_of_several_runs(bench, tmp_path):
    for seed in (0, 1):
        write_card(tmp_path / str(seed), seed, 0.1 + seed)
        claims = bench.claim_rows(tmp_path / str(seed), "tiny") if seed == 0 else None
        timing = {"chapter": "04_rodi", "scale": "tiny", "seconds": "50.0", "peak_mib": "900",
                  "date": "2026-12-04"} if seed == 0 else None  # fmt: skip
        rows = bench.seed_rows(tmp_path / str(seed), "tiny", seed)
        bench.record(tmp_path / "results", "04_rodi", "tiny", seed, rows, claims, timing)
    bench.record(tmp_path / "results", "04_rodi", "tiny", 1, rows, None, None)  # re-run: replaced
    seeds = bench.read_rows(tmp_path / "results" / "claims_seeds.csv", bench.SEED_COLUMNS)
    assert [(r["seed"], r["holds"]) for r in seeds] == [("0", "true"), ("1", "false")]
    claims = bench.read_rows(tmp_path / "results" / "claims.csv", bench.CLAIM_COLUMNS)
    timing = bench.read_rows(tmp_path / "results" / "chapters.csv", bench.CHAPTER_COLUMNS)
    assert len(claims) == 1 and len(timing) == 1


def test_chapter_sources_are_the_notebook_and_its_modules(bench):
    sources = bench.chapter_sources(REPO / "notebooks" / "10_taming.py")
    assert sources[0] == "notebooks/10_taming.py"
    assert "esser_lab/taming" in sources and "esser_lab/cards.py" not in sources
    assert all((REPO / path).exists() for path in sources)


def test_a_card_of_another_seed_is_flagged(bench, tmp_path, capsys):
    write_card(tmp_path, 0, 0.1)
    bench.seed_rows(tmp_path, "tiny", 5)
    assert "reports seed 0, ran 5" in capsys.readouterr().out


def test_seed_must_be_non_negative(bench):
    with pytest.raises(SystemExit):
        bench.main(["--seed", "-1", "01"])
