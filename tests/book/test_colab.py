"""Colab: the badge links, the generated notebooks, the bootstrap cell and the ``colab`` branch.

Everything here is fast and offline. ``book/_ext/colab.py`` does the work (``make colab``,
``make publish-colab``, the badge on the chapter pages); these tests call its functions:

* the publishing coordinates come from ``_config.yml`` (``repository.url``, ``colab_branch``);
* every badge link has exactly the form ``https://colab.research.google.com/github/<owner>/<name>/
  blob/<branch>/notebooks/NN_name.ipynb``, and the badge needs nothing from the internet;
* ``make colab`` writes one valid notebook per chapter of ``_toc.yml``, without outputs, with a
  python3 kernelspec, starting with the bootstrap cell;
* the bootstrap cell is every chapter's first code cell; in the chapter's source it installs the
  repository's default branch, in a notebook built for Colab exactly the checkout's commit (HEAD),
  which is what ``make publish-colab`` publishes; it does nothing outside Colab, and on (a
  simulated) Colab installs only what Colab lacks without upgrading Colab's own torch,
  torchvision, numpy or matplotlib;
* publishing, in a throwaway git repository, creates and then advances the branch with the
  notebooks at ``notebooks/NN_name.ipynb``, pinned to HEAD, refuses notebooks pinned to another
  commit, and leaves HEAD, index and working tree alone.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import esser_lab

REPO = Path(__file__).resolve().parents[2]


def _load_extension():
    # By path: book/_ext is not a package. Registered before running it (dataclasses need that).
    name = "esser_colab_ext"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "book" / "_ext" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


colab = _load_extension()
CHAPTERS = colab.toc_chapters(REPO)
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
URL_FORM = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<owner>[^/]+)/(?P<name>[^/]+)"
    r"/blob/(?P<branch>[^/]+)/notebooks/(?P<stem>\d{2}_[A-Za-z0-9_-]+)\.ipynb"
)


def test_there_are_chapters() -> None:
    assert CHAPTERS, "_toc.yml lists no chapter"
    assert all(c.startswith("notebooks/") for c in CHAPTERS)


# --------------------------------------------------------------------------------------------
# The coordinates and the badge
# --------------------------------------------------------------------------------------------


def test_coordinates_come_from_config() -> None:
    repository = CONFIG["repository"]
    coordinates = colab.read_coordinates(REPO)
    assert coordinates.repository == repository["url"].rstrip("/").removesuffix(".git")
    assert f"https://github.com/{coordinates.owner}/{coordinates.name}" == coordinates.repository
    assert coordinates.branch == repository["colab_branch"]


@pytest.mark.parametrize(
    "url",
    ["https://github.com/a-b/c.d", "https://github.com/a-b/c.d/", "https://github.com/a-b/c.d.git"],
)
def test_parse_coordinates(url: str) -> None:
    coordinates = colab.parse_coordinates({"url": url, "colab_branch": "pub/colab"})
    assert (coordinates.owner, coordinates.name, coordinates.branch) == ("a-b", "c.d", "pub/colab")


@pytest.mark.parametrize(
    "repository",
    [
        {"url": "https://gitlab.com/a/b", "colab_branch": "colab"},
        {"url": "https://github.com/a", "colab_branch": "colab"},
        {"url": "https://github.com/a/b/tree/main", "colab_branch": "colab"},
        {"url": "https://github.com/a/b"},
        {"url": "https://github.com/a/b", "colab_branch": "two words"},
        {"url": "https://github.com/a/b", "colab_branch": "a..b"},
    ],
)
def test_parse_coordinates_rejects(repository: dict) -> None:
    with pytest.raises(colab.ColabError):
        colab.parse_coordinates(repository)


def test_badge_url_of_every_chapter() -> None:
    coordinates = colab.read_coordinates(REPO)
    for docname in CHAPTERS:
        url = colab.colab_url(coordinates, docname)
        stem = Path(docname).name
        expected = (
            f"https://colab.research.google.com/github/{coordinates.owner}/{coordinates.name}"
            f"/blob/{coordinates.branch}/notebooks/{stem}.ipynb"
        )
        assert url == expected
        match = URL_FORM.fullmatch(url)
        assert match and match["stem"] == stem
        # the same link from the file name
        assert colab.colab_url(coordinates, f"{docname}.py") == url


def test_badge_url_form() -> None:
    coordinates = colab.Coordinates("esser-lab", "esser-lab", "colab")
    assert colab.colab_url(coordinates, "notebooks/07_rectified_flow") == (
        "https://colab.research.google.com/github/esser-lab/esser-lab/blob/colab/"
        "notebooks/07_rectified_flow.ipynb"
    )
    for docname in ["book/intro", "notebooks/vunet", "notebooks/01_vunet/x", "01_vunet"]:
        with pytest.raises(ValueError):
            colab.colab_url(coordinates, docname)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs)
        self.sources += [v for k, v in attrs.items() if k in ("src", "srcset") and v]


def test_badge_html_is_offline_and_has_the_class() -> None:
    url = colab.colab_url(colab.read_coordinates(REPO), CHAPTERS[0])
    badge = colab.badge_html(url)
    parser = _Links()
    parser.feed(badge)
    assert len(parser.links) == 1
    link = parser.links[0]
    assert link["class"].split() == ["esser-colab-badge"]
    assert link["href"] == url
    assert not parser.sources, "the badge must not load an image"
    assert "Open in Colab" in badge and "<svg" in badge
    assert re.findall(r"https?://[^\s\"'<>]+", badge) == [url], "no other address in the badge"


def test_extension_puts_the_badge_under_the_chapter_title() -> None:
    from docutils import nodes
    from docutils.utils import new_document

    def page(title: str):
        document = new_document("page")
        section = nodes.section()
        section += nodes.title(text=title)
        section += nodes.paragraph(text="text")
        document += section
        return document

    app = types.SimpleNamespace(
        srcdir=str(REPO),
        builder=types.SimpleNamespace(format="html"),
        env=types.SimpleNamespace(doc2path=lambda docname, base=True: f"{docname}.py"),
    )
    docname = CHAPTERS[0]
    document = page("Chapter")
    colab._add_badge(app, document, docname)
    section = next(iter(document.findall(nodes.section)))
    assert isinstance(section[1], nodes.raw) and section[1]["format"] == "html"
    url = colab.colab_url(colab.read_coordinates(REPO), docname)
    assert f'class="esser-colab-badge" href="{url}"' in section[1].astext()

    for other in ("book/intro", docname):
        document = page("Other")
        if other == docname:  # a chapter written in markdown gets no badge
            app.env.doc2path = lambda d, base=True: f"{d}.md"
        colab._add_badge(app, document, other)
        assert not list(document.findall(nodes.raw))


def test_book_config_uses_the_extension_and_no_jb_colab_button() -> None:
    sphinx = CONFIG.get("sphinx") or {}
    assert (sphinx.get("local_extensions") or {}).get("colab") == "book/_ext"
    # JB1's own Colab button would link the .py chapter, which Colab cannot open.
    assert not (CONFIG.get("launch_buttons") or {}).get("colab_url")
    assert (REPO / "book" / "_static" / "esser-colab.css").is_file()


# --------------------------------------------------------------------------------------------
# The bootstrap cell
# --------------------------------------------------------------------------------------------


def test_package_version_is_read_from_the_source() -> None:
    assert colab.package_version(REPO) == esser_lab.__version__


def test_bootstrap_pins_a_full_commit_or_nothing() -> None:
    import nbformat

    repository = colab.read_coordinates(REPO).repository
    commit = "0123456789abcdef0123456789abcdef01234567"
    source = colab.bootstrap_source(REPO)
    pinned = colab.bootstrap_source(REPO, commit)
    assert f'package = "esser-lab @ git+{repository}"' in source  # the default branch
    assert f'package = "esser-lab @ git+{repository}@{commit}"' in pinned
    assert source.replace(f"{repository}", f"{repository}@{commit}", 1) == pinned
    for cell, pin in ((source, None), (pinned, commit)):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
        assert colab.bootstrap_pin(notebook) == pin
    for bad in ("v0.1.0", "main", commit[:12], commit.upper()):
        with pytest.raises(colab.ColabError, match="40 hex digits"):
            colab.bootstrap_source(REPO, bad)


@pytest.mark.parametrize("docname", CHAPTERS)
def test_every_chapter_starts_with_the_bootstrap_cell(docname: str) -> None:
    import jupytext

    notebook = jupytext.read(REPO / f"{docname}.py")
    problem = colab.bootstrap_problem(notebook, REPO)
    assert problem is None, f"{docname}.py {problem}: run `make colab-bootstrap`"
    source = colab.first_code_cell(notebook).source
    repository = colab.read_coordinates(REPO).repository
    assert f'"esser-lab @ git+{repository}"' in source  # unpinned: build() pins the commit


def test_bootstrap_installs_ranges_from_requirements_and_never_upgrades() -> None:
    source = colab.bootstrap_source(REPO)
    requirements = (REPO / "requirements.txt").read_text().split()
    for line in colab.requirement_ranges(REPO):
        assert line in requirements and f'"{line}"' in source
    assert "--no-deps" in source
    for flag in ("-U", "--upgrade", "--force-reinstall", "--pre"):
        assert f'"{flag}"' not in source


_SPAWNERS = [
    (subprocess, "run"),
    (subprocess, "Popen"),
    (subprocess, "call"),
    (subprocess, "check_call"),
    (subprocess, "check_output"),
    (os, "system"),
    (os, "popen"),
    (os, "execv"),
    (os, "execvp"),
    (os, "spawnv"),
]


def test_bootstrap_does_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"the bootstrap cell started a process outside Colab: {args}")

    for module, name in _SPAWNERS:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refuse)
    start = time.perf_counter()
    namespace = {"__name__": "__main__"}
    exec(compile(colab.bootstrap_source(REPO), "<bootstrap>", "exec"), namespace)
    assert time.perf_counter() - start < 1.0
    assert not calls
    assert "package" not in namespace  # the body never ran


def test_bootstrap_on_colab_installs_only_what_colab_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls: list[list[str]] = []

    def fake_run(command, *args, **kwargs):
        calls.append(list(command))
        assert kwargs.get("check") is True
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    bootstrap = colab.bootstrap_source(REPO, commit)  # as published
    exec(compile(bootstrap, "<bootstrap>", "exec"), {"__name__": "__main__"})

    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    repository = colab.read_coordinates(REPO).repository
    package = f"esser-lab @ git+{repository}@{commit}"
    # First what Colab lacks, then the package without dependencies (installed last, so that pip
    # does not hold the package's ranges against Colab's versions, e.g. its ipywidgets 7).
    assert len(calls) == 2 and calls[1] == [*pip, "--no-deps", package]
    assert calls[0][: len(pip)] == pip
    arguments = calls[0][len(pip) :]
    lacking = colab.requirement_ranges(REPO)
    assert arguments[: len(lacking)] == lacking
    # Colab's own packages: exactly the installed version, so pip keeps them as they are.
    pinned = arguments[len(lacking) :]
    for name in ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets"):
        assert f"{name}=={importlib.metadata.version(name)}" in pinned
    assert all("==" in argument for argument in pinned)
    assert not any(a.startswith("-") for a in arguments)


# --------------------------------------------------------------------------------------------
# make colab: the notebooks
# --------------------------------------------------------------------------------------------


def test_build_writes_one_valid_notebook_per_chapter(tmp_path: Path) -> None:
    import nbformat

    written = colab.build(REPO, tmp_path / "colab")
    expected = [tmp_path / "colab" / "notebooks" / f"{Path(d).name}.ipynb" for d in CHAPTERS]
    assert written == expected
    assert sorted((tmp_path / "colab" / "notebooks").iterdir()) == sorted(expected)
    head = _git(REPO, "rev-parse", "HEAD")
    bootstrap = colab.bootstrap_source(REPO, head)  # pinned to the checkout's commit
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.nbformat == 4 and notebook.nbformat_minor >= 5
        kernelspec = notebook.metadata["kernelspec"]
        assert kernelspec["name"] == "python3" and kernelspec["language"] == "python"
        assert "jupytext" not in notebook.metadata
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code)
        assert code[0].source == bootstrap and colab.bootstrap_pin(notebook) == head
        assert notebook.cells[0].cell_type == "markdown"
        assert notebook.cells[0].source.startswith("# ")
        assert len({cell.id for cell in notebook.cells}) == len(notebook.cells)
    # Stable output: publishing twice without a change gives the same files.
    first = [path.read_bytes() for path in written]
    assert [path.read_bytes() for path in colab.build(REPO, tmp_path / "colab")] == first
    # Unpinned (as outside a git checkout): the chapter's own cell, the default branch.
    for path in colab.build(REPO, tmp_path / "unpinned", pin=False):
        notebook = nbformat.read(path, as_version=4)
        assert colab.first_code_cell(notebook).source == colab.bootstrap_source(REPO)
        assert colab.bootstrap_pin(notebook) is None


def test_build_outside_a_git_checkout_installs_the_default_branch(tmp_path: Path) -> None:
    import nbformat

    root = tmp_path / "book"
    root.mkdir()
    _make_book(root)
    assert colab.head_commit(root) is None
    for path in colab.build(root, tmp_path / "out"):
        assert colab.bootstrap_pin(nbformat.read(path, as_version=4)) is None


# --------------------------------------------------------------------------------------------
# A throwaway book and git repository for the bootstrap writer and for publishing
# --------------------------------------------------------------------------------------------

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


EXERCISES = """
# %% [markdown]
# ## Exercises
#
# 1. Double it.

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# Twice x:
# ```

# %% tags=["hide-input"]
print(2 * x)
"""


def _chapter(title: str, body: str = "x = 1") -> str:
    return HEADER + f"\n# %% [markdown]\n# # {title}\n#\n# Text.\n\n# %%\n{body}\n" + EXERCISES


def _make_book(root: Path, version: str = "0.1.0") -> None:
    (root / "notebooks").mkdir(parents=True)
    (root / "esser_lab").mkdir()
    (root / "book").mkdir()
    (root / "_config.yml").write_text(
        "title: probe\nrepository:\n  url: https://github.com/probe-org/probe-book\n"
        "  branch: main\n  colab_branch: colab\n"
    )
    (root / "_toc.yml").write_text(
        textwrap.dedent(
            """\
            format: jb-book
            root: book/intro
            parts:
              - caption: A
                chapters:
                  - file: notebooks/01_first
                  - file: book/notes
              - caption: B
                chapters:
                  - file: notebooks/02_second
                    sections:
                      - file: notebooks/03_third
            """
        )
    )
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "notes.md").write_text("# Notes\n")
    (root / "requirements.txt").write_text(
        "torch>=2.4,<3\nlightning>=2.4,<3  # comment\neinops>=0.8,<1\nsafetensors>=0.4,<1\n"
    )
    (root / "esser_lab" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (root / ".gitignore").write_text("_build/\n")
    for stem in ("01_first", "02_second", "03_third"):
        (root / "notebooks" / f"{stem}.py").write_text(_chapter(stem))
        colab.write_bootstrap(root / "notebooks" / f"{stem}.py", root)


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A git identity and no user or system configuration for the throwaway repositories."""
    for key, value in {
        "GIT_AUTHOR_NAME": "probe",
        "GIT_AUTHOR_EMAIL": "probe@example.invalid",
        "GIT_COMMITTER_NAME": "probe",
        "GIT_COMMITTER_EMAIL": "probe@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GIT_INDEX_FILE", raising=False)
    monkeypatch.delenv("GIT_DIR", raising=False)


@pytest.fixture
def book_repo(tmp_path: Path, git_env) -> Path:
    root = tmp_path / "book"
    root.mkdir()
    _make_book(root)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "book")
    return root


def _snapshot(root: Path) -> dict:
    """HEAD, the index file and every file of the working tree but _build/ (git-ignored)."""
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in (".git", "_build")
    }
    return {
        "HEAD": (root / ".git" / "HEAD").read_text(),
        "head commit": _git(root, "rev-parse", "HEAD"),
        "index": (root / ".git" / "index").read_bytes(),
        "status": _git(root, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


def test_write_bootstrap_inserts_then_updates(tmp_path: Path) -> None:
    import jupytext

    root = tmp_path / "book"
    root.mkdir()
    _make_book(root)
    path = root / "notebooks" / "01_first.py"
    path.write_text(_chapter("First", body="y = 2\n\n# %%\nz = 3"))
    assert colab.bootstrap_problem(jupytext.read(path), root) == (
        "does not start with the Colab bootstrap cell"
    )
    assert colab.write_bootstrap(path, root)
    notebook = jupytext.read(path)
    assert colab.bootstrap_problem(notebook, root) is None
    assert [c.source for c in notebook.cells[2:4]] == ["y = 2", "z = 3"]
    assert notebook.cells[1].metadata["tags"] == ["hide-input"]
    assert '"esser-lab @ git+https://github.com/probe-org/probe-book"' in notebook.cells[1].source
    assert not colab.write_bootstrap(path, root)  # already up to date

    # A new requirement range makes the cell outdated; rewriting replaces it, adds no second one.
    requirements = root / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("einops>=0.8,<1", "einops>=0.9,<1"))
    assert "outdated" in colab.bootstrap_problem(jupytext.read(path), root)
    with pytest.raises(colab.ColabError, match="make colab-bootstrap"):
        colab.build(root, tmp_path / "out")
    assert colab.write_bootstrap(path, root)
    notebook = jupytext.read(path)
    assert colab.bootstrap_problem(notebook, root) is None
    assert '"einops>=0.9,<1"' in notebook.cells[1].source
    assert [c.source for c in notebook.cells[2:4]] == ["y = 2", "z = 3"]
    assert sum(colab.BOOTSTRAP_GUARD in c.source for c in notebook.cells) == 1


def test_toc_chapters_in_order(tmp_path: Path) -> None:
    root = tmp_path / "book"
    root.mkdir()
    _make_book(root)
    assert colab.toc_chapters(root) == [
        "notebooks/01_first",
        "notebooks/02_second",
        "notebooks/03_third",
    ]


def test_publish_creates_then_advances_the_branch(book_repo: Path) -> None:
    root = book_repo
    out = root / "_build" / "colab"
    colab.build(root, out)
    before = _snapshot(root)
    head = before["head commit"]

    logged: list[str] = []
    first = colab.publish(root, out, log=logged.append)
    assert first and _git(root, "rev-parse", "refs/heads/colab") == first
    assert _snapshot(root) == before, "publishing touched HEAD, the index or the working tree"
    names = _git(root, "ls-tree", "-r", "--name-only", "colab").splitlines()
    assert names == [
        "README.md",
        "notebooks/01_first.ipynb",
        "notebooks/02_second.ipynb",
        "notebooks/03_third.ipynb",
        "student/01_first.ipynb",
        "student/02_second.ipynb",
        "student/03_third.ipynb",
    ]
    for stem in ("01_first", "02_second", "03_third"):
        blob = _git(root, "show", f"colab:notebooks/{stem}.ipynb")
        assert blob == (out / "notebooks" / f"{stem}.ipynb").read_text().strip()
        # the published notebook installs the package at the commit it was published from
        assert f"esser-lab @ git+https://github.com/probe-org/probe-book@{head}" in blob
        student = _git(root, "show", f"colab:student/{stem}.ipynb")
        assert student == (out / "student" / f"{stem}.ipynb").read_text().strip()
        assert "2 * x" in blob and "2 * x" not in student and "Exercise 1: your code" in student
        assert f"probe-book@{head}" in student
    assert _git(root, "log", "--format=%P", "-1", first) == ""  # the branch's first commit
    message = _git(root, "log", "--format=%B", "-1", first)
    assert f"main@{head[:12]}" in message and head in message and "0.1.0" in message
    assert any("git push origin colab" in line for line in logged)
    # warns: the pinned commit is on no remote branch yet, so Colab could not install it
    assert any(f"{head[:12]} is on no remote-tracking branch" in line for line in logged)

    # Nothing changed: nothing to commit.
    colab.build(root, out)
    assert colab.publish(root, out, log=logged.append) is None
    assert _git(root, "rev-parse", "refs/heads/colab") == first

    # A changed chapter, committed and pushed (a remote-tracking branch holds it): notebooks
    # built before the commit pin the old HEAD and are refused; rebuilt, one more commit on top.
    (root / "notebooks" / "02_second.py").write_text(
        (root / "notebooks" / "02_second.py").read_text() + "\n# %%\nw = 4\n"
    )
    _git(root, "commit", "-q", "-am", "second chapter grows")
    _git(root, "update-ref", "refs/remotes/origin/main", "HEAD")
    with pytest.raises(colab.ColabError, match=f"installs esser-lab at {head[:12]}.*make colab"):
        colab.publish(root, out, log=logged.append)
    colab.build(root, out)
    before = _snapshot(root)
    logged.clear()
    second = colab.publish(root, out, log=logged.append)
    assert second and second != first
    assert _git(root, "rev-parse", "refs/heads/colab") == second
    assert _git(root, "log", "--format=%P", "-1", second) == first
    assert _git(root, "rev-list", "--count", "colab") == "2"
    assert _snapshot(root) == before
    assert "w = 4" in _git(root, "show", "colab:notebooks/02_second.ipynb")
    head = _git(root, "rev-parse", "HEAD")
    assert head in _git(root, "log", "--format=%B", "-1", second)
    assert head in _git(root, "show", "colab:notebooks/01_first.ipynb")  # every notebook
    assert not any("warning" in line for line in logged)
    assert _git(root, "symbolic-ref", "HEAD") == "refs/heads/main"

    # Only the package changes: the notebooks follow it (a new pin), no chapter changed.
    (root / "esser_lab" / "new.py").write_text("x = 1\n")
    _git(root, "add", "esser_lab/new.py")
    _git(root, "commit", "-q", "-m", "package grows")
    colab.build(root, out)
    third = colab.publish(root, out, log=logged.append)
    assert third and _git(root, "log", "--format=%P", "-1", third) == second
    new_head = _git(root, "rev-parse", "HEAD")
    assert f"probe-book@{new_head}" in _git(root, "show", "colab:notebooks/03_third.ipynb")


def test_publish_refuses_uncommitted_sources_and_stale_output(book_repo: Path) -> None:
    root = book_repo
    out = root / "_build" / "colab"
    colab.build(root, out)

    chapter = root / "notebooks" / "01_first.py"
    chapter.write_text(chapter.read_text() + "\n# %%\nv = 5\n")
    colab.build(root, out)
    with pytest.raises(colab.ColabError, match="uncommitted changes"):
        colab.publish(root, out, log=lambda line: None)
    # The package is what the notebooks install (at HEAD): uncommitted changes there count too.
    _git(root, "commit", "-q", "-am", "first chapter grows")
    colab.build(root, out)
    (root / "esser_lab" / "extra.py").write_text("y = 1\n")
    with pytest.raises(colab.ColabError, match="esser_lab/extra.py"):
        colab.publish(root, out, log=lambda line: None)
    (root / "esser_lab" / "extra.py").unlink()
    chapter.write_text(chapter.read_text() + "\n# %%\nu = 6\n")
    colab.build(root, out)
    assert _git(root, "branch", "--list", "colab") == ""
    commit = colab.publish(root, out, allow_dirty=True, log=lambda line: None)
    assert "with uncommitted changes" in _git(root, "log", "--format=%B", "-1", commit)
    assert "M notebooks/01_first.py" in _git(root, "status", "--porcelain")  # still uncommitted

    # A notebook left over from a chapter that is no longer in _toc.yml.
    (out / "notebooks" / "09_gone.ipynb").write_text("{}")
    with pytest.raises(colab.ColabError, match="make colab"):
        colab.publish(root, out, allow_dirty=True, log=lambda line: None)


def test_publish_refuses_a_checked_out_colab_branch(book_repo: Path) -> None:
    root = book_repo
    out = root / "_build" / "colab"
    colab.build(root, out)
    _git(root, "checkout", "-q", "-b", "colab")
    with pytest.raises(colab.ColabError, match="checked out"):
        colab.publish(root, out, log=lambda line: None)


# --------------------------------------------------------------------------------------------
# Housekeeping: licence and citation
# --------------------------------------------------------------------------------------------


def test_citation_matches_version_and_repository() -> None:
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == esser_lab.__version__
    assert citation["repository-code"] == colab.read_coordinates(REPO).repository
    assert citation["license"] == "MIT"
    assert citation["authors"] == [{"name": "the esser-lab authors"}]
    assert citation["message"] == "If you use esser-lab, please cite it and the original papers."
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert "CC BY 4.0" in (REPO / "LICENSE-TEXT.md").read_text()
