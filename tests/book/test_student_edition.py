"""The student edition (book/_ext/student_edition.py): solutions out, everything else unchanged.

Checked on every chapter of ``_toc.yml`` (as ``make colab`` builds them, without executing
anything) and on small notebooks that exercise the solution markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "book" / "_ext"))

import student_edition as se  # noqa: E402
from test_colab import CHAPTERS, colab  # noqa: E402


def _solution_lines(source: str) -> list[str]:
    """The lines a student must not see: a marked region's, else the whole cell's code lines."""
    lines = source.splitlines()
    begins = [i for i, line in enumerate(lines) if se.BEGIN.match(line)]
    ends = [i for i, line in enumerate(lines) if se.END.match(line)]
    if not begins:
        chosen = lines
    else:
        chosen = [line for b, e in zip(begins, ends, strict=True) for line in lines[b + 1 : e]]
    return [line.strip() for line in chosen if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("docname", CHAPTERS, ids=[Path(d).name for d in CHAPTERS])
def test_the_student_edition_drops_every_solution_and_keeps_every_other_cell(docname):
    full = colab.colab_notebook(REPO / f"{docname}.py", REPO)
    solutions = se.solution_cells(full)
    assert [n for n, _ in solutions] == list(range(1, len(solutions) + 1)) and solutions
    student = se.student_notebook(full, where=docname)
    in_solutions = {k for _, block in solutions for k in block}
    kept = [c for k, c in enumerate(full.cells) if k not in in_solutions]
    exercise_cells = [c for c in student.cells if se.STUDENT_TAG in c.metadata.get("tags", [])]
    others = [c for c in student.cells if se.STUDENT_TAG not in c.metadata.get("tags", [])]
    assert others == kept  # every other cell exactly as it was, in order
    assert len(exercise_cells) == len(solutions)
    text = nbformat.writes(student)
    for number, block in solutions:
        header = full.cells[block[0]].source
        assert header not in text and f"Solution {number}" not in text
        cell = exercise_cells[number - 1]
        assert cell.source.startswith(f"# Exercise {number}")
        for k in block[1:]:
            for line in _solution_lines(full.cells[k].source):
                assert line not in cell.source, f"solution {number} leaks {line!r}"
    nbformat.validate(student)


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        new = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(new(source))
    return nb


def test_a_marked_solution_keeps_its_scaffolding_and_checker_call():
    nb = _notebook(
        ("md", "# Title"),
        ("code", "x = 3"),
        ("md", "## Exercises\n\n1. Square it."),
        ("md", "```{admonition} Solution 1\n:class: dropdown\nThe square:\n```"),
        (
            "code",
            "data = [1, 2]\n# solution begins; students get: answer = None  # your code here\n"
            "answer = x ** 2\n# solution ends\nprint(check(answer))",
        ),
        ("md", "## References"),
    )
    student = se.student_notebook(nb)
    sources = [c.source for c in student.cells]
    assert sources == [
        "# Title",
        "x = 3",
        "## Exercises\n\n1. Square it.",
        "# Exercise 1\ndata = [1, 2]\nanswer = None  # your code here\nprint(check(answer))\n",
        "## References",
    ]
    assert nb.cells[4].source.count("x ** 2") == 1  # the full edition is untouched


def test_an_unmarked_solution_becomes_an_empty_cell_and_bad_markers_are_named():
    nb = _notebook(
        ("md", "## Exercises\n\n1. One.\n2. Two."),
        ("md", "```{admonition} Solution 1\n:class: dropdown\n```"),
        ("code", "secret = 42\nprint(secret)"),
        ("md", "```{admonition} Solution 2\n:class: dropdown\nIn words only.\n```"),
    )
    student = se.student_notebook(nb)
    assert [c.source for c in student.cells] == [
        "## Exercises\n\n1. One.\n2. Two.",
        "# Exercise 1: your code here\n",
    ]
    nb.cells[2].source = "# solution begins\nsecret = 42\n"
    with pytest.raises(se.StudentEditionError, match="solution 1 has unpaired"):
        se.student_notebook(nb, where="probe.py")
    with pytest.raises(se.StudentEditionError, match="no '## Exercises' section"):
        se.student_notebook(_notebook(("md", "# Title"), ("code", "x = 1")))


def test_the_badge_links_both_editions():
    coordinates = colab.Coordinates("o", "n", "colab")
    full = colab.colab_url(coordinates, "notebooks/05_iin")
    student = colab.colab_url(coordinates, "notebooks/05_iin", student=True)
    assert student == "https://colab.research.google.com/github/o/n/blob/colab/student/05_iin.ipynb"
    html = colab.badge_html(full, student)
    assert html.count("<a ") == 2 and "student version" in html and full in html
    assert "student version" not in colab.badge_html(full)
