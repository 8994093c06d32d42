"""Open in Colab: a badge on every chapter page, Colab notebooks, and the ``colab`` branch.

Colab opens only ``.ipynb`` files; the chapters are jupytext percent ``.py`` files. So:

* ``make colab`` (``python book/_ext/colab.py build``) converts every chapter named in
  ``_toc.yml`` into ``_build/colab/notebooks/NN_name.ipynb`` (as ``jupytext --to ipynb`` does;
  no outputs, a python3 kernelspec, cell ids that do not change from one run to the next), with
  the bootstrap cell pinned to the checkout's commit (``git rev-parse HEAD``; outside a git
  checkout it stays unpinned and installs the repository's default branch), and beside it the
  chapter's *student edition*, ``_build/colab/student/NN_name.ipynb``: the same notebook with the
  exercises' solutions replaced by a cell for the student (``student_edition.py``).
* ``make publish-colab`` (``python book/_ext/colab.py publish``) commits those files to the local
  branch ``colab``, at ``notebooks/NN_name.ipynb`` and ``student/NN_name.ipynb``, on top of the
  branch's previous tip. It uses git plumbing only (``hash-object``, a temporary index,
  ``write-tree``, ``commit-tree``, ``update-ref``), so the checkout's HEAD, index and working
  tree stay as they are. It refuses notebooks whose pin is not HEAD (built before HEAD moved).
  Pushing HEAD's branch and then this one (``git push origin main colab``) is the maintainer's
  deploy step.
* Loaded by Sphinx (``sphinx: local_extensions: {colab: book/_ext}`` in ``_config.yml``), it puts
  an "Open in Colab" link, ``<a class="esser-colab-badge">``, under the title of every page built
  from ``notebooks/NN_name.py``, and a second one, "Open in Colab — student version". The links
  point at that chapter's notebooks on the branch (:func:`colab_url`). Badge and logo are plain
  HTML, CSS and inline SVG: nothing is fetched when the page is viewed.
* Every chapter's first code cell is the Colab bootstrap (:func:`bootstrap_source`). On Colab it
  installs ``esser_lab`` at the commit the notebook was published from (the chapter's source
  names no commit; :func:`build` writes it into the notebook, see :func:`bootstrap_source`) and
  the few dependencies Colab lacks, and it pins Colab's own torch, torchvision, numpy, matplotlib
  and ipywidgets so pip never upgrades them; anywhere else it does nothing. ``make colab``
  refuses a chapter whose cell differs from the one generated here; ``make colab-bootstrap``
  rewrites the cell in every chapter.

The publishing coordinates are kept in one place, ``_config.yml``::

    repository:
      url: https://github.com/<owner>/<name>   # also the book's repository button
      colab_branch: colab                      # the branch that holds the Colab notebooks

The badge, the bootstrap cell, the Makefile targets and the tests all get them from
:func:`read_coordinates`.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # book/_ext is not a package
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_edition import student_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("_build") / "colab"
BADGE_CLASS = "esser-colab-badge"
STUDENT_DIR = "student"  # the student edition's folder, under the output and on the branch
COLAB_GITHUB = "https://colab.research.google.com/github"
# A chapter's Sphinx docname: notebooks/NN_name (its source is notebooks/NN_name.py).
CHAPTER_DOCNAME = re.compile(r"notebooks/(\d{2}_[A-Za-z0-9_-]+)")
# The package's dependencies that Colab does not ship, or may ship too old. Their version ranges
# come from requirements.txt. (Colab ships torch, torchvision, numpy, matplotlib, scikit-learn,
# ipywidgets and pillow.)
COLAB_LACKS = ("lightning", "einops", "safetensors")
# What the bootstrap marks the cell with; also how `make colab-bootstrap` recognises an old one.
BOOTSTRAP_GUARD = 'if "google.colab" in sys.modules:'
BOOTSTRAP_TAGS = ["hide-input"]

BOOTSTRAP_TEMPLATE = """\
# Runs on Colab only: anywhere else (a checkout, CI, the book) this cell does nothing.
import sys

{guard}
    import importlib
    import subprocess
    from importlib.metadata import version

    # Only what Colab lacks, with Colab's own torch, torchvision, numpy, matplotlib and ipywidgets
    # pinned to the versions it has (so pip never upgrades them); then esser_lab without its
    # dependencies, at the commit `make publish-colab` published this notebook from (no commit
    # in the chapter's source: the repository's default branch).
    lacking = [{lacking}]
    colab_own = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets")
    keep = [f"{{name}}=={{version(name)}}" for name in colab_own]
    package = "esser-lab @ git+{repository}{pin}"
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *lacking, *keep], check=True)
    subprocess.run([*pip, "--no-deps", package], check=True)
    importlib.invalidate_caches()
    print("installed esser-lab", version("esser-lab"), "from", package)"""


class ColabError(RuntimeError):
    """A problem that stops `make colab` or `make publish-colab`; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# The coordinates: _config.yml
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coordinates:
    """Where the Colab notebooks are published: ``github.com/<owner>/<name>``, branch ``branch``."""

    owner: str
    name: str
    branch: str

    @property
    def repository(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"


_GITHUB_URL = re.compile(
    r"https://github\.com/(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?"
)
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def parse_coordinates(repository: dict) -> Coordinates:
    """The coordinates from the ``repository:`` mapping of ``_config.yml``."""
    url = str(repository.get("url", ""))
    match = _GITHUB_URL.fullmatch(url)
    if match is None:
        raise ColabError(
            f"_config.yml: repository.url must be https://github.com/<owner>/<name>, got {url!r}"
        )
    branch = str(repository.get("colab_branch", ""))
    if not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith((".lock", "/")):
        raise ColabError(f"_config.yml: repository.colab_branch is not a branch name: {branch!r}")
    return Coordinates(match["owner"], match["name"], branch)


def read_coordinates(root: Path = ROOT) -> Coordinates:
    """The publishing coordinates from ``<root>/_config.yml`` (``repository.url`` and
    ``repository.colab_branch``)."""
    import yaml

    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8")) or {}
    return parse_coordinates(config.get("repository") or {})


def colab_url(coordinates: Coordinates, docname: str, *, student: bool = False) -> str:
    """The Colab link of a chapter, from its docname (``notebooks/NN_name``) or file name;
    ``student``: its student edition (``student/NN_name.ipynb`` on the branch)."""
    docname = str(docname).removesuffix(".py").removesuffix(".ipynb")
    match = CHAPTER_DOCNAME.fullmatch(docname)
    if match is None:
        raise ValueError(f"not a chapter (notebooks/NN_name): {docname!r}")
    c = coordinates
    path = f"{STUDENT_DIR}/{match[1]}" if student else docname
    return f"{COLAB_GITHUB}/{c.owner}/{c.name}/blob/{c.branch}/{path}.ipynb"


# ---------------------------------------------------------------------------------------------
# The chapters, and their bootstrap cell
# ---------------------------------------------------------------------------------------------


def toc_chapters(root: Path = ROOT) -> list[str]:
    """Docnames of the chapters (``notebooks/NN_name`` with a ``.py`` source) in ``_toc.yml``."""
    import yaml

    root = Path(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")) or {}
    files: list[str] = []

    def walk(entries) -> None:
        for entry in entries or []:
            if isinstance(entry, dict):
                if "file" in entry:
                    files.append(str(entry["file"]))
                walk(entry.get("sections"))

    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    chapters = []
    for name in files:
        name = name.removesuffix(".py")
        if CHAPTER_DOCNAME.fullmatch(name) and (root / f"{name}.py").is_file():
            if name not in chapters:
                chapters.append(name)
    return chapters


def package_version(root: Path = ROOT) -> str:
    """``esser_lab.__version__``, read from the source (the package need not be importable)."""
    text = (Path(root) / "esser_lab" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if match is None:
        raise ColabError("esser_lab/__init__.py has no __version__")
    return match[1]


_COMMIT = re.compile(r"[0-9a-f]{40}")
# The install line of a bootstrap cell, and the commit it pins (if any).
_PACKAGE_LINE = re.compile(r'package = "esser-lab @ git\+\S+?(?:@(?P<commit>[0-9a-f]{40}))?"')


def head_commit(root: Path = ROOT) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding ``root``; None outside a git checkout."""
    commit = _git_maybe(Path(root), "rev-parse", "-q", "--verify", "HEAD^{commit}")
    return commit if commit and _COMMIT.fullmatch(commit) else None


def bootstrap_pin(notebook) -> str | None:
    """The commit a notebook's bootstrap cell installs esser_lab from (None: unpinned)."""
    cell = first_code_cell(notebook)
    match = _PACKAGE_LINE.search(cell.source) if cell is not None else None
    return match["commit"] if match else None


def requirement_ranges(root: Path = ROOT, names=COLAB_LACKS) -> list[str]:
    """The lines of ``requirements.txt`` for ``names``, in that order (``lightning>=2.4,<3``)."""
    found: dict[str, str] = {}
    for line in (Path(root) / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = line.replace(" ", "")
    missing = [n for n in names if n not in found]
    if missing:
        raise ColabError(f"requirements.txt does not list {missing}")
    return [found[n] for n in names]


def bootstrap_source(root: Path = ROOT, commit: str | None = None) -> str:
    """The first code cell of every chapter (see the module docstring).

    Without ``commit`` (the chapters' sources) it installs esser_lab from the repository's default
    branch; with one (a notebook for Colab, :func:`build`) from exactly that commit.
    """
    if commit is not None and not _COMMIT.fullmatch(commit):
        raise ColabError(f"a bootstrap cell pins a full commit id (40 hex digits), got {commit!r}")
    lacking = ", ".join(f'"{r}"' for r in requirement_ranges(root))
    return BOOTSTRAP_TEMPLATE.format(
        guard=BOOTSTRAP_GUARD,
        repository=read_coordinates(root).repository,
        pin=f"@{commit}" if commit else "",
        lacking=lacking,
    )


def first_code_cell(notebook):
    return next((cell for cell in notebook.cells if cell.cell_type == "code"), None)


def bootstrap_problem(notebook, root: Path = ROOT) -> str | None:
    """Why the notebook's first code cell is not the bootstrap cell, or None if it is."""
    cell = first_code_cell(notebook)
    if cell is None:
        return "has no code cell"
    if BOOTSTRAP_GUARD not in cell.source:
        return "does not start with the Colab bootstrap cell"
    if cell.source.strip() != bootstrap_source(root).strip():
        return "has an outdated Colab bootstrap cell"
    if list(cell.metadata.get("tags", [])) != BOOTSTRAP_TAGS:
        return f"Colab bootstrap cell must be tagged {BOOTSTRAP_TAGS}"
    return None


def check_bootstraps(root: Path = ROOT) -> None:
    """Raise unless every chapter in ``_toc.yml`` starts with the current bootstrap cell."""
    import jupytext

    problems = []
    for docname in toc_chapters(root):
        problem = bootstrap_problem(jupytext.read(Path(root) / f"{docname}.py"), root)
        if problem:
            problems.append(f"{docname}.py {problem}")
    if problems:
        raise ColabError("\n".join(problems) + "\nrun `make colab-bootstrap` to (re)write it")


_CELL_MARKER = re.compile(r"# %%(?!\s*\[(?:markdown|md|raw)\])")


def write_bootstrap(path: Path, root: Path = ROOT) -> bool:
    """Make the first code cell of the chapter ``path`` the current bootstrap cell: replace an
    older bootstrap cell, or insert one before the first code cell. True if the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    markers = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    code = [i for i in markers if _CELL_MARKER.match(lines[i])]
    if not code:
        raise ColabError(f"{path}: no code cell")
    start = code[0]
    end = next((i for i in markers if i > start), len(lines))
    tags = ", ".join(f'"{t}"' for t in BOOTSTRAP_TAGS)
    cell = [f"# %% tags=[{tags}]", *bootstrap_source(root).splitlines(), ""]
    if BOOTSTRAP_GUARD in "\n".join(lines[start:end]):
        lines[start:end] = cell  # an older bootstrap cell
    else:
        lines[start:start] = cell
    new = "\n".join(lines) + "\n"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


# ---------------------------------------------------------------------------------------------
# make colab: the notebooks
# ---------------------------------------------------------------------------------------------

NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    # Colab opens the notebook on a GPU runtime (a chapter runs at `small` there).
    "accelerator": "GPU",
    "colab": {"provenance": [], "gpuType": "T4", "toc_visible": True},
}


def colab_notebook(path: Path, root: Path = ROOT, commit: str | None = None):
    """The chapter ``path`` as an nbformat notebook for Colab (validated); its bootstrap cell
    installs esser_lab at ``commit`` (None: the default branch, as in the chapter's source)."""
    import jupytext
    import nbformat

    path = Path(path)
    source = jupytext.read(path)
    problem = bootstrap_problem(source, root)
    if problem:
        raise ColabError(f"{path.name} {problem}; run `make colab-bootstrap`")
    # What `jupytext --to ipynb` writes, read back as plain nbformat.
    notebook = nbformat.reads(jupytext.writes(source, fmt="ipynb"), as_version=4)
    notebook.nbformat_minor = max(notebook.nbformat_minor, 5)
    notebook.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    first_code_cell(notebook).source = bootstrap_source(root, commit)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:03d}"  # stable: a republished chapter differs only where it changed
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(notebook)
    return notebook


def build(root: Path = ROOT, out: Path | None = None, *, pin: bool = True) -> list[Path]:
    """Write ``<out>/notebooks/NN_name.ipynb`` for every chapter in ``_toc.yml``, and its student
    edition (solutions removed, ``student_edition.py``) as ``<out>/student/NN_name.ipynb``;
    return the full edition's paths.

    ``out`` defaults to ``<root>/_build/colab``; ``<out>/notebooks`` is emptied first, so it holds
    exactly the chapters of the table of contents. With ``pin`` the bootstrap cells install
    esser_lab at the checkout's commit (:func:`head_commit`), what ``make publish-colab``
    publishes; outside a git checkout, or without ``pin``, from the default branch.
    """
    import nbformat

    root = Path(root)
    out = root / DEFAULT_OUT if out is None else Path(out)
    chapters = toc_chapters(root)
    if not chapters:
        raise ColabError("_toc.yml lists no chapter (notebooks/NN_name with a .py file)")
    check_bootstraps(root)
    target, students = out / "notebooks", out / STUDENT_DIR
    for folder in (target, students):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    commit = head_commit(root) if pin else None
    written = []
    for docname in chapters:
        notebook = colab_notebook(root / f"{docname}.py", root, commit)
        name = f"{Path(docname).name}.ipynb"
        student = student_notebook(notebook, where=f"{docname}.py")
        for folder, edition in ((target, notebook), (students, student)):
            text = nbformat.writes(edition)
            (folder / name).write_text(text if text.endswith("\n") else text + "\n", "utf-8")
        written.append(target / name)
    return written


# ---------------------------------------------------------------------------------------------
# make publish-colab: commit the notebooks to the colab branch with git plumbing
# ---------------------------------------------------------------------------------------------

# What the generated notebooks are made from, and the package they install (at HEAD): publishing
# with uncommitted changes here would name a source commit the notebooks do not come from.
SOURCE_PATHS = (
    "notebooks",
    "_toc.yml",
    "_config.yml",
    "requirements.txt",
    "esser_lab",
    "pyproject.toml",
)

BRANCH_README = """\
# Colab notebooks of esser-lab (generated)

This branch holds the book's chapters as `.ipynb` files for Google Colab, generated from the
jupytext sources in `notebooks/*.py` on the main branch by `make publish-colab`. Do not edit it
by hand: change the `.py` chapter on main and publish again. Each commit names its source commit.
`notebooks/` holds the full chapters; `student/` the student edition of each (the exercises'
solutions replaced by a cell for the student's own code).
"""


def _git(repo: Path, *args: str, env: dict | None = None, input: str | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
    )
    if result.returncode != 0:
        raise ColabError(f"git {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout.rstrip()  # not lstrip: `status --porcelain` starts with a space


def _git_maybe(repo: Path, *args: str) -> str | None:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def publish(
    root: Path = ROOT,
    out: Path | None = None,
    *,
    allow_dirty: bool = False,
    log=print,
) -> str | None:
    """Commit ``<out>/notebooks/*.ipynb`` (written by :func:`build`) to the colab branch.

    The new commit's tree holds exactly ``notebooks/NN_name.ipynb`` for the chapters of
    ``_toc.yml`` and a README; its parent is the branch's previous tip (none the first time).
    Returns the new commit, or None when the tip already has exactly these files. Only objects and
    the branch's ref are written: HEAD, the index and the working tree are left alone.
    """
    import nbformat

    root = Path(root).resolve()
    out = root / DEFAULT_OUT if out is None else Path(out)
    coordinates = read_coordinates(root)
    branch = coordinates.branch
    ref = f"refs/heads/{branch}"
    repo = Path(_git(root, "rev-parse", "--show-toplevel"))
    prefix = root.relative_to(repo).as_posix() if root != repo else ""

    chapters = [Path(d).name for d in toc_chapters(root)]
    files = {p.stem: p for p in sorted((out / "notebooks").glob("*.ipynb"))}
    student_files = {p.stem: p for p in sorted((out / STUDENT_DIR).glob("*.ipynb"))}
    for folder, found in (("notebooks", files), (STUDENT_DIR, student_files)):
        if sorted(found) != sorted(chapters) or not chapters:
            raise ColabError(
                f"{out / folder} holds {sorted(found)}, _toc.yml lists {sorted(chapters)}: "
                "run `make colab` first"
            )

    # Never move a branch that is checked out somewhere (its work tree would silently go stale).
    for line in _git(repo, "worktree", "list", "--porcelain").splitlines():
        if line == f"branch {ref}":
            raise ColabError(f"branch {branch!r} is checked out in a worktree; publish elsewhere")

    head = _git(repo, "rev-parse", "HEAD")
    source_branch = _git_maybe(repo, "symbolic-ref", "--short", "-q", "HEAD") or "detached HEAD"
    for path in [*files.values(), *student_files.values()]:
        pin = bootstrap_pin(nbformat.read(path, as_version=4))
        if pin != head:
            raise ColabError(
                f"{path} installs esser-lab at {pin[:12] if pin else 'the default branch'}, but "
                f"HEAD is {head[:12]} (HEAD moved since it was built?): run `make colab` again"
            )
    paths = [f"{prefix}/{p}" if prefix else p for p in SOURCE_PATHS]
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    if dirty and not allow_dirty:
        raise ColabError(
            "uncommitted changes in the chapters' sources, so the notebooks would not match "
            f"{head[:12]}:\n{dirty}\ncommit them first (or: make publish-colab ALLOW_DIRTY=1)"
        )
    if _git_maybe(repo, "branch", "-r", "--contains", head) is None:
        push = source_branch if source_branch != "detached HEAD" else "<branch>"
        log(
            f"warning: commit {head[:12]} is on no remote-tracking branch, but on Colab the "
            f"notebooks install esser-lab from it: push it first (git push origin {push})"
        )

    tip = _git_maybe(repo, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="esser-colab-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        entries = {"README.md": _git(repo, "hash-object", "-w", "--stdin", input=BRANCH_README)}
        for stem, path in files.items():
            entries[f"notebooks/{stem}.ipynb"] = _git(repo, "hash-object", "-w", "--", str(path))
        for stem, path in student_files.items():
            blob = _git(repo, "hash-object", "-w", "--", str(path))
            entries[f"{STUDENT_DIR}/{stem}.ipynb"] = blob
        for name, blob in entries.items():
            _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
        tree = _git(repo, "write-tree", env=env)
    if tip is not None and _git(repo, "rev-parse", f"{tip}^{{tree}}") == tree:
        log(f"colab: branch {branch!r} ({tip[:12]}) already has these notebooks; nothing to commit")
        return None

    state = " with uncommitted changes" if dirty else ""
    message = (
        f"Colab notebooks from {source_branch}@{head[:12]}{state}\n\n"
        f"Generated by `make publish-colab` from commit {head}{state}; they install esser-lab "
        f"{package_version(root)} at that commit.\n"
        + "".join(f"notebooks/{stem}.ipynb\n" for stem in files)
        + "".join(f"{STUDENT_DIR}/{stem}.ipynb\n" for stem in student_files)
    )
    parents = ["-p", tip] if tip is not None else []
    commit = _git(repo, "commit-tree", tree, *parents, "-F", "-", input=message)
    # Compare-and-swap: fails if the branch moved (or appeared) since it was read above.
    _git(repo, "update-ref", "-m", "publish-colab", ref, commit, tip or "")
    log(
        f"colab: committed {len(files)} notebook(s) to branch {branch!r} as {commit[:12]}"
        f"{' on top of ' + tip[:12] if tip else ' (new branch)'}, from {source_branch}@{head[:12]}"
    )
    log(f"deploy: git push origin {branch} (after the commit {head[:12]} it pins)")
    return commit


# ---------------------------------------------------------------------------------------------
# Sphinx: the badge on every chapter page
# ---------------------------------------------------------------------------------------------

# The Colab mark, drawn inline (two interlocking rings in Colab's orange and yellow).
_LOGO = (
    '<svg class="esser-colab-logo" width="24" height="14" viewBox="0 0 40 24" '
    'aria-hidden="true" focusable="false">'
    '<circle cx="13" cy="12" r="8.5" fill="none" stroke="#e8710a" stroke-width="5"/>'
    '<circle cx="27" cy="12" r="8.5" fill="none" stroke="#f9ab00" stroke-width="5"/>'
    "</svg>"
)


def badge_html(url: str, student_url: str | None = None) -> str:
    """The badge: a link with the class ``esser-colab-badge``, an inline logo and text; with
    ``student_url`` a second one to the student edition."""
    links = [
        f'<a class="{BADGE_CLASS}" href="{html.escape(url, quote=True)}" target="_blank" '
        'rel="noopener" title="Open this chapter as a notebook in Google Colab">'
        f'{_LOGO}<span class="esser-colab-badge-text">Open in Colab</span></a>'
    ]
    if student_url is not None:
        links.append(
            f'<a class="{BADGE_CLASS} esser-colab-student" '
            f'href="{html.escape(student_url, quote=True)}" target="_blank" rel="noopener" '
            'title="The same chapter with the exercises\' solutions removed, for students">'
            f'{_LOGO}<span class="esser-colab-badge-text">Open in Colab — student version'
            "</span></a>"
        )
    return f'<p class="esser-colab">{" ".join(links)}</p>'


def _book_root(app) -> Path:
    srcdir = Path(app.srcdir)
    return srcdir if (srcdir / "_config.yml").is_file() else ROOT


def _add_badge(app, doctree, docname: str) -> None:
    if app.builder.format != "html" or CHAPTER_DOCNAME.fullmatch(docname) is None:
        return
    if not str(app.env.doc2path(docname, base=False)).endswith(".py"):
        return
    from docutils import nodes

    coordinates = read_coordinates(_book_root(app))
    url, student = colab_url(coordinates, docname), colab_url(coordinates, docname, student=True)
    badge = nodes.raw("", badge_html(url, student), format="html")
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and len(section) and isinstance(section[0], nodes.title):
        section.insert(1, badge)  # right under the chapter's title
    else:
        doctree.insert(0, badge)


def _add_static_path(app, config) -> None:
    # book/_static (absolute: Sphinx joins it to confdir). A new list: never mutate a default.
    static = str(Path(__file__).resolve().parent.parent / "_static")
    if static not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, static]


def setup(app):
    app.connect("config-inited", _add_static_path)
    app.connect("doctree-resolved", _add_badge)
    app.add_css_file("esser-colab.css")  # book/_static/esser-colab.css
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------------------------------------
# Command line (the Makefile's colab targets)
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="book/_ext/colab.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's root (_config.yml)")
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser(
        "build", help="write <out>/notebooks/NN_name.ipynb and <out>/student/NN_name.ipynb"
    )
    build_cmd.add_argument("--out", type=Path, default=None, help="default: _build/colab")
    publish_cmd = commands.add_parser("publish", help="commit them to the local colab branch")
    publish_cmd.add_argument("--out", type=Path, default=None, help="default: _build/colab")
    publish_cmd.add_argument("--allow-dirty", action="store_true")
    commands.add_parser("bootstrap", help="(re)write every chapter's first code cell")
    commands.add_parser("urls", help="print the Colab link of every chapter")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.command == "build":
            for path in build(root, args.out):
                print(f"colab: {os.path.relpath(path)} (and its student edition)")
            commit = head_commit(root)
            print(
                f"colab: the notebooks install esser-lab at commit {commit} (HEAD)"
                if commit
                else "colab: not a git checkout: the notebooks install the default branch"
            )
        elif args.command == "publish":
            publish(root, args.out, allow_dirty=args.allow_dirty)
        elif args.command == "bootstrap":
            for docname in toc_chapters(root):
                changed = write_bootstrap(root / f"{docname}.py", root)
                print(f"{docname}.py: {'bootstrap cell written' if changed else 'up to date'}")
        elif args.command == "urls":
            coordinates = read_coordinates(root)
            for docname in toc_chapters(root):
                print(colab_url(coordinates, docname))
    except ColabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
