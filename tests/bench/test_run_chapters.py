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


def write_card(folder: Path, seed: int, ours: float, holds: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    claim = {"chapter": "04_rodi", "claim": "A beats B", "metric": "mse", "paper_value": 0.0025,
             "paper_source": "unverified", "our_value": ours, "baseline_value": 0.115,
             "scale": "tiny", "seed": seed, "holds": holds, "criterion": "our < baseline",
             "seconds": 50.0}  # fmt: skip
    (folder / "04_rodi.json").write_text(json.dumps([claim]))


def test_seed_rows_and_summary(bench, tmp_path):
    rows = []
    for seed, ours in ((0, 0.108), (1, 0.104), (2, 0.118)):
        write_card(tmp_path / str(seed), seed, ours, ours < 0.115)
        rows += bench.seed_rows(tmp_path / str(seed), "tiny", seed)
    assert [r["seed"] for r in rows] == ["0", "1", "2"]
    assert rows[2] == {"chapter": "04_rodi", "claim": "A beats B", "seed": "2",
                       "our_value": "0.118", "baseline_value": "0.115", "scale": "tiny",
                       "holds": "false"}  # fmt: skip
    assert bench.claim_rows(tmp_path / "0", "tiny")[0]["paper_value"] == "0.0025"
    (line,) = bench.seed_summary(rows)
    assert line == "04_rodi [tiny] holds in 2/3 seeds (0,1,2): A beats B"


def test_a_card_of_another_seed_is_flagged(bench, tmp_path, capsys):
    write_card(tmp_path, 0, 0.1, True)
    bench.seed_rows(tmp_path, "tiny", 5)
    assert "reports seed 0, ran 5" in capsys.readouterr().out


def test_seed_must_be_non_negative(bench):
    with pytest.raises(SystemExit):
        bench.main(["--seed", "-1", "01"])
