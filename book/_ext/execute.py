"""Execute every chapter once, in parallel, and hand the results to the book build.

``make test`` runs the chapters here instead of through nbval, and ``make book`` renders what this
run executed instead of executing every chapter a second time::

    python book/_ext/execute.py                 # every chapter in _toc.yml, 2 at a time
    python book/_ext/execute.py 01 10 --jobs 1  # some chapters, one at a time

Each chapter runs in its own kernel (nbclient, working directory ``notebooks/``, the chapter's
one torch thread at ``tiny``), ``--jobs`` at a time. A chapter whose cell raises is reported with
the cell's traceback and makes the script exit 1 once the others have finished: a failing cell
still fails CI. Every chapter that succeeds is stored in the book's jupyter-cache
(``_build/.jupyter_cache``), keyed as myst-nb keys it (the code cells' source and the
kernelspec), and ``_config.yml``'s ``execute_notebooks: cache`` makes the build take the stored
outputs instead of executing the chapter again.

A cache keyed on cell source alone would serve stale results after a change to the package, so
the cache also holds a *stamp*: a hash of ``esser_lab/``, ``notebooks/``, ``requirements.txt`` and
the ``ESSER_LAB_*`` settings at the time the chapters ran. ``python book/_ext/execute.py --check``
(the first step of ``make book``) empties the cache when the stamp does not match the checkout, so
a reader's ``make book`` executes every chapter afresh after any change, as it always did.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = "esser-lab-stamp.json"
STAMPED_PATHS = ("esser_lab", "notebooks", "requirements.txt")
SETTINGS = (
    "ESSER_LAB_SCALE",
    "ESSER_LAB_SEED",
    "ESSER_LAB_BUDGET",
    "ESSER_LAB_THREADS",
    "ESSER_LAB_DEVICES",
    "ESSER_LAB_DEVICE",
    "ESSER_LAB_MAX_STEPS",
    "ESSER_LAB_MAX_SAMPLES",
    "ESSER_LAB_PRETRAINED",
)
CELL_TIMEOUT_S = 600  # as execute.timeout in _config.yml
KERNEL_STARTS = 3  # tries to start a chapter's kernel before giving up


def read_chapter(path: Path):
    """The chapter as myst-nb reads it (``nb_custom_formats``: jupytext, ``py:percent``)."""
    import jupytext

    return jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")


def chapters(wanted: list[str]) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from colab import toc_chapters

    found = [ROOT / f"{docname}.py" for docname in toc_chapters(ROOT)]
    if not wanted:
        return found
    chosen = [p for p in found if p.stem in wanted or p.stem.split("_", 1)[0] in wanted]
    missing = [w for w in wanted if not any(w in (p.stem, p.stem.split("_")[0]) for p in chosen)]
    if missing:
        raise SystemExit(f"no chapter in _toc.yml matches {missing}")
    return chosen


def stamp() -> dict:
    """What the chapters' outputs depend on: the sources' hash and the ESSER_LAB_* settings."""
    digest = hashlib.sha256()
    for name in STAMPED_PATHS:
        base = ROOT / name
        files = sorted(base.rglob("*")) if base.is_dir() else [base]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    settings = {name: os.environ.get(name, "").strip() for name in SETTINGS}
    if not settings["ESSER_LAB_SCALE"]:  # unset: the scale the chapters resolve to
        from esser_lab.scale import current

        settings["ESSER_LAB_SCALE"] = current().name
    settings["ESSER_LAB_SEED"] = settings["ESSER_LAB_SEED"] or "0"
    return {"sources": digest.hexdigest(), "settings": settings}


def executed_at(cache: Path = CACHE) -> float | None:
    """When the cached chapters started executing, if the cache matches the checkout."""
    path = cache / STAMP
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record.get("executed_at") if record.get("stamp") == stamp() else None


def check(cache: Path) -> bool:
    """Keep the cache only if its stamp matches the checkout; True when it was kept.

    An emptied cache takes the reproduction cards with it (``esser_lab.cards.cards_dir()``):
    the build that executes the chapters again writes them again.
    """
    if executed_at(cache) is not None:
        print(f"{cache}: chapters executed on these sources and settings; the build reuses them")
        return True
    if cache.exists():
        print(f"{cache}: stale or unstamped (the sources or settings changed): emptied")
        shutil.rmtree(cache)
    from esser_lab.cards import cards_dir

    shutil.rmtree(cards_dir(), ignore_errors=True)
    return False


def run_one(path: Path, executed: Path) -> int:
    """Child process: execute one chapter in a fresh kernel, write it to ``executed``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = read_chapter(path)
    for attempt in range(1, KERNEL_STARTS + 1):
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name=notebook.metadata.get("kernelspec", {}).get("name", "python3"),
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            client.execute()
            break
        except CellExecutionError as error:
            print(f"\n{path.name}: a cell failed\n{error}", file=sys.stderr)
            return 1
        except RuntimeError as error:
            # Two kernels starting at once can pick the same free TCP port; the loser dies before
            # it answers (ipykernel: "Address already in use"). Nothing ran yet, so start again.
            if client.code_cells_executed or attempt == KERNEL_STARTS:
                raise
            print(f"{path.name}: the kernel did not start ({error}); starting another", flush=True)
            notebook = read_chapter(path)
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed)
    return 0


def execute(paths: list[Path], jobs: int, cache: Path | None, outputs: Path | None = None) -> int:
    """Run ``paths`` ``jobs`` at a time; store them in ``cache`` (None: only write ``outputs``)."""
    import nbformat

    outputs = outputs or ROOT / "_build" / "executed"
    started = time.time()
    sources = stamp()

    def one(path: Path) -> tuple[Path, int, float]:
        t0 = time.perf_counter()
        command = [sys.executable, __file__, "--run-one", str(path), str(outputs / path.name)]
        status = subprocess.run(command, cwd=ROOT).returncode
        seconds = time.perf_counter() - t0
        print(
            f"--- {path.stem}: {'ok' if status == 0 else 'FAILED'} in {seconds:.1f} s", flush=True
        )
        return path, status, seconds

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, paths))
    failed = [p.stem for p, status, _ in results if status != 0]
    if cache is None:  # a smoke pass (e.g. `make chapters-small`): nothing goes to the book
        print(f"{len(paths) - len(failed)} of {len(paths)} chapters executed into {outputs}")
        if failed:
            print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    store = get_cache(str(cache))
    for path, status, seconds in results:
        if status != 0:
            continue
        # The chapter as myst-nb will read it, with the executed outputs: nbclient adds timing
        # metadata to each cell, which would change jupyter-cache's key.
        executed = read_chapter(path)
        ran = nbformat.read(outputs / path.name, as_version=4)
        for key in ("language_info", "widgets"):  # myst-nb merges these back (widget state)
            if key in ran.metadata:
                executed.metadata[key] = ran.metadata[key]
        for cell, done in zip(executed.cells, ran.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
        record = store.cache_notebook_bundle(
            CacheBundleIn(executed, str(path), data={"execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )
        assert store.match_cache_notebook(read_chapter(path)).pk == record.pk  # myst-nb's key
    if stamp() != sources:
        print("the sources changed while the chapters ran: the cache is left unstamped")
    elif not failed:
        (cache / STAMP).write_text(json.dumps({"stamp": sources, "executed_at": started}))
    print(f"{len(paths) - len(failed)} of {len(paths)} chapters executed and cached in {cache}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-one"]:
        return run_one(Path(argv[1]), Path(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="numbers or names (default: all in _toc.yml)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--check", action="store_true", help="only empty a stale cache")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run without touching the book's cache (a smoke pass, e.g. small on the CPU)",
    )
    parser.add_argument("--outputs", type=Path, help="where executed notebooks go")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.check:
        check(args.cache)
        return 0
    if args.no_cache:
        return execute(chapters(args.chapters), args.jobs, None, args.outputs)
    check(args.cache)  # never mix fresh results with results of other sources
    return execute(chapters(args.chapters), args.jobs, args.cache, args.outputs)


if __name__ == "__main__":
    sys.exit(main())
