"""The shipped stages (CHAPTER.md, *shipped stages*) are the files their recorded re-make wrote.

``bench/results/shipped_stages.csv`` holds one row per file the package ships as weights: its
sha256 and size as ``python -m ...`` (the row's command) re-made it, bit for bit, on a CPU with
one thread. A file replaced without re-recording its row fails here.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "bench" / "results" / "shipped_stages.csv"
ROWS = list(csv.DictReader(TABLE.open()))


def test_every_shipped_weight_file_has_a_row() -> None:
    shipped = {
        str(p.relative_to(REPO)) for p in (REPO / "esser_lab").glob("*/weights/*.safetensors")
    }
    shipped.discard("esser_lab/metrics/weights/fid_features.safetensors")  # not a chapter stage
    assert shipped <= {row["file"] for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_shipped_file_matches_its_recorded_remake(row: dict) -> None:
    path = REPO / row["file"]
    data = path.read_bytes()
    assert len(data) == int(row["bytes"])
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    module = row["command"].removeprefix("python -m ")
    assert (REPO / (module.replace(".", "/") + ".py")).is_file()
