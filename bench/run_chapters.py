"""Run every chapter at one scale and record its wall time, peak memory and reproduction card.

Usage (from the repository root, in the repository's virtual environment; ``make bench``)::

    python bench/run_chapters.py                   # every notebooks/NN_*.py at ESSER_LAB_SCALE=tiny
    python bench/run_chapters.py 01 03_taming      # chapters chosen by number, name or path
    python bench/run_chapters.py --scale small     # another scale profile (small/full need a GPU)
    python bench/run_chapters.py --seed 1 --seed 2 # the claims again with other training seeds

Each chapter runs in its own child process, which reads the jupytext file and executes it with
nbclient in a fresh kernel of this environment, in ``notebooks/`` as its working directory (as
``jupyter-book build`` does). ``seconds`` is the wall time of that child: interpreter start,
kernel start, every cell, kernel shutdown. ``peak_mib`` is the largest resident set of the child
and of the processes it waited for (the kernel), from ``os.wait4``'s ``ru_maxrss``. It is the peak
of the biggest single process, not a sum; the kernel is the biggest.

Results (one row per chapter and scale, replaced when re-run, sorted):

* ``bench/results/chapters.csv``: ``chapter,scale,seconds,peak_mib,date``
* ``bench/results/claims.csv``: every field of every claim of the reproduction cards each chapter
  writes (to ``_build/bench-cards/<scale>/<chapter>/`` through ``ESSER_LAB_CARDS``): its key, the
  metric, our value, the baseline and its value, the paper's comparable pair, its metric and
  source, the verdict, and the commit it ran on.
* ``bench/results/claims_seeds.csv``: the same claims per training seed (``ESSER_LAB_SEED``: the
  models' initial weights, noise and batch order change; the data and the evaluation stay fixed),
  with the margin (ours − baseline in the claimed direction) and the commit. Every run adds its
  seed's rows (seed 0 included); ``esser_lab.cards`` turns them into verdicts (reproduced when a
  claim holds in ≥ 4 of 5 seeds). Runs with a seed other than 0 record no timing and leave
  ``claims.csv`` alone; their executed notebooks and cards go to ``…/<scale>-seed<N>/``.

The commit is ``git rev-parse --short HEAD``, with ``-dirty`` appended when the chapter's sources
(its notebook and the esser_lab modules it imports, :func:`chapter_sources`) hold uncommitted
changes: the summary page flags such rows, and rows recorded before the last commit that changed
those sources, as stale.

A chapter that fails (a cell raises) is reported with its error and makes the script exit 1; the
other chapters still run and their rows are recorded. A failed chapter's old rows are kept.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
RESULTS = REPO / "bench" / "results"
CARDS_ROOT = REPO / "_build" / "bench-cards"
EXECUTED = REPO / "_build" / "bench-notebooks"
SCALES = ("tiny", "small", "full")
CHAPTER_COLUMNS = ["chapter", "scale", "seconds", "peak_mib", "date"]
CLAIM_COLUMNS = [
    "chapter",
    "key",
    "kind",
    "claim",
    "metric",
    "our_value",
    "baseline",
    "baseline_value",
    "better",
    "margin",
    "holds",
    "paper_value",
    "paper_baseline_value",
    "paper_metric",
    "paper_source",
    "scale",
    "commit",
]
SEED_COLUMNS = [
    "chapter",
    "key",
    "seed",
    "our_value",
    "baseline_value",
    "margin",
    "holds",
    "scale",
    "commit",
    "date",
]
CELL_TIMEOUT_S = 600  # as the book's execute.timeout in _config.yml


# --------------------------------------------------------------------------------------------
# Child: execute one notebook
# --------------------------------------------------------------------------------------------


def run_one(path: Path, executed: Path) -> int:
    """Execute ``path`` in a fresh kernel (the child process's job); 0 on success."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=notebook.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(path.parent)}},
    )
    status = 0
    try:
        client.execute()  # shuts the kernel down and reaps it, also after an error
    except CellExecutionError as error:
        print(f"\n{path.name}: a cell failed\n{error}", file=sys.stderr)
        status = 1
    finally:
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, executed)
    return status


# --------------------------------------------------------------------------------------------
# Parent: select, run and measure chapters, write the CSV files
# --------------------------------------------------------------------------------------------


def is_chapter(path: Path) -> bool:
    """A chapter: a jupytext percent ``.py`` file (with its YAML header) in ``notebooks/``."""
    if path.suffix != ".py" or not path.is_file():
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("# ---") and "jupytext:" in head


def all_chapters() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.py") if is_chapter(p))


def select_chapters(wanted: list[str]) -> list[Path]:
    chapters = all_chapters()
    if not wanted:
        return chapters
    chosen: list[Path] = []
    for name in wanted:
        stem = Path(name).stem
        matches = [p for p in chapters if p.stem == stem or p.stem.split("_", 1)[0] == stem]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in chapters) or "none"
            raise SystemExit(f"no single chapter matches {name!r} (chapters: {known})")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return sorted(chosen)


def measure(
    path: Path, scale: str, seed: int = 0, budget: str = "minute"
) -> tuple[int, float, float, Path]:
    """Run one chapter in a child process: (exit status, seconds, peak MiB, cards folder)."""
    folder = scale if seed == 0 else f"{scale}-seed{seed}"
    folder = folder if budget == "minute" else f"{folder}-{budget}"
    cards = CARDS_ROOT / folder / path.stem
    shutil.rmtree(cards, ignore_errors=True)  # only what this run writes is collected
    env = {**os.environ, "ESSER_LAB_SCALE": scale, "ESSER_LAB_CARDS": str(cards)}
    env["ESSER_LAB_SEED"] = str(seed)
    env["ESSER_LAB_BUDGET"] = budget
    executed = EXECUTED / folder / f"{path.stem}.ipynb"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-one", str(path), str(executed)]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    peak_mib = usage.ru_maxrss / 1024  # Linux: KiB; covers the child and its reaped kernel
    if sys.platform == "darwin":
        peak_mib = usage.ru_maxrss / 2**20  # macOS: bytes
    return child.returncode, seconds, peak_mib, cards


def read_rows(path: Path, columns: list[str]) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != columns:
            raise SystemExit(f"{path}: expected columns {columns}, found {reader.fieldnames}")
        return list(reader)


def write_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _scale_order(scale: str) -> int:
    return SCALES.index(scale) if scale in SCALES else len(SCALES)


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_cards(cards: Path, scale: str, seed: int = 0) -> list[dict]:
    """The claims of the cards in ``cards``, in the cards' order; a mismatch is warned about."""
    claims = []
    for card in sorted(cards.glob("*.json")):
        content = json.loads(card.read_text())
        if not isinstance(content, list):
            raise SystemExit(f"{card}: a card must be a JSON list of claims")
        for claim in content:
            if claim.get("scale") != scale:
                print(f"warning: {card.name} reports scale {claim.get('scale')!r}, ran {scale!r}")
            if claim.get("seed", 0) != seed:
                print(f"warning: {card.name} reports seed {claim.get('seed')!r}, ran {seed}")
            claims.append(claim)
    return claims


# Modules whose changes do not change a chapter's numbers (reporting, presets, plotting).
NOT_RESULTS = ("esser_lab.cards", "esser_lab.config", "esser_lab.viz")


def chapter_imports(path: Path) -> list[str]:
    """``esser_lab`` modules a chapter imports, in order of first appearance.

    ``from esser_lab import scale`` counts as ``esser_lab.scale``. The book's genealogy page
    (``book/_ext/esser_pages.py``) reads the chapters' building blocks through this too.
    """
    import ast

    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("esser_lab"):
            names = [node.module]
            if node.module == "esser_lab":
                names = [f"esser_lab.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("esser_lab")]
        modules += [name for name in names if name not in modules]
    return modules


def chapter_sources(path: Path) -> list[str]:
    """The files a chapter's numbers depend on: itself and the esser_lab modules it imports.

    A module is its file, a package its folder (``esser_lab.taming`` → ``esser_lab/taming``).
    Reporting modules (:data:`NOT_RESULTS`) are left out. Paths are relative to the repository.
    """
    sources = [str(path.relative_to(REPO))]
    for name in chapter_imports(path):
        if name == "esser_lab" or name.startswith(NOT_RESULTS):
            continue
        base = REPO / Path(*name.split("."))
        found = base if base.is_dir() else base.with_suffix(".py")
        if found.exists() and str(found.relative_to(REPO)) not in sources:
            sources.append(str(found.relative_to(REPO)))
    return sources


def commit(sources: list[str] | None = None) -> str:
    """The checkout's commit, ``-dirty`` when ``sources`` (default: everything) hold changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", *(sources or ["notebooks", "esser_lab"])],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    except OSError:
        return ""
    if head.returncode != 0:
        return ""
    return head.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


def claim_rows(cards: Path, scale: str, revision: str = "") -> list[dict]:
    """The claims of the cards in ``cards`` as claims.csv rows (claims keep the card's order)."""
    rows = []
    for claim in read_cards(cards, scale):
        row = {column: _number(claim.get(column)) for column in CLAIM_COLUMNS}
        row["scale"], row["commit"] = scale, revision
        row["holds"] = _number(bool(claim["holds"]))
        rows.append(row)
    return rows


def seed_rows(cards: Path, scale: str, seed: int, revision: str = "", date: str = "") -> list[dict]:
    """The claims of the cards in ``cards`` as claims_seeds.csv rows."""
    return [
        {
            "chapter": claim["chapter"],
            "key": claim["key"],
            "seed": str(seed),
            "our_value": _number(claim.get("our_value")),
            "baseline_value": _number(claim.get("baseline_value")),
            "margin": _number(claim.get("margin")),
            "holds": _number(bool(claim["holds"])),
            "scale": scale,
            "commit": revision,
            "date": date,
        }
        for claim in read_cards(cards, scale, seed)
    ]


def seed_summary(rows: list[dict], minimum: int | None = None) -> list[str]:
    """One line per claim: its verdict over the recorded seeds (``minimum``: seeds it needs)."""
    from esser_lab.cards import MIN_SEEDS, seed_verdicts

    return [
        f"{chapter} [{scale}] {key}: {verdict.describe()}"
        for (chapter, key, scale), verdict in seed_verdicts(rows, minimum or MIN_SEEDS).items()
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-one"]:
        return run_one(Path(argv[1]), Path(argv[2]))

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="numbers, names or paths (default: all)")
    parser.add_argument(
        "--scale",
        default=os.environ.get("ESSER_LAB_SCALE") or "tiny",
        choices=SCALES,
        help="scale profile (default: $ESSER_LAB_SCALE, else tiny)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        help="training seed (ESSER_LAB_SEED); repeat for several (default: 0)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the CSV files")
    parser.add_argument(
        "--budget",
        default="minute",
        choices=("minute", "long"),
        help="long: the chapters' longer tiny runs (ESSER_LAB_BUDGET=long), recorded in "
        "claims_long.csv only",
    )
    parser.add_argument(
        "--no-timing",
        dest="timing",
        action="store_false",
        help="leave chapters.csv alone (times from a busy machine are not the record)",
    )
    args = parser.parse_args(argv)
    seeds = args.seed or [0]
    if any(seed < 0 for seed in seeds):
        parser.error("--seed must be a non-negative integer")
    if args.budget != "minute" and args.scale != "tiny":
        parser.error("--budget long is a tiny-scale setting")
    long = args.budget == "long"

    chapters = select_chapters(args.chapters)
    if not chapters:
        print(f"no chapters in {NOTEBOOKS}")
        return 0
    today = dt.date.today().isoformat()
    failed: list[str] = []
    for path, seed in ((p, s) for p in chapters for s in seeds):
        print(f"--- {path.stem} at scale {args.scale}, seed {seed}", flush=True)
        revision = commit(chapter_sources(path))
        status, seconds, peak_mib, cards = measure(path, args.scale, seed, args.budget)
        if status != 0:
            print(f"--- {path.stem}: FAILED (exit {status}) after {seconds:.1f} s", flush=True)
            failed.append(f"{path.stem} (seed {seed})")
            continue
        print(f"--- {path.stem}: {seconds:.1f} s, peak {peak_mib:.0f} MiB", flush=True)
        timing = None
        if seed == 0 and args.timing and not long:  # the chapter as the book runs it
            timing = {
                "chapter": path.stem,
                "scale": args.scale,
                "seconds": f"{seconds:.1f}",
                "peak_mib": f"{peak_mib:.0f}",
                "date": today,
            }
        record(
            args.results,
            path.stem,
            args.scale,
            seed,
            seed_rows(cards, args.scale, seed, revision, today),
            claim_rows(cards, args.scale, revision) if seed == 0 and not long else None,
            timing,
            "claims_long.csv" if long else "claims_seeds.csv",
        )

    by_seed = read_rows(
        args.results / ("claims_long.csv" if long else "claims_seeds.csv"), SEED_COLUMNS
    )
    ran = {p.stem for p in chapters}
    from esser_lab.cards import MIN_LONG_SEEDS, MIN_SEEDS

    minimum = MIN_LONG_SEEDS if long else MIN_SEEDS
    for line in seed_summary([r for r in by_seed if r["chapter"] in ran], minimum):
        print(line)
    if failed:
        print(f"failed chapters: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def record(
    results: Path,
    chapter: str,
    scale: str,
    seed: int,
    seeds: list[dict],
    claims: list[dict] | None,
    timing: dict | None,
    seeds_file: str = "claims_seeds.csv",
) -> None:
    """Merge one run's rows into the CSV files, under a lock (several runs may record at once)."""
    import fcntl

    results.mkdir(parents=True, exist_ok=True)
    with (results / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = results / seeds_file
        rows = [
            r
            for r in read_rows(path, SEED_COLUMNS)
            if (r["chapter"], r["scale"], r["seed"]) != (chapter, scale, str(seed))
        ]
        rows += seeds
        rows.sort(key=lambda r: (r["chapter"], _scale_order(r["scale"]), int(r["seed"])))
        write_rows(path, SEED_COLUMNS, rows)
        if claims is not None:
            if not claims:
                print(f"warning: {chapter} wrote no reproduction card")
            path = results / "claims.csv"
            rows = [
                r
                for r in read_rows(path, CLAIM_COLUMNS)
                if not (r["chapter"] == chapter and r["scale"] == scale)
            ]
            rows += claims
            rows.sort(key=lambda r: (r["chapter"], _scale_order(r["scale"])))  # stable
            write_rows(path, CLAIM_COLUMNS, rows)
        if timing is not None:
            path = results / "chapters.csv"
            rows = [
                r
                for r in read_rows(path, CHAPTER_COLUMNS)
                if (r["chapter"], r["scale"]) != (chapter, scale)
            ]
            rows.append(timing)
            rows.sort(key=lambda r: (r["chapter"], _scale_order(r["scale"])))
            write_rows(path, CHAPTER_COLUMNS, rows)


if __name__ == "__main__":
    sys.exit(main())
