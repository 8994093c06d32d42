"""No measured number is typed into a chapter's prose.

Every number a run measures reaches the page through the run (generated Markdown from
``esser_lab.cards.Card`` or a cell's output), so the page cannot contradict its card on another
machine or seed. This test reads the Markdown cells of every chapter and flags numbers that look
measured — decimals, "≈ 21", percentages — unless they are listed in
``tests/book/paper_numbers/<chapter>.toml`` (the paper's own numbers, each with its source, and
the configuration values a chapter states, each with what it is). arXiv identifiers are always
allowed.
"""

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_DIR = Path(__file__).resolve().parent / "paper_numbers"

NUMBER = re.compile(r"(?:≈|~)\s*\d[\d.,]*|\b\d+\.\d+\b|\b\d+(?:\.\d+)?\s?%")
ARXIV = re.compile(r"\b\d{4}\.\d{4,5}\b")
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def allowed(stem: str) -> dict[str, str]:
    """``number = "what it is and where it comes from"`` from the chapter's TOML file."""
    path = ALLOWED_DIR / f"{stem}.toml"
    if not path.is_file():
        return {}
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    for number, source in table.items():
        assert isinstance(source, str) and source.strip(), f"{path}: {number} needs a source"
    return table


def markdown_cells(path: Path) -> list[str]:
    """The Markdown cells of a jupytext percent file, comment markers removed."""
    cells = re.split(r"^# %%", path.read_text(encoding="utf-8"), flags=re.M)
    return [
        "\n".join(
            line[2:] if line.startswith("# ") else line.lstrip("#")
            for line in cell.splitlines()[1:]
        )
        for cell in cells
        if cell.startswith(" [markdown]") or cell.startswith(" [md]")
    ]


def typed_numbers(text: str) -> list[str]:
    text = ARXIV.sub("", text)
    return [m.group(0).strip() for m in NUMBER.finditer(text)]


def normalise(number: str) -> str:
    return re.sub(r"^[≈~]\s*", "≈", number.replace(" ", "")).rstrip(".,")


def test_scanner_finds_measured_looking_numbers():
    found = typed_numbers("PSNR ≈21 dB, +0.6 dB, 60 % of codes, arXiv 2012.09841, 16 codes")
    assert [normalise(n) for n in found] == ["≈21", "0.6", "60%"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_prose_types_only_paper_and_configuration_numbers(chapter: Path):
    permitted = {normalise(n) for n in allowed(chapter.stem)}
    typed = [n for cell in markdown_cells(chapter) for n in typed_numbers(cell)]
    unexpected = sorted({normalise(n) for n in typed} - permitted)
    assert not unexpected, (
        f"{chapter.name}: numbers typed into the prose look measured: {unexpected}. Generate "
        "them in a cell (esser_lab.cards.Card.text / markdown), or, if they are the paper's "
        "numbers or configuration values, list them with their source in "
        f"tests/book/paper_numbers/{chapter.stem}.toml"
    )


def test_every_allowed_number_is_still_used():
    for chapter in CHAPTERS:
        typed = {normalise(n) for cell in markdown_cells(chapter) for n in typed_numbers(cell)}
        stale = sorted({normalise(n) for n in allowed(chapter.stem)} - typed)
        assert not stale, f"{chapter.stem}: allowed numbers no longer in the prose: {stale}"
