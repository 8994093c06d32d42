"""The student edition of a chapter: its exercises kept, their solutions taken out.

Every chapter ends with ``## Exercises`` and, for each exercise N, a folded solution: a Markdown
cell that opens ``{admonition} Solution N`` (its text) followed by the code cell(s) that compute
the answer. The student edition (``make colab`` writes it beside the full one, see ``colab.py``)
drops the Markdown of every solution and replaces its code with a cell for the student:

* a solution cell without markers becomes ``# Exercise N: your code here``;
* a solution cell may mark the part that *is* the answer, so the scaffolding around it stays
  (the set-up before, and the call of the exercise's checker after, which the full edition runs
  too, so the book's build proves the checker accepts the solution)::

      # solution begins; students get: fraction = None  # your code here
      fraction = float(((t - 0.5).abs() < 0.1).float().mean())
      # solution ends
      print(check_fraction(fraction))

  The lines between the markers are replaced by what follows ``students get:`` (several lines
  may be given, separated by `` ; ``; nothing after it: ``# your code here``).

Everything else in the notebook is left exactly as it is.
"""

from __future__ import annotations

import copy
import re

SOLUTION_HEADER = re.compile(r"\A\s*```\{admonition\}\s+Solution\s+(?P<n>\d+)")
EXERCISES_HEADER = re.compile(r"\A\s*## Exercises\b")
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# solution begins(?:; students get:(?P<gets>.*))?$")
END = re.compile(r"^[ \t]*# solution ends\s*$")
STUDENT_TAG = "exercise"  # the tag a student's cell carries (no hide-input: it is theirs to edit)


class StudentEditionError(ValueError):
    """A chapter whose exercises or solution markers do not follow the convention above."""


def _student_source(source: str, number: int, where: str) -> str:
    """The student's version of one solution cell's code."""
    lines = source.splitlines()
    begins = [i for i, line in enumerate(lines) if BEGIN.match(line)]
    ends = [i for i, line in enumerate(lines) if END.match(line)]
    if not begins and not ends:
        return f"# Exercise {number}: your code here\n"
    if len(begins) != len(ends) or any(b >= e for b, e in zip(begins, ends, strict=False)):
        raise StudentEditionError(
            f"{where}: solution {number} has unpaired '# solution begins' / '# solution ends' "
            "markers (each region opens with the first and closes with the second)"
        )
    out: list[str] = []
    cursor = 0
    for b, e in zip(begins, ends, strict=True):
        out.extend(lines[cursor:b])
        match = BEGIN.match(lines[b])
        indent, gets = match["indent"], (match["gets"] or "").strip()
        replacement = [part.strip() for part in gets.split(" ; ")] if gets else []
        out.extend(indent + line for line in (replacement or ["# your code here"]))
        cursor = e + 1
    out.extend(lines[cursor:])
    return "\n".join([f"# Exercise {number}", *out]) + "\n"


def solution_cells(notebook) -> list[tuple[int, list[int]]]:
    """``(number, [cell indices])`` of each folded solution: its Markdown header and its code."""
    cells = notebook.cells
    start = next(
        (
            i
            for i, c in enumerate(cells)
            if c.cell_type == "markdown" and EXERCISES_HEADER.match(c.source)
        ),
        None,
    )
    if start is None:
        return []
    found: list[tuple[int, list[int]]] = []
    i = start + 1
    while i < len(cells):
        match = SOLUTION_HEADER.match(cells[i].source) if cells[i].cell_type == "markdown" else None
        if match is None:
            i += 1
            continue
        block = [i]
        i += 1
        while i < len(cells) and cells[i].cell_type == "code":
            block.append(i)
            i += 1
        found.append((int(match["n"]), block))
    return found


def student_notebook(notebook, where: str = "the chapter"):
    """A copy of ``notebook`` (nbformat) with every folded solution replaced by a student's cell."""
    solutions = solution_cells(notebook)
    if not solutions:
        raise StudentEditionError(f"{where} has no '## Exercises' section with folded solutions")
    student = copy.deepcopy(notebook)
    drop: set[int] = set()
    for number, block in solutions:
        header, code = block[0], block[1:]
        drop.add(header)
        if not code:
            continue  # a solution in words only: the exercise's text already asks the question
        first = student.cells[code[0]]
        parts: list[str] = []
        for k in code:  # a solution in several code cells becomes one student cell
            part = _student_source(notebook.cells[k].source, number, where)
            if part not in parts:
                parts.append(part)
        first.source = "\n".join(parts)
        first.metadata = {"tags": [STUDENT_TAG]}
        first.outputs, first.execution_count = [], None
        drop.update(code[1:])
    student.cells = [c for k, c in enumerate(student.cells) if k not in drop]
    return student
