"""The generated book pages (book/_ext/esser_pages.py): import parsing and the lineage plan."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import esser_pages  # noqa: E402


def test_imports_are_parsed_from_a_chapter(tmp_path):
    chapter = tmp_path / "99_demo.py"
    chapter.write_text(
        "# %% [markdown]\n# # Title\n\n# %%\n"
        "import torch\nfrom esser_lab import scale as scales\n"
        "from esser_lab.vunet import VUNet\nimport esser_lab.data.figures\n"
        "from esser_lab.vunet import transfer\n"
    )
    assert esser_pages._imports(chapter) == [
        "esser_lab.scale",
        "esser_lab.vunet",
        "esser_lab.data.figures",
    ]


def test_every_chapter_is_in_the_lineage():
    planned = {stem for _, _, _, stem in esser_pages.LINEAGE if stem}
    chapters = {path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}
    assert chapters <= planned, f"add {sorted(chapters - planned)} to LINEAGE in esser_pages.py"
    years = [year for year, _, _, _ in esser_pages.LINEAGE]
    numbers = [number for _, number, _, _ in esser_pages.LINEAGE]
    assert years == sorted(years) and numbers == list(range(1, len(numbers) + 1))
    for _, number, _, stem in esser_pages.LINEAGE:
        assert stem is None or stem.startswith(f"{number:02d}_")


def test_chapter_one_imports_what_it_introduces():
    modules = esser_pages._imports(ROOT / "notebooks" / "01_vunet.py")
    assert "esser_lab.vunet" in modules and "esser_lab.data" in modules


def test_summary_rows_match_the_header():
    from esser_lab.cards import Claim

    claim = Claim(
        chapter="01_vunet",
        claim="c",
        metric="m",
        paper_value=None,
        paper_source="unverified",
        our_value=0.1,
        baseline_value=0.2,
        criterion="our < baseline",
        scale="tiny",
        seed=0,
        seconds=1.0,
    ).to_dict()
    row = esser_pages.claim_row("01_vunet", claim)
    assert len(row) == len(esser_pages.SUMMARY_HEADERS) == len(esser_pages.SUMMARY_WIDTHS)
    assert row[-2].startswith("✓ holds") and "tiny" in row[-2]
    assert row[-1] == "–"  # no seeds recorded for it
    table = esser_pages._table(esser_pages.SUMMARY_HEADERS, [row], esser_pages.SUMMARY_WIDTHS)
    assert len(list(table.findall(lambda n: n.tagname == "entry"))) == 2 * len(row)
    seeds = {("01_vunet", "c", "tiny"): [True, False, True]}
    assert esser_pages.claim_row("01_vunet", claim, seeds)[-1] == "holds in 2 of 3"


def test_seed_record_reads_the_bench_file(tmp_path):
    path = tmp_path / "claims_seeds.csv"
    path.write_text(
        "chapter,claim,seed,our_value,baseline_value,scale,holds\n"
        '04_rodi,"a, b",0,0.1,0.2,tiny,true\n04_rodi,"a, b",1,0.3,0.2,tiny,false\n'
    )
    assert esser_pages.seed_record(path) == {("04_rodi", "a, b", "tiny"): [True, False]}
    assert esser_pages.seed_record(tmp_path / "missing.csv") == {}


def test_table_rejects_ragged_rows():
    import pytest

    with pytest.raises(ValueError, match="cells for 2 columns"):
        esser_pages._table(["a", "b"], [["1", "2", "3"]])


def test_bibliography_labels_are_unique_across_the_book(tmp_path):
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    ero = "author={Esser, P. and Rombach, R. and Ommer, B.}, year={2020}"
    (tmp_path / "refs.bib").write_text(
        f"@misc{{esser2020iin, {ero}, title={{A}}}}\n"
        f"@misc{{esser2020biases, {ero}, title={{B}}}}\n"
        "@misc{ho2020ddpm, author={Ho, J. and Jain, A. and Abbeel, P.}, year={2020}, title={C}}\n"
    )
    esser_pages._register_bibliography_style(["refs.bib"], str(tmp_path))
    entries = parse_file(str(tmp_path / "refs.bib")).entries
    labels = find_plugin("pybtex.style.labels", "esser_unique_alpha")()
    # one entry at a time, as a page's filtered bibliography may hold only one of the pair
    got = {key: next(labels.format_labels([entries[key]])) for key in entries}
    assert got == {"esser2020iin": "ERO20b", "esser2020biases": "ERO20a", "ho2020ddpm": "HJA20"}
    assert find_plugin("pybtex.style.formatting", "esser")().label_style is not None
