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


def summary_entry(key: str = "shape", kind: str = "claim", holds: bool = True) -> dict:
    from esser_lab.cards import Claim, PaperPair

    claim = Claim(
        chapter="01_vunet",
        key=key,
        claim="a long claim " * 10,
        metric="m",
        our_value=0.1 if holds else 0.3,
        baseline="the U-Net",
        baseline_value=0.2,
        why="the paper's ablation",
        better="lower",
        scale="tiny",
        seed=0,
        seconds=1.0,
        paper=PaperPair(0.786, 0.762, "SSIM", "Table 1"),
        kind=kind,
    ).to_dict()
    return {**claim, "stem": "01_vunet", "href": "../notebooks/01_vunet.html#measuring"}


def test_summary_html_has_a_grid_and_one_row_per_claim():
    from esser_lab.cards import SeedVerdict

    entries = [summary_entry(), summary_entry("other", holds=False), summary_entry("c", "sanity")]
    verdicts = {("01_vunet", "shape", "tiny"): SeedVerdict(4, 5, 0.1, 0.02, ("abc",))}
    html = esser_pages.summary_html(entries, verdicts, {"01_vunet": []})
    assert html.count("<tr class=") == 3
    assert html.count('class="esser-cell good"') == 2  # the grid cell and the legend
    assert '<a class="esser-cell none"' in html  # "other" has no seeds recorded
    assert 'class="esser-cell sanity"' not in html  # sanity rows stay out of the grid
    assert "reproduced 4/5<br>0.100 ± 0.020" in html and "stale" not in html
    assert "0.786 vs 0.762 · SSIM (Table 1)" in html and "✗ 0.3 vs 0.2" in html
    assert "<details><summary><code>shape</code></summary><p>a long claim" in html
    stale = esser_pages.summary_html(entries, verdicts, {"01_vunet": ["abc-dirty"]})
    assert "stale: the chapter changed since" in stale
    row = {"seed": "0", "our_value": "0.1", "baseline_value": "0.2"}
    entries[0]["seed_rows"] = [row]  # the record holds this build's seed and numbers
    assert "stale" not in esser_pages.summary_html(entries, verdicts, {"01_vunet": ["abc-dirty"]})
    entries[0]["seed_rows"] = [{**row, "our_value": "0.15"}]
    assert "seed 0 gave other numbers" in esser_pages.summary_html(entries, verdicts, {})


def test_measuring_anchor_and_stale_commits(tmp_path):
    chapter = ROOT / "notebooks" / "01_vunet.py"
    assert esser_pages.measuring_anchor(chapter).startswith("measuring-the-claim")
    plain = tmp_path / "99_demo.py"
    plain.write_text("# %% [markdown]\n# ## Training\n")
    assert esser_pages.measuring_anchor(plain) == ""
    assert esser_pages.stale_commits(chapter, ("abc-dirty", "")) == ["abc-dirty", "(none)"]
    head = esser_pages._bench_module().commit([])
    assert esser_pages.stale_commits(chapter, (head.removesuffix("-dirty"),)) == []


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


def test_every_chapter_has_a_measuring_section():
    """The summary's overview grid links each chapter to its "Measuring the claim(s)" section."""
    for chapter in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        assert esser_pages.measuring_anchor(chapter), f"{chapter.name}: no '## Measuring' section"
