"""The course page and the key figures, generated from metadata each chapter carries.

A chapter's jupytext header holds an ``esser_lab:`` block (notebook metadata) that says where it
sits in a semester and what a student takes from it::

    esser_lab:
      goals: [three sentences, each starting with a verb]
      key_figure: the caption of its most telling figure
      lab: what the chapter's run trains and measures
      prerequisites: {chapters: [earlier chapter numbers], maths: [what to know]}
      week: 4

and one code cell tagged ``key-figure``: the figure a teacher would put on a slide. From these,
and from the timings in ``bench/results/chapters.csv``, the ``{course-plan}`` directive (see
``esser_pages.py``) writes the course page: the week-by-week plan, each chapter's prerequisites,
goals and key figure. When the book is built, every chapter's key figure is taken from its executed
notebook (the jupyter cache ``make book`` renders) and written as a standalone image,
``<html>/key-figures/NN_name.png``, with its caption beside it in ``NN_name.txt``.

Nothing here is typed twice: the page cannot drift from the chapters, and a chapter with missing,
unknown or ill-typed fields fails the build with a message naming the field.
"""

from __future__ import annotations

import base64
import csv
import html
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY_FIGURE_TAG = "key-figure"
FIGURES_DIR = "key-figures"  # under the HTML output
FIELDS = ("goals", "key_figure", "lab", "prerequisites", "week")
PREREQUISITE_FIELDS = ("chapters", "maths")
GPU_SCALES = ("small", "full")
_TITLE = re.compile(r"\A\s*#\s+(?P<number>\d+)\.\s+(?P<title>.+)")


class CourseError(ValueError):
    """A chapter's course metadata is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class CourseEntry:
    """One chapter's place in the course."""

    stem: str  # "05_iin"
    number: int
    title: str
    week: int
    lab: str
    chapters: tuple[int, ...]  # prerequisite chapters
    maths: tuple[str, ...]
    goals: tuple[str, ...]
    key_figure: str


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CourseError(f"{where} must be a non-empty string, got {value!r}")
    return " ".join(value.split())


def _texts(value: object, where: str, at_least: int = 1) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < at_least:
        raise CourseError(f"{where} must be a list of at least {at_least} strings, got {value!r}")
    return tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(value))


def entry_from_notebook(notebook, stem: str) -> CourseEntry:
    """The course entry of a chapter read with jupytext (``stem`` names it in messages)."""
    where = f"notebooks/{stem}.py: esser_lab"
    meta = notebook.metadata.get("esser_lab")
    if not isinstance(meta, dict):
        raise CourseError(
            f"notebooks/{stem}.py has no 'esser_lab:' block in its jupytext header "
            f"(fields: {', '.join(FIELDS)}; see book/_ext/course.py)"
        )
    unknown, missing = sorted(set(meta) - set(FIELDS)), [f for f in FIELDS if f not in meta]
    if unknown or missing:
        raise CourseError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    title = next((c.source for c in notebook.cells if c.cell_type == "markdown"), "")
    match = _TITLE.match(title)
    if match is None or int(match["number"]) != int(stem[:2]):
        raise CourseError(f"notebooks/{stem}.py must open with '# {int(stem[:2])}. Title'")
    number = int(match["number"])
    week = meta["week"]
    if isinstance(week, bool) or not isinstance(week, int) or week < 1:
        raise CourseError(f"{where}.week must be a positive int, got {week!r}")
    prerequisites = meta["prerequisites"]
    if not isinstance(prerequisites, dict) or sorted(prerequisites) != list(PREREQUISITE_FIELDS):
        raise CourseError(
            f"{where}.prerequisites must hold exactly {list(PREREQUISITE_FIELDS)}, got "
            f"{prerequisites!r}"
        )
    chapters = prerequisites["chapters"]
    if not isinstance(chapters, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 1 <= c < number for c in chapters
    ):
        raise CourseError(
            f"{where}.prerequisites.chapters must list earlier chapter numbers (1 to "
            f"{number - 1}), got {chapters!r}"
        )
    tagged = [c for c in notebook.cells if KEY_FIGURE_TAG in (c.metadata.get("tags") or [])]
    if len(tagged) != 1 or tagged[0].cell_type != "code":
        raise CourseError(
            f"notebooks/{stem}.py must tag exactly one code cell '{KEY_FIGURE_TAG}' (its key "
            f"figure), found {len(tagged)}"
        )
    return CourseEntry(
        stem=stem,
        number=number,
        title=_text(match["title"], f"notebooks/{stem}.py's title"),
        week=week,
        lab=_text(meta["lab"], f"{where}.lab"),
        chapters=tuple(sorted(set(chapters))),
        maths=_texts(prerequisites["maths"], f"{where}.prerequisites.maths"),
        goals=_texts(meta["goals"], f"{where}.goals", at_least=2),
        key_figure=_text(meta["key_figure"], f"{where}.key_figure"),
    )


def read_entry(path: Path) -> CourseEntry:
    import jupytext

    path = Path(path)
    return entry_from_notebook(jupytext.read(path), path.stem)


def check_plan(entries: list[CourseEntry]) -> None:
    """Weeks run 1, 2, ... without a gap, in chapter order; a prerequisite is never taught later."""
    weeks = sorted({e.week for e in entries})
    if weeks != list(range(1, len(weeks) + 1)):
        raise CourseError(f"the course's weeks must run 1..N without a gap, got {weeks}")
    by_number = {e.number: e for e in entries}
    for entry in entries:
        for number in entry.chapters:
            earlier = by_number.get(number)
            if earlier is not None and earlier.week > entry.week:
                raise CourseError(
                    f"chapter {entry.number} (week {entry.week}) needs chapter {number}, which "
                    f"the plan teaches later (week {earlier.week})"
                )


# --------------------------------------------------------------------------------------------
# timings from bench/results/chapters.csv


def read_timings(path: Path = ROOT / "bench" / "results" / "chapters.csv") -> dict:
    """``{(stem, scale): row}`` from the chapter timings file (empty when it is absent)."""
    if not Path(path).is_file():
        return {}
    with Path(path).open(newline="") as handle:
        return {(row["chapter"], row["scale"]): row for row in csv.DictReader(handle)}


def cpu_time(stem: str, timings: dict) -> str:
    row = timings.get((stem, "tiny"))
    return f"{float(row['seconds']):.0f} s (tiny, 2 CPU cores)" if row else "not yet measured"


def gpu_time(stem: str, timings: dict) -> str:
    found = [
        f"{float(timings[(stem, s)]['seconds']):.0f} s ({s})"
        for s in GPU_SCALES
        if (stem, s) in timings
    ]
    return ", ".join(found) if found else "not yet measured"


# --------------------------------------------------------------------------------------------
# key figures from the executed notebooks


def key_figure_png(notebook) -> bytes | None:
    """The first PNG the ``key-figure`` cell of an executed notebook displayed (None: none)."""
    for cell in notebook.cells:
        if KEY_FIGURE_TAG not in (cell.metadata.get("tags") or []):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {}) if isinstance(output, dict) else {}
            if "image/png" in data:
                payload = data["image/png"]
                return base64.b64decode("".join(payload) if isinstance(payload, list) else payload)
    return None


def write_key_figures(entries: list[CourseEntry], executed: dict, out: Path) -> list[Path]:
    """Write ``out/NN_name.png`` and ``out/NN_name.txt`` (the caption) for every chapter whose
    executed notebook (``executed[stem]``) shows its key figure; return the images written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in entries:
        notebook = executed.get(entry.stem)
        png = key_figure_png(notebook) if notebook is not None else None
        if png is None:
            continue
        (out / f"{entry.stem}.png").write_bytes(png)
        (out / f"{entry.stem}.txt").write_text(
            f"Chapter {entry.number}. {entry.title}\n\n{entry.key_figure}\n", encoding="utf-8"
        )
        written.append(out / f"{entry.stem}.png")
    return written


# --------------------------------------------------------------------------------------------
# the page


def course_html(
    entries: list[CourseEntry], timings: dict, chapter_uri, figure_uri, figures: set[str]
) -> str:
    """The course page's body: the weekly plan, then one section per chapter.

    ``chapter_uri(stem)`` and ``figure_uri(stem)`` give the relative links; ``figures`` names the
    chapters whose key figure was exported (the others say so).
    """
    check_plan(entries)
    esc = html.escape
    link = {
        e.number: f'<a href="{esc(chapter_uri(e.stem))}">{e.number}. {esc(e.title)}</a>'
        for e in entries
    }
    parts = [
        '<table class="esser-course-plan"><thead><tr><th>week</th><th>chapters</th>'
        "<th>the lab: what it trains and measures</th><th>time on a CPU</th>"
        "<th>time on a GPU</th></tr></thead><tbody>"
    ]
    for week in sorted({e.week for e in entries}):
        group = [e for e in entries if e.week == week]
        parts.append(
            f"<tr><td>{week}</td><td>{'<br>'.join(link[e.number] for e in group)}</td>"
            f"<td>{'<br>'.join(esc(e.lab) for e in group)}</td>"
            f"<td>{'<br>'.join(esc(cpu_time(e.stem, timings)) for e in group)}</td>"
            f"<td>{'<br>'.join(esc(gpu_time(e.stem, timings)) for e in group)}</td></tr>"
        )
    parts.append("</tbody></table>")
    for entry in entries:
        needs = ", ".join(link.get(n, f"chapter {n}") for n in entry.chapters) or "none"
        parts.append(
            f'<section class="esser-course-chapter" id="course-{esc(entry.stem)}">'
            f"<h3>Week {entry.week}: {link[entry.number]}</h3>"
            f"<p><strong>Earlier chapters:</strong> {needs}. "
            f"<strong>Maths:</strong> {esc('; '.join(entry.maths))}.</p>"
            "<p><strong>After this chapter a student can</strong></p><ul>"
            + "".join(f"<li>{esc(goal)}</li>" for goal in entry.goals)
            + "</ul>"
        )
        if entry.stem in figures:
            uri = esc(figure_uri(entry.stem))
            parts.append(
                f'<figure class="esser-key-figure"><a href="{uri}"><img src="{uri}" '
                f'alt="{esc(entry.key_figure)}" loading="lazy"></a>'
                f'<figcaption>Key figure (for slides: <a href="{uri}">{esc(entry.stem)}.png'
                f"</a>): {esc(entry.key_figure)}</figcaption></figure>"
            )
        else:
            parts.append(
                f"<p><em>Key figure ({esc(entry.key_figure)}): not exported in this build (the "
                "chapter's executed notebook was not found).</em></p>"
            )
        parts.append("</section>")
    return "\n".join(parts)
