"""book/_ext/course.py: the course page and key figures, from metadata the chapters carry."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "book" / "_ext"))

import course  # noqa: E402

PNG = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _meta(**changes):
    meta = {
        "week": 2,
        "lab": "Train a thing; measure a claim.",
        "prerequisites": {"chapters": [1], "maths": ["variational inference"]},
        "goals": ["Explain the idea.", "Measure the claim."],
        "key_figure": "What the figure shows.",
    }
    meta.update(changes)
    return meta


def _chapter(number=3, meta=None, tags=("key-figure",), outputs=()):
    nb = nbformat.v4.new_notebook()
    nb.metadata["esser_lab"] = _meta() if meta is None else meta
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {number}. A title\n\nText."))
    cell = nbformat.v4.new_code_cell("plot()")
    cell.metadata["tags"] = list(tags)
    cell.outputs = list(outputs)
    nb.cells.append(cell)
    return nb


def _png_output():
    return nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"}
    )


def test_an_entry_is_read_from_the_notebooks_metadata():
    entry = course.entry_from_notebook(_chapter(), "03_probe")
    assert (entry.number, entry.title, entry.week, entry.chapters) == (3, "A title", 2, (1,))
    assert entry.goals == ("Explain the idea.", "Measure the claim.")


@pytest.mark.parametrize(
    ("nb", "match"),
    [
        (_chapter(meta={}), "missing fields"),
        (_chapter(meta=_meta(colour="red")), r"unknown fields \['colour'\]"),
        (_chapter(meta=_meta(week=0)), "week must be a positive int"),
        (_chapter(meta=_meta(week=True)), "week must be a positive int"),
        (_chapter(meta=_meta(prerequisites={"chapters": [3], "maths": ["x"]})), "earlier chapter"),
        (_chapter(meta=_meta(prerequisites={"chapters": []})), "must hold exactly"),
        (_chapter(meta=_meta(goals=["only one"])), "at least 2"),
        (_chapter(meta=_meta(lab=" ")), "lab must be a non-empty string"),
        (_chapter(tags=()), "exactly one code cell 'key-figure'"),
        (_chapter(number=4), "must open with '# 3. Title'"),
    ],
)
def test_bad_metadata_is_named(nb, match):
    with pytest.raises(course.CourseError, match=match):
        course.entry_from_notebook(nb, "03_probe")
    nb.metadata.pop("esser_lab")
    with pytest.raises(course.CourseError, match="no 'esser_lab:' block"):
        course.entry_from_notebook(nb, "03_probe")


def _entries():
    one = course.entry_from_notebook(
        _chapter(1, _meta(week=1, prerequisites={"chapters": [], "maths": ["a"]})), "01_one"
    )
    three = course.entry_from_notebook(_chapter(3), "03_three")
    return [one, three]


def test_the_plan_has_no_gap_and_teaches_prerequisites_first():
    entries = _entries()
    course.check_plan(entries)
    with pytest.raises(course.CourseError, match="without a gap"):
        course.check_plan(entries[1:])
    late = course.entry_from_notebook(
        _chapter(1, _meta(week=2, prerequisites={"chapters": [], "maths": ["a"]})), "01_one"
    )
    early = course.entry_from_notebook(_chapter(3, _meta(week=1)), "03_three")
    with pytest.raises(course.CourseError, match="teaches later"):
        course.check_plan([late, early])


def test_key_figures_are_exported_with_their_captions(tmp_path):
    entries = _entries()
    executed = {"01_one": _chapter(1, outputs=[_png_output()]), "03_three": _chapter(3)}
    written = course.write_key_figures(entries, executed, tmp_path)
    assert written == [tmp_path / "01_one.png"]
    assert (tmp_path / "01_one.png").read_bytes() == PNG
    assert "What the figure shows." in (tmp_path / "01_one.txt").read_text()
    assert course.key_figure_png(_chapter(3)) is None


def test_the_page_lists_weeks_times_goals_and_figures():
    timings = {("01_one", "tiny"): {"seconds": "41.6"}, ("03_three", "small"): {"seconds": "250"}}
    page = course.course_html(
        _entries(),
        timings,
        lambda s: f"../notebooks/{s}.html",
        lambda s: f"../key-figures/{s}.png",
        {"01_one"},
    )
    assert "42 s (tiny, 2 CPU cores)" in page and "250 s (small)" in page
    assert page.count("not yet measured") == 2  # 01's GPU time, 03's CPU time
    assert '<img src="../key-figures/01_one.png"' in page
    assert "not exported in this build" in page  # 03 has no figure
    assert (
        "Explain the idea." in page and '<a href="../notebooks/01_one.html">1. A title</a>' in page
    )


PROBE = """# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain a thing.
#     - Measure a thing.
#     key_figure: A line.
#     lab: Draw a line.
#     prerequisites:
#       chapters: []
#       maths:
#       - lines
#     week: 1
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. A probe

# %% tags=["key-figure"]
import matplotlib.pyplot as plt
from IPython.display import display

fig, ax = plt.subplots(figsize=(2, 1))
ax.plot([0, 1], [0, 1])
display(fig)
plt.close(fig)
"""


def test_the_build_exports_the_key_figure_from_the_executed_cache(tmp_path, monkeypatch):
    """The Sphinx hook (esser_pages._export_key_figures) on a chapter executed into a cache."""
    from types import SimpleNamespace

    import esser_pages
    import execute

    monkeypatch.setenv("ESSER_LAB_CARDS", str(tmp_path / "cards"))
    monkeypatch.setenv("ESSER_LAB_SCALE", "tiny")
    monkeypatch.setattr(execute, "stamp", lambda: {"sources": "fixed"})
    chapter = tmp_path / "01_probe.py"
    chapter.write_text(PROBE)
    cache = tmp_path / "cache"
    assert execute.execute([chapter], 1, cache) == 0
    monkeypatch.setattr(execute, "CACHE", cache)
    monkeypatch.setattr(esser_pages, "_chapters", lambda app: [("notebooks/01_probe", chapter)])
    app = SimpleNamespace(
        builder=SimpleNamespace(format="html"), outdir=str(tmp_path / "html"), env=SimpleNamespace()
    )
    esser_pages._export_key_figures(app)
    png = tmp_path / "html" / course.FIGURES_DIR / "01_probe.png"
    assert png.read_bytes().startswith(b"\x89PNG") and app.env.esser_key_figures == {"01_probe"}
    assert "A line." in (png.with_suffix(".txt")).read_text()


def test_every_chapter_carries_its_course_metadata_and_the_plan_holds():
    sys.path.insert(0, str(REPO / "book" / "_ext"))
    from colab import toc_chapters

    entries = [course.read_entry(REPO / f"{docname}.py") for docname in toc_chapters(REPO)]
    course.check_plan(entries)
    assert [e.number for e in entries] == sorted(e.number for e in entries)
    assert max(e.week for e in entries) <= 13  # a semester
