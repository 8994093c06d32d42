"""The built book in headless Chromium, offline: ``make book``, then ``make browser-test``.

Every chapter named in ``_toc.yml`` (``notebooks/NN_name``) loads with its figures, its maths
typeset by the site's own MathJax and its widgets drawn by the site's own widget manager, shows
no error output and links its Colab notebook; search finds chapter 1; no page asks for anything
but the local server. Screenshots go to ``_build/screenshots/``. See ``conftest.py`` for how the
browser is kept offline. ``make test`` deselects these tests (``-m "not browser"``): it runs
before the book is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHAPTER = re.compile(r"notebooks/\d{2}_[A-Za-z0-9_-]+")
COLAB_GITHUB = "https://colab.research.google.com/github"
SEARCH_TERM, SEARCH_EXPECTS = "VUNet", "notebooks/01_vunet.html"
SUMMARY = "book/summary.html"
# Screenshots a reviewer looks at: (page, file under _build/screenshots/, theme or None).
SCREENSHOT_PAGES = [
    ("notebooks/01_vunet.html", "01_vunet.png", None),
    (SUMMARY, "summary.png", None),
    ("notebooks/01_vunet.html", "01_vunet-dark.png", "dark"),
]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def toc_chapters() -> list[str]:
    """The chapters' docnames, ``notebooks/NN_name``, in the order of ``_toc.yml``."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            entry = node.get("file")
            if isinstance(entry, str):
                docname = re.sub(r"\.(py|ipynb|md)$", "", entry)
                if CHAPTER.fullmatch(docname):
                    found.append(docname)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8")))
    return found


CHAPTERS = toc_chapters()
PAGES = [f"{chapter}.html" for chapter in CHAPTERS] + [
    "book/intro.html",
    SUMMARY,
    f"search.html?q={SEARCH_TERM}",
]


def expected_colab_url(chapter: str, student: bool = False) -> str:
    """``https://colab.research.google.com/github/<owner>/<name>/blob/colab/notebooks/NN.ipynb``
    (``student``: ``.../blob/colab/student/NN.ipynb``)."""
    repository = _config()["repository"]
    owner, name = urlsplit(repository["url"]).path.strip("/").removesuffix(".git").split("/")[:2]
    branch = repository.get("colab_branch", "colab")
    path = chapter.replace("notebooks/", "student/", 1) if student else chapter
    return f"{COLAB_GITHUB}/{owner}/{name}/blob/{branch}/{path}.ipynb"


def _describe(page) -> str:
    facts = page.facts
    keys = ("maths", "mathsTypeset", "widgetViews", "widgets", "outputImages")
    summary = ", ".join(f"{key}={facts.get(key)}" for key in keys)
    return f"{page.url} ({summary}; settled={page.settled} after {page.seconds:.1f} s)"


@pytest.fixture(params=CHAPTERS)
def chapter(request) -> str:
    return request.param


def test_toc_names_chapters():
    assert CHAPTERS, "_toc.yml names no chapter (file: notebooks/NN_name)"


def test_chapter_loads(site, chapter: str):
    page = site.load(f"{chapter}.html")
    assert page.status == 200, f"{page.url}: HTTP {page.status}"
    assert page.facts["title"].strip(), f"{page.url}: empty <title>"
    assert page.facts["h1"], f"{page.url}: no <h1> in the article"
    assert page.settled, f"the page did not finish drawing: {_describe(page)}"


def test_chapter_images(site, chapter: str):
    page = site.load(f"{chapter}.html")
    broken = [image["src"][:120] for image in page.facts["images"] if image["width"] == 0]
    assert not broken, f"{page.url}: broken images: {broken}"
    assert page.facts["outputImages"] >= 1, f"no figure in the cell outputs: {_describe(page)}"


def test_chapter_maths(site, chapter: str):
    page = site.load(f"{chapter}.html")
    facts = page.facts
    assert facts["mathsTypeset"] == facts["maths"], f"maths not typeset: {_describe(page)}"
    if facts["maths"]:
        assert facts["mjxContainers"] > 0, f"MathJax drew nothing: {_describe(page)}"
    assert not facts["mathErrors"], f"{page.url}: TeX errors: {facts['mathErrors']}"


def test_chapter_widgets(site, chapter: str):
    page = site.load(f"{chapter}.html")
    facts = page.facts
    if not facts["widgetViews"]:
        pytest.skip(f"{chapter}: no widget on the page")
    assert facts["widgetState"] == 1, f"{page.url}: widget views but no widget state"
    assert facts["widgets"] >= facts["widgetViews"] and facts["widgetControls"] > 0, (
        f"the widget manager did not draw the widgets: {_describe(page)}"
    )
    assert not facts["widgetErrors"], f"{page.url}: {facts['widgetErrors']}"


def test_chapter_colab_badge(site, chapter: str):
    page = site.load(f"{chapter}.html")
    hrefs = page.facts["colabHrefs"]
    expected = {expected_colab_url(chapter), expected_colab_url(chapter, student=True)}
    assert hrefs, f"{page.url}: no a.esser-colab-badge"
    assert set(hrefs) == expected, f"{page.url}: Colab badge links {hrefs}, not {expected}"


def test_chapter_has_no_error_output(site, chapter: str):
    facts = site.load(f"{chapter}.html").facts
    assert not facts["tracebacks"], f"{chapter}: traceback outputs: {facts['tracebacks']}"
    assert not facts["errorOutputs"], f"{chapter}: error outputs: {facts['errorOutputs']}"
    assert not facts["stderr"], f"{chapter}: stderr outputs (myst-nb .output.stderr): " + repr(
        [text[:200] for text in facts["stderr"]]
    )


def test_figures_are_opaque(site, chapter: str):
    """Dark mode puts figures on a grey card: a transparent figure would turn unreadable."""
    site.show(f"{chapter}.html")
    transparent = site.browser.execute_script(
        """
        const out = [];
        for (const img of document.querySelectorAll('.cell_output img')) {
          const canvas = document.createElement('canvas');
          canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
          if (!canvas.width || !canvas.height) continue;
          const ctx = canvas.getContext('2d');
          ctx.drawImage(img, 0, 0);
          const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
          let clear = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] < 255) clear++;
          if (clear) out.push(`${(img.currentSrc || img.src).slice(0, 80)}: ${clear} px`);
        }
        return out;
        """
    )
    assert not transparent, f"{chapter}: figures with transparent pixels: {transparent}"


@pytest.mark.parametrize("path", PAGES)
def test_page_is_self_contained(site, path: str):
    """Nothing but the local server is asked for, nothing fails to load, no script error."""
    page = site.load(path)
    assert page.status == 200, f"{page.url}: HTTP {page.status}"
    foreign = page.foreign_requests()
    assert not foreign, f"{page.url} asked the internet for {foreign}"
    assert not page.failed, f"{page.url}: failed requests: {page.failed}"
    assert not page.console_errors, f"{page.url}: console errors: {page.console_errors}"


def test_search_finds_chapter_1(site):
    if SEARCH_EXPECTS.removesuffix(".html") not in CHAPTERS:
        pytest.skip(f"{SEARCH_EXPECTS} is not in _toc.yml")
    page = site.show(f"search.html?q={SEARCH_TERM}")
    found = site.wait_for(
        "return Array.from(document.querySelectorAll('#search-results a'))"
        ".map(a => a.getAttribute('href')).filter(h => h && h.includes(arguments[0]))",
        SEARCH_EXPECTS,
    )
    assert found, f"{page.url}: no result links to {SEARCH_EXPECTS}"


def test_summary_is_scannable(site):
    """The reproduction summary: a grid linking to each chapter, one compact row per claim."""
    page = site.show(SUMMARY)
    facts = site.browser.execute_script(
        "const rows = document.querySelectorAll('table.esser-summary tbody tr');"
        "const cells = Array.from(document.querySelectorAll('.esser-overview a.esser-cell'));"
        "return {height: document.documentElement.scrollHeight, rows: rows.length,"
        " cells: cells.length, tallest: Math.max(...Array.from(rows, r => r.offsetHeight)),"
        " links: cells.map(a => a.getAttribute('href'))};"
    )
    assert facts["cells"] >= len(CHAPTERS), f"{page.url}: the overview grid is missing cells"
    assert all(CHAPTER.search(href) and "#" in href for href in facts["links"]), facts["links"]
    # Compact: no row taller than a few lines, and the page grows by at most ~90 px a claim.
    assert facts["tallest"] <= 150, f"{page.url}: a summary row is {facts['tallest']} px tall"
    assert facts["height"] <= 1800 + 90 * facts["rows"], f"{page.url}: {facts}"


@pytest.mark.parametrize(("path", "name", "theme"), SCREENSHOT_PAGES)
def test_screenshot(site, path: str, name: str, theme: str | None):
    page = site.load(path)
    assert page.status == 200, f"{page.url}: HTTP {page.status} (no page to photograph)"
    shot: Path = site.screenshot(path, SCREENSHOTS / name, theme=theme)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
