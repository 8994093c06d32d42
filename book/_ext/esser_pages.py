"""Pages generated at build time from the package, the chapters and their reproduction cards.

Directives (used in ``book/*.md``):

``{reproduction-summary}``
    A table of every claim of every chapter's reproduction card. It is filled in during the write
    phase (``doctree-resolved``), after every chapter of this build has executed and written its
    card, and it warns (so ``-W`` fails the build) when a card is missing or older than the build.
    Its last column is not from this build: in how many training seeds ``bench/`` recorded the
    claim holding (``bench/results/claims_seeds.csv``), or "–" where no seeds were recorded.
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

import ast
import csv
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
    (2021, 11, "Shape or texture", None),
    (2021, 12, "Geometry-free view synthesis", None),
    (2021, 13, "ImageBART", None),
    (2022, 14, "Latent diffusion", None),
    (2022, 15, "Keyframe propagation", None),
    (2023, 16, "Gen-1: structure and content-guided video", None),
    (2024, 17, "Rectified-flow transformers (SD3)", None),
    (2024, 18, "Latent adversarial diffusion distillation", None),
    (2026, 19, "Self-Flow", None),
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


# --------------------------------------------------------------------------------------------
# reproduction summary


def _cards_dir() -> Path:
    from esser_lab.cards import cards_dir

    return cards_dir()


SUMMARY_HEADERS = [
    "chapter",
    "claim — metric",
    "paper",
    "ours",
    "baseline",
    "verdict",
    "seeds (bench)",
]
SUMMARY_WIDTHS = [2, 10, 3, 2, 2, 3, 2]
SeedRecord = dict[tuple[str, str, str], list[bool]]  # (chapter, claim, scale) → holds per seed


def seed_record(path: Path | None = None) -> SeedRecord:
    """``bench/results/claims_seeds.csv`` as (chapter, claim, scale) → holds, one per seed."""
    path = ROOT / "bench" / "results" / "claims_seeds.csv" if path is None else path
    record: SeedRecord = {}
    if path.is_file():
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                key = (row["chapter"], row["claim"], row["scale"])
                record.setdefault(key, []).append(row["holds"] == "true")
    return record


def claim_row(stem: str, claim: dict, seeds: SeedRecord | None = None) -> list[str]:
    """One row of the summary table for one claim of a card."""
    paper = claim.get("paper_value")
    paper = "–" if paper is None else f"{paper} ({claim.get('paper_source', '')})"
    baseline = claim.get("baseline_value")
    verdict = "✓ holds" if claim["holds"] else "✗ does not hold"
    held = (seeds or {}).get((stem, claim["claim"], claim["scale"]), [])
    return [
        stem,
        f"{claim['claim']} — {claim['metric']}",
        paper,
        str(claim["our_value"]),
        "–" if baseline is None else str(baseline),
        f"{verdict} ({claim['criterion']}, {claim['scale']})",
        f"holds in {sum(held)} of {len(held)}" if held else "–",
    ]


def _summary(app: Sphinx) -> list[nodes.Node]:
    directory = _cards_dir()
    started = app.env.esser_build_started  # type: ignore[attr-defined]
    rows, scales, times = [], set(), []
    seeds = seed_record()
    for docname, _ in _chapters(app):
        stem = docname.split("/")[-1]
        path = directory / f"{stem}.json"
        if not path.is_file():
            logger.warning(f"reproduction summary: no card {path} for chapter {stem}")
            continue
        mtime = path.stat().st_mtime
        if mtime < started:
            logger.warning(f"reproduction summary: card {path} is older than this build")
        times.append(mtime)
        for claim in json.loads(path.read_text()):
            scales.add(claim["scale"])
            rows.append(claim_row(stem, claim, seeds))
    if not rows:
        return [nodes.paragraph(text="No reproduction cards were written in this build.")]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(times)))
    note = nodes.paragraph(
        text=f"Measured in this build at scale {', '.join(sorted(scales))}, cards written {when}."
    )
    return [note, _table(SUMMARY_HEADERS, rows, SUMMARY_WIDTHS, name="summary")]


# --------------------------------------------------------------------------------------------
# genealogy


def _imports(path: Path) -> list[str]:
    """``esser_lab`` modules a chapter imports, in order of first appearance."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("esser_lab"):
            names = [node.module]
            if node.module == "esser_lab":  # ``from esser_lab import scale``
                names = [f"esser_lab.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("esser_lab")]
        for name in names:
            if name not in modules:
                modules.append(name)
    return sorted(modules, key=lambda m: (m.count("."), m))


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


def _on_builder_inited(app: Sphinx) -> None:
    app.env.esser_build_started = time.time() - 1  # type: ignore[attr-defined]
    os.environ.setdefault("ESSER_LAB_CARDS", str(_cards_dir()))


def _on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in list(doctree.findall(placeholder)):
        kind = node["kind"]
        if kind == "summary":
            new = _summary(app)
        elif kind == "genealogy":
            new = _genealogy(app)
        elif kind == "timings":
            new = _timings(app)
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
    app.connect("builder-inited", _on_builder_inited)
    app.connect("doctree-resolved", _on_doctree_resolved)
    return {"parallel_read_safe": True, "parallel_write_safe": False, "env_version": 1}
