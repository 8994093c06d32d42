"""Tests of the test harness itself (``tests/conftest.py``) and of the book's table of contents.

* every chapter in ``notebooks/`` is a jupytext notebook that nbval will collect, with the header
  and title that Jupyter Book needs, and is listed in ``_toc.yml`` (and nothing else is);
* nbval runs a chapter cell by cell in a kernel that sees the pytest process's environment,
  reports a failing cell as a failure, and pytest never imports a chapter as a module;
* the network guard refuses non-local connections and lets loopback and unix sockets through.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_conftest():
    # By path, so this works whether or not tests/ becomes a package.
    spec = importlib.util.spec_from_file_location(
        "_esser_lab_tests_conftest", Path(__file__).with_name("conftest.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_conftest = _load_conftest()
is_jupytext_notebook = _conftest.is_jupytext_notebook
_is_local_address = _conftest._is_local_address
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.py"))

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""


# --------------------------------------------------------------------------------------------
# The chapters in this checkout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_chapter_is_a_collectable_notebook(path: Path) -> None:
    import jupytext

    assert is_jupytext_notebook(path), f"{path.name}: no jupytext header, nbval would skip it"
    notebook = jupytext.read(path)
    kernelspec = notebook.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{path.name}: kernelspec python3 missing"
    markdown = [c for c in notebook.cells if c.cell_type == "markdown"]
    assert markdown and markdown[0].source.lstrip().startswith("# "), (
        f"{path.name}: the first markdown cell must start with a '# Title' (jupyter-book -W)"
    )
    assert any(c.cell_type == "code" for c in notebook.cells), f"{path.name}: no code cell"


def _toc_files() -> list[str]:
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def test_toc_lists_existing_files_and_every_chapter() -> None:
    files = _toc_files()
    for name in files:
        candidates = [REPO / f"{name}{ext}" for ext in (".md", ".py", ".ipynb")]
        assert any(c.is_file() for c in candidates), f"_toc.yml names missing file {name!r}"
    chapters = {f"notebooks/{p.stem}" for p in NOTEBOOKS}
    missing = chapters - set(files)
    assert not missing, f"chapters missing from _toc.yml: {sorted(missing)}"


# --------------------------------------------------------------------------------------------
# The collector, end to end, on a throwaway notebook (one kernel start, a few seconds)
# --------------------------------------------------------------------------------------------


def test_nbval_runs_a_jupytext_notebook(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    shutil.copytree(Path(__file__).with_name("offline"), tmp_path / "offline")
    (tmp_path / "notebooks" / "99_probe.py").write_text(
        HEADER
        + textwrap.dedent(
            """
            # %% [markdown]
            # # Probe

            # %%
            import os
            import sys

            # the pytest process's environment reaches the kernel
            assert os.environ["ESSER_LAB_PROBE"] == "seen"
            # this runs in a kernel, not imported by pytest
            assert "_pytest" not in sys.modules

            # %%
            raise RuntimeError("this cell fails on purpose")
            """
        )
    )
    (tmp_path / "notebooks" / "helper.py").write_text("raise SystemExit('never imported')\n")
    env = {**os.environ, "ESSER_LAB_PROBE": "seen"}
    env.pop("PYTEST_ADDOPTS", None)
    # The notebook is also named explicitly: pytest would import such a file as a module
    # unless the conftest stops it.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "-q"]
    command += ["--rootdir", str(tmp_path), "notebooks", "notebooks/99_probe.py"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "this cell fails on purpose" in out, out


# --------------------------------------------------------------------------------------------
# The network guard
# --------------------------------------------------------------------------------------------


def test_network_guard_refuses_remote_connections() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(RuntimeError, match="network access refused"):
            sock.connect(("93.184.216.34", 80))
        with pytest.raises(RuntimeError, match="network access refused"):
            sock.connect_ex(("93.184.216.34", 80))
    with pytest.raises(RuntimeError, match="network access refused"):
        socket.create_connection(("example.com", 80), timeout=1)  # refused before any DNS query
    with pytest.raises(RuntimeError, match="network access refused"):
        urllib.request.urlopen("http://93.184.216.34/", timeout=1)


def test_network_guard_lets_loopback_and_unix_sockets_through(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        accepted: list[bytes] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                accepted.append(conn.recv(5))

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("localhost", port), timeout=5) as client:
            client.sendall(b"hello")
        thread.join(timeout=5)
    assert accepted == [b"hello"]

    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)


@pytest.mark.parametrize(
    "address, local",
    [
        (("127.0.0.1", 80), True),
        (("127.3.2.1", 80), True),
        (("::1", 80, 0, 0), True),
        (("::ffff:127.0.0.1", 80, 0, 0), True),
        (("localhost", 80), True),
        (("0.0.0.0", 80), True),
        ("/tmp/kernel.sock", True),
        (b"\0abstract", True),
        (("93.184.216.34", 80), False),
        (("10.0.0.1", 80), False),
        (("2606:2800:220:1::", 80, 0, 0), False),
        (("pypi.org", 443), False),
    ],
)
def test_local_address_classification(address, local: bool) -> None:
    assert _is_local_address(address) is local


def test_offline_start_up_hook_blocks_child_processes() -> None:
    """Kernels and their children (started with tests/offline on PYTHONPATH) refuse the network."""
    offline = Path(__file__).resolve().parent / "offline"
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=0.1)\n"
        "except RuntimeError as error:\n"
        "    print('refused:', error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(offline), "ESSER_LAB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "refused: network access refused" in out.stdout, out.stdout + out.stderr
