"""Run one chapter as a plain Python script and report its wall time and peak GPU memory.

For a GPU machine without Jupyter (the lent device, a bare cloud box): the jupytext percent file
*is* a Python script, so ``runpy`` executes it top to bottom in ``notebooks/``, with matplotlib's
non-interactive backend; ``display`` prints. The last line of the output is a JSON record::

    python bench/chapter_script.py 01      # ESSER_LAB_* settings from the environment

The book itself always executes chapters through a kernel (book/_ext/execute.py, bench/
run_chapters.py); this is the check that the same cells train and evaluate on a GPU.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/chapter_script.py NN", file=sys.stderr)
        return 2
    matches = sorted((ROOT / "notebooks").glob(f"{argv[0]}_*.py"))
    if len(matches) != 1:
        print(f"no single chapter numbered {argv[0]!r} in notebooks/", file=sys.stderr)
        return 2
    path = matches[0]
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))
    start, status, error = time.perf_counter(), 0, ""
    try:
        runpy.run_path(str(path), run_name="__main__")
    except BaseException as exc:  # noqa: BLE001  (report any failure, then exit non-zero)
        traceback.print_exc()
        status, error = 1, f"{type(exc).__name__}: {exc}"[:300]
    seconds = time.perf_counter() - start
    import torch

    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    record = {
        "chapter": path.stem,
        "scale": os.environ.get("ESSER_LAB_SCALE", ""),
        "max_steps": os.environ.get("ESSER_LAB_MAX_STEPS", ""),
        "max_samples": os.environ.get("ESSER_LAB_MAX_SAMPLES", ""),
        "seconds": round(seconds, 1),
        "peak_gpu_gib": round(peak, 2),
        "status": "ok" if status == 0 else "failed",
        "error": error,
    }
    print("RESULT " + json.dumps(record), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
