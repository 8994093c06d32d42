"""Pages generated at build time from the package, the chapters and their reproduction cards.

Directives (used in ``book/*.md``):

``{reproduction-summary}``
    An overview grid (chapters × claims, coloured by the verdict across seeds, each cell linking
    to the chapter's measuring section) and one compact row per claim of every chapter's
    reproduction card (the long wording, metric, baseline and why folded). It is filled in during
    the write phase (``doctree-resolved``), after every chapter of this build has executed and
    written its card, and it warns (so ``-W`` fails the build) when a card is missing or older
    than the build. The verdicts across seeds are not from this build but from
    ``bench/results/claims_seeds.csv`` (``esser_lab.cards.seed_verdicts``); rows recorded on a
    dirty tree or before the chapter's last change are flagged stale, unless the record holds this
    build's seed with this build's numbers (then the chapter's numbers did not change).
``{genealogy}``
    Which ``esser_lab`` building blocks each chapter imports, which chapter introduced each one,
    and what later chapters reuse: parsed from the chapters' import statements, never typed.
``{chapter-timings}``
    Measured chapter times per scale from ``bench/results/chapters.csv``; "not yet measured" for
    every scale without a row.
``{lineage-figure}``
    The line of papers as an inline SVG timeline; chapters that exist link to their pages.
"""

from __future__ import annotations

import csv
import functools
import importlib
import json
import os
import time
from html import escape
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
SCALES = ("tiny", "small", "full")

# The book's plan: (year, chapter number, short name, file stem once the chapter exists).
LINEAGE = (
    (2018, 1, "Variational U-Net", "01_vunet"),
    (2019, 2, "Part-based disentangling", "02_part_based"),
    (2019, 3, "Content and style disentanglement", "03_style"),
    (2019, 4, "Robust disentangling", "04_rodi"),
    (2020, 5, "Invertible interpretation networks", "05_iin"),
    (2020, 6, "Network-to-network translation", "06_net2net"),
    (2020, 7, "Invariances of CNNs", "07_invariances"),
    (2020, 8, "Unsupervised part discovery", "08_part_discovery"),
    (2020, 9, "Data biases in generative models", "09_data_bias"),
    (2021, 10, "Taming transformers (VQGAN)", "10_taming"),
    (2021, 11, "Shape or texture", "11_shape_texture"),
    (2021, 12, "Geometry-free view synthesis", "12_geofree"),
    (2021, 13, "ImageBART", "13_imagebart"),
    (2022, 14, "Latent diffusion", "14_ldm"),
    (2022, 15, "Keyframe propagation", "15_keyframe"),
    (2023, 16, "Gen-1: structure and content-guided video", "16_gen1"),
    (2024, 17, "Rectified-flow transformers (SD3)", "17_sd3"),
    (2024, 18, "Latent adversarial diffusion distillation", "18_ladd"),
    (2026, 19, "Self-Flow", "19_self_flow"),
)


class placeholder(nodes.General, nodes.Element):
    """Replaced in the write phase by the generated content."""


def _table(
    headers: list[str],
    rows: list[list[str]],
    widths: list[int] | None = None,
    name: str = "",
) -> nodes.table:
    for row in [*rows, widths or headers]:
        if len(row) != len(headers):
            raise ValueError(f"table row {row} has {len(row)} cells for {len(headers)} columns")
    table = nodes.table(classes=["esser-generated", *([f"esser-{name}"] if name else [])])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths or [1] * len(headers):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for section, content in ((head, [headers]), (body, rows)):
        for values in content:
            row = nodes.row()
            for value in values:
                entry = nodes.entry()
                entry += nodes.paragraph(text=str(value))
                row += entry
            section += row
    return table


def _chapters(app: Sphinx) -> list[tuple[str, Path]]:
    """(docname, source path) of every chapter in the table of contents, in order."""
    found = [d for d in app.env.found_docs if d.startswith("notebooks/")]
    return [(d, ROOT / f"{d}.py") for d in sorted(found)]


class _Placeholder(SphinxDirective):
    kind = ""

    def run(self) -> list[nodes.Node]:
        return [placeholder(kind=self.kind)]


class ReproductionSummary(_Placeholder):
    kind = "summary"


class Genealogy(_Placeholder):
    kind = "genealogy"


class ChapterTimings(_Placeholder):
    kind = "timings"


class LineageFigure(_Placeholder):
    kind = "lineage"


class CoursePlan(_Placeholder):
    kind = "course"


# --------------------------------------------------------------------------------------------
# reproduction summary


def _cards_dir() -> Path:
    from esser_lab.cards import cards_dir

    return cards_dir()


VERDICT_CLASS = {
    "reproduced": "good",
    "not settled": "mixed",
    "not reproduced": "bad",
    "too few seeds": "none",
}


@functools.cache
def _bench_module():
    """``bench/run_chapters.py`` (the one place that knows which files a chapter depends on)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_chapters", ROOT / "bench/run_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def stale_commits(chapter_file: Path, commits: tuple[str, ...]) -> list[str]:
    """The recorded commits that no longer describe the chapter: dirty, unknown, or older than
    the last commit that changed the chapter or the modules it imports."""
    import subprocess

    sources = _bench_module().chapter_sources(chapter_file)
    stale = []
    for commit in commits:
        if not commit or commit.endswith("-dirty"):
            stale.append(commit or "(none)")
            continue
        changed = subprocess.run(
            ["git", "log", "--format=%h", f"{commit}..HEAD", "--", *sources],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if changed.returncode != 0 or changed.stdout.strip():
            stale.append(commit)
    return stale


def measuring_anchor(chapter_file: Path) -> str:
    """The id of the chapter's "Measuring the claim(s)" section ("" where it has none)."""
    for line in chapter_file.read_text(encoding="utf-8").splitlines():
        match = line.removeprefix("# ").strip()
        if match.startswith("## ") and "measuring" in match.lower():
            return nodes.make_id(match[3:])
    return ""


def _cell(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def freshness(claim: dict, rows: list[dict], stale: list[str]) -> str:
    """Why the seed record of ``claim`` may not describe this build ("" when it does).

    The record is confirmed when it holds this build's seed with this build's values (the
    chapter's numbers have not changed since the sweep, whatever was edited). Otherwise it is
    stale when it was recorded on uncommitted sources or before the chapter's last change.
    """
    same_seed = [r for r in rows if r["seed"] == str(claim.get("seed", 0))]
    from esser_lab.cards import recorded_numbers

    for row in same_seed:
        if recorded_numbers(row) == (float(claim["our_value"]), float(claim["baseline_value"])):
            return ""
        return f"stale: seed {row['seed']} gave other numbers when recorded"
    if stale:
        return "stale: the chapter changed since"
    return ""


def summary_html(entries: list[dict], verdicts: dict, stale: dict[str, list[str]]) -> str:
    """The overview grid and the compact table, as HTML.

    ``entries``: one dict per card claim with its ``stem`` and ``href`` (the chapter page's
    measuring section) added. ``verdicts``: ``esser_lab.cards.seed_verdicts`` of the seeds file.
    ``stale``: chapter stem → recorded commits that no longer describe the chapter. Each entry
    may carry ``seed_rows`` (its rows of the seeds file), to confirm the record by value.
    """
    grid: dict[str, list[str]] = {}
    rows = []
    for claim in entries:
        stem, key = claim["stem"], claim.get("key", "")
        verdict = verdicts.get((stem, key, claim["scale"]))
        label = verdict.label if verdict else "too few seeds"
        if verdict is None:
            seeds_text = "no seeds recorded"
        else:
            seeds_text = f"{verdict.label} {verdict.held}/{verdict.seeds}<br>"
            seeds_text += escape(verdict.describe().split("margin ", 1)[1])
            reason = freshness(claim, claim.get("seed_rows", []), stale.get(stem, []))
            if reason:
                seeds_text += (
                    '<br><span class="esser-stale" title="recorded on '
                    f'{escape(", ".join(verdict.commits))}">{escape(reason)}</span>'
                )
        sanity = claim.get("kind") == "sanity"
        cls = "sanity" if sanity else VERDICT_CLASS[label]
        title = escape(f"{stem} · {claim['claim']} — {label}", quote=True)
        if not sanity:
            grid.setdefault(stem, []).append(
                f'<a class="esser-cell {cls}" href="{claim["href"]}" title="{title}">'
                f"{escape(key)}</a>"
            )
        run = "✓" if claim["holds"] else "✗"
        paper, paper_text = "–", "not reported"
        if claim.get("paper_source"):
            value, base = claim.get("paper_value"), claim.get("paper_baseline_value")
            paper = "–" if value is None else str(value)
            paper += "" if base is None else f" vs {base}"
            paper_text = f"{paper} · {claim.get('paper_metric')} ({claim['paper_source']})"
            paper = f'<span title="{escape(paper_text, quote=True)}">{escape(paper)}</span>'
        wording = claim["claim"]
        details = (
            f"<details><summary><code>{escape(key)}</code>{' (sanity)' if sanity else ''}"
            f"</summary><p>{escape(wording)}<br><b>metric</b> {escape(claim['metric'])}<br>"
            f"<b>baseline</b> {escape(claim['baseline'])}<br><b>why this baseline</b> "
            f"{escape(claim['why'])}<br><b>paper</b> {escape(paper_text)}</p></details>"
        )
        rows.append(
            f'<tr class="{cls}">'
            + _cell(f'<a href="{claim["href"]}">{escape(stem)}</a>{details}')
            + _cell(f"{run} {claim['our_value']:.4g} vs {claim['baseline_value']:.4g}")
            + _cell(seeds_text, f"verdict {cls}")
            + _cell(paper)
            + "</tr>"
        )
    counts: dict[str, int] = {}
    for claim in entries:
        if claim.get("kind") == "sanity":
            continue
        verdict = verdicts.get((claim["stem"], claim.get("key", ""), claim["scale"]))
        label = verdict.label if verdict else "too few seeds"
        counts[label] = counts.get(label, 0) + 1
    legend = " · ".join(
        f'<span class="esser-cell {VERDICT_CLASS[label]}">{label}</span> {counts.get(label, 0)}'
        for label in ("reproduced", "not settled", "not reproduced", "too few seeds")
    )
    overview = "".join(
        f'<div class="esser-grid-row"><span class="esser-grid-chapter">{escape(stem)}</span>'
        f"{''.join(cells)}</div>"
        for stem, cells in grid.items()
    )
    head = (
        "<tr><th>chapter · claim (open for its wording, metric and baseline)</th>"
        "<th>this build: ours vs baseline</th><th>across seeds (bench)</th>"
        "<th>paper: ours vs baseline</th></tr>"
    )
    return (
        f'<div class="esser-overview"><p class="esser-legend">{legend}</p>{overview}</div>'
        f'<table class="esser-summary"><thead>{head}</thead><tbody>{"".join(rows)}</tbody>'
        "</table>"
    )


def _summary(app: Sphinx, docname: str) -> list[nodes.Node]:
    from esser_lab.cards import read_seed_rows, seed_verdicts

    directory = _cards_dir()
    started = app.env.esser_build_started  # type: ignore[attr-defined]
    entries, scales, times, stale = [], set(), [], {}
    seed_rows = read_seed_rows(ROOT / "bench" / "results" / "claims_seeds.csv")
    verdicts = seed_verdicts(seed_rows)
    for chapter, source in _chapters(app):
        stem = chapter.split("/")[-1]
        path = directory / f"{stem}.json"
        if not path.is_file():
            logger.warning(f"reproduction summary: no card {path} for chapter {stem}")
            continue
        mtime = path.stat().st_mtime
        if mtime < started:
            logger.warning(f"reproduction summary: card {path} is older than this build")
        times.append(mtime)
        href = app.builder.get_relative_uri(docname, chapter)
        anchor = measuring_anchor(source) if source.is_file() else ""
        href += f"#{anchor}" if anchor else ""
        recorded = {c for (st, _, _), v in verdicts.items() if st == stem for c in v.commits}
        if source.is_file() and recorded:
            stale[stem] = stale_commits(source, tuple(sorted(recorded)))
        for claim in json.loads(path.read_text()):
            scales.add(claim["scale"])
            rows = [
                r
                for r in seed_rows
                if (r["chapter"], r["key"], r["scale"]) == (stem, claim["key"], claim["scale"])
            ]
            entries.append(
                {**claim, "stem": stem, "href": escape(href, quote=True), "seed_rows": rows}
            )
    if not entries:
        return [nodes.paragraph(text="No reproduction cards were written in this build.")]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(times)))
    note = nodes.paragraph(
        text=f"Measured in this build at scale {', '.join(sorted(scales))}, cards written {when}."
    )
    return [note, nodes.raw("", summary_html(entries, verdicts, stale), format="html")]


# --------------------------------------------------------------------------------------------
# genealogy


def _imports(path: Path) -> list[str]:
    """``esser_lab`` modules a chapter imports, shallowest first (``bench``'s one parser)."""
    return sorted(_bench_module().chapter_imports(path), key=lambda m: (m.count("."), m))


def _summary_line(module: str) -> str:
    try:
        doc = importlib.import_module(module).__doc__ or ""
    except Exception as error:  # a chapter imports something that does not import
        logger.warning(f"genealogy: cannot import {module}: {error}")
        return ""
    return doc.strip().split("\n")[0]


def _genealogy(app: Sphinx) -> list[nodes.Node]:
    chapters = [(d.split("/")[-1], _imports(p)) for d, p in _chapters(app) if p.is_file()]
    introduced: dict[str, str] = {}
    for stem, modules in chapters:
        for module in modules:
            introduced.setdefault(module, stem)
    per_chapter = []
    for stem, modules in chapters:
        new = [m for m in modules if introduced[m] == stem]
        reused = [f"{m} (from {introduced[m]})" for m in modules if introduced[m] != stem]
        per_chapter.append([stem, ", ".join(new) or "–", ", ".join(reused) or "–"])
    blocks = []
    for module, first in sorted(introduced.items()):
        users = [stem for stem, modules in chapters if module in modules]
        blocks.append([module, _summary_line(module), first, ", ".join(users)])
    return [
        nodes.paragraph(
            text="Each chapter: the building blocks it introduces and those it reuses."
        ),
        _table(["chapter", "introduces", "reuses"], per_chapter, [2, 6, 6]),
        nodes.paragraph(
            text="Each building block: what it is, where it first appears, who uses it."
        ),
        _table(["module", "what it is", "first in", "used by"], blocks, [4, 8, 2, 3]),
    ]


# --------------------------------------------------------------------------------------------
# chapter timings


def _timings(app: Sphinx) -> list[nodes.Node]:
    path = ROOT / "bench" / "results" / "chapters.csv"
    measured: dict[tuple[str, str], dict] = {}
    if path.is_file():
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                measured[(row["chapter"], row["scale"])] = row
    rows = []
    for docname, _ in _chapters(app):
        stem = docname.split("/")[-1]
        cells = [stem]
        for scale in SCALES:
            row = measured.get((stem, scale))
            cells.append(
                f"{float(row['seconds']):.0f} s, {row['peak_mib']} MiB ({row['date']})"
                if row
                else "not yet measured"
            )
        rows.append(cells)
    return [_table(["chapter", *SCALES], rows, [2, 3, 3, 3])]


# --------------------------------------------------------------------------------------------
# lineage figure


def _lineage(app: Sphinx, docname: str) -> list[nodes.Node]:
    existing = {d.split("/")[-1] for d in app.env.found_docs if d.startswith("notebooks/")}
    step_y, width = 26, 720
    height = step_y * len(LINEAGE) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="the lineage of papers" class="esser-lineage" '
        f'style="max-width:{width}px;width:100%;background:white">'
    ]
    parts.append(
        f'<line x1="90" y1="10" x2="90" y2="{height - 10}" stroke="#888" stroke-width="2"/>'
    )
    last_year = None
    for index, (year, number, name, stem) in enumerate(LINEAGE):
        y = 20 + index * step_y
        if year != last_year:
            parts.append(
                f'<text x="70" y="{y + 5}" text-anchor="end" font-size="13" fill="#333">'
                f"{year}</text>"
            )
            last_year = year
        present = stem in existing
        colour = "#1f77b4" if present else "#bbb"
        parts.append(f'<circle cx="90" cy="{y}" r="6" fill="{colour}"/>')
        label = escape(f"{number}. {name}")
        text = (
            f'<text x="106" y="{y + 5}" font-size="13" fill="{"#111" if present else "#999"}">'
            f"{label}{'' if present else ' (planned)'}</text>"
        )
        if present:
            target = app.builder.get_relative_uri(docname, f"notebooks/{stem}")
            text = f'<a href="{escape(target)}">{text}</a>'
        parts.append(text)
    parts.append("</svg>")
    return [nodes.raw("", "\n".join(parts), format="html")]


# --------------------------------------------------------------------------------------------
# the course page and the key figures (book/_ext/course.py)


def _course_entries(app: Sphinx) -> list:
    from course import read_entry

    return [read_entry(path) for _, path in _chapters(app)]


def _export_key_figures(app: Sphinx, env=None) -> None:  # noqa: ANN001
    """Every chapter's key figure, from the executed notebooks the build renders, as a file
    (once every document is read: ``env-updated``)."""
    from course import FIGURES_DIR, write_key_figures
    from execute import CACHE, read_chapter
    from jupyter_cache import get_cache

    if app.builder.format != "html":
        return
    executed = {}
    if CACHE.is_dir():
        store = get_cache(str(CACHE))
        for _, path in _chapters(app):
            try:
                executed[path.stem] = store.merge_match_into_notebook(read_chapter(path))[1]
            except KeyError:  # not executed (yet): the page says the figure is missing
                continue
    written = write_key_figures(_course_entries(app), executed, Path(app.outdir) / FIGURES_DIR)
    app.env.esser_key_figures = {p.stem for p in written}  # type: ignore[attr-defined]


def _course(app: Sphinx, docname: str) -> list[nodes.Node]:
    from course import FIGURES_DIR, course_html, read_timings

    def chapter_uri(stem: str) -> str:
        return app.builder.get_relative_uri(docname, f"notebooks/{stem}")

    depth = docname.count("/")
    prefix = "../" * depth

    def figure_uri(stem: str) -> str:
        return f"{prefix}{FIGURES_DIR}/{stem}.png"

    figures = getattr(app.env, "esser_key_figures", set())
    body = course_html(_course_entries(app), read_timings(), chapter_uri, figure_uri, figures)
    return [nodes.raw("", body, format="html")]


# --------------------------------------------------------------------------------------------


def _on_builder_inited(app: Sphinx) -> None:
    # Cards must be newer than the execution this build renders: this build's, or the one
    # book/_ext/execute.py ran (make test) and left in the cache for it.
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from execute import executed_at

    started = executed_at()
    app.env.esser_build_started = (started or time.time()) - 1  # type: ignore[attr-defined]
    os.environ.setdefault("ESSER_LAB_CARDS", str(_cards_dir()))


def _on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in list(doctree.findall(placeholder)):
        kind = node["kind"]
        if kind == "summary":
            new = _summary(app, docname)
        elif kind == "genealogy":
            new = _genealogy(app)
        elif kind == "timings":
            new = _timings(app)
        elif kind == "course":
            new = _course(app, docname)
        else:
            new = _lineage(app, docname)
        node.replace_self(new)


def _register_bibliography_style(bibfiles: list[str], srcdir: str) -> None:
    """The bibliography's labels: pybtex's "alpha" labels ("ERO20"), made unique across the book.

    Two papers by the same authors in the same year (IIN and the data-bias note are both "ERO20")
    would get the same label, which sphinxcontrib-bibtex reports as a duplicate. Here every label
    shared by several entries of the .bib files gets a, b, ... in the order of the citation keys,
    the same on every page.
    """
    import pybtex.database
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.labels.alpha import LabelStyle as AlphaLabelStyle

    alpha = AlphaLabelStyle()
    labels: dict[str, str] = {}
    for bibfile in bibfiles:
        entries = pybtex.database.parse_file(str(Path(srcdir) / bibfile)).entries
        labels |= {key: alpha.format_label(entry) for key, entry in entries.items()}
    groups: dict[str, list[str]] = {}
    for key in sorted(labels):
        groups.setdefault(labels[key], []).append(key)
    unique = {
        key: label + (chr(ord("a") + i) if len(keys) > 1 else "")
        for label, keys in groups.items()
        for i, key in enumerate(keys)
    }

    class UniqueAlphaLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):  # noqa: ANN001, ANN202
            for entry in sorted_entries:
                yield unique.get(entry.key) or alpha.format_label(entry)

    class EsserStyle(UnsrtStyle):
        default_label_style = UniqueAlphaLabels

    register_plugin("pybtex.style.labels", "esser_unique_alpha", UniqueAlphaLabels, force=True)
    register_plugin("pybtex.style.formatting", "esser", EsserStyle, force=True)


def _on_config_inited(app: Sphinx, config) -> None:  # noqa: ANN001
    _register_bibliography_style(list(getattr(config, "bibtex_bibfiles", None) or []), app.srcdir)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _on_config_inited)
    app.add_node(placeholder)
    app.add_css_file("esser-pages.css")  # book/_static, on the static path (see colab.py)
    app.add_directive("reproduction-summary", ReproductionSummary)
    app.add_directive("genealogy", Genealogy)
    app.add_directive("chapter-timings", ChapterTimings)
    app.add_directive("lineage-figure", LineageFigure)
    app.add_directive("course-plan", CoursePlan)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-updated", _export_key_figures)
    app.connect("doctree-resolved", _on_doctree_resolved)
    return {"parallel_read_safe": True, "parallel_write_safe": False, "env_version": 1}
