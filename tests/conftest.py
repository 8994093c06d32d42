"""Shared pytest set-up: run the chapters through nbval, and keep unit tests off the network.

Chapters (``notebooks/NN_name.py``) are jupytext percent files. nbval only collects ``.ipynb``,
so this conftest registers a small plugin that reads each chapter with ``jupytext.read`` and hands
the notebook to nbval's collector, which runs it cell by cell in a fresh kernel of the current
environment. Environment variables of the pytest process (``ESSER_LAB_SCALE=tiny``) reach the
kernel. Run the unit tests and every chapter with::

    ESSER_LAB_SCALE=tiny pytest --nbval-lax tests notebooks      # what `make test` does

and a single chapter with ``make test-notebook NB=notebooks/01_vunet.py``. The conftest has to be
loaded for the chapters to be collected, so ``tests`` (or a file in it) must be among the
arguments; ``pytest --nbval-lax notebooks`` alone does not see this file. Without ``--nbval`` /
``--nbval-lax`` chapters are not collected at all, and pytest never imports a chapter as a module.

Unit tests under ``tests/`` run with the network switched off (:func:`_no_network`): a connection
to anything but loopback or a unix socket raises ``RuntimeError``. Nothing may download at test
time; data sets and checkpoints come from ``data/`` or are generated.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

# The unit tests run many tiny torch ops; one intra-op thread is faster than two fighting over a
# 2-core machine (measured: tests/data 7.8 s vs 11-16 s). Set before any test imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

NOTEBOOK_DIR_NAME = "notebooks"


# --------------------------------------------------------------------------------------------
# Chapters as nbval notebooks
# --------------------------------------------------------------------------------------------


def is_jupytext_notebook(path: Path) -> bool:
    """A chapter: a ``.py`` file in a ``notebooks/`` folder that starts with a jupytext header."""
    path = Path(path)
    if path.suffix != ".py" or path.parent.name != NOTEBOOK_DIR_NAME or not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        head = handle.read(2000)
    return head.startswith("# ---") and "jupytext:" in head


def _nbval_active(config: pytest.Config) -> bool:
    option = config.option
    return bool(getattr(option, "nbval", False) or getattr(option, "nbval_lax", False))


class _NotAModule(pytest.File):
    """Stands in for a chapter where pytest would otherwise import it as a test module."""

    def collect(self):
        return []


class _NotebookPlugin:
    """Global hooks (a conftest's own collection hooks would only see files under ``tests/``)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent):
        # Pytest imports any .py file named on the command line; a chapter must never run inside
        # the pytest process.
        if is_jupytext_notebook(module_path):
            return _NotAModule.from_parent(parent, path=module_path)
        return None

    def pytest_collect_file(self, file_path: Path, parent):
        if _nbval_active(parent.config) and is_jupytext_notebook(file_path):
            return _jupytext_notebook_class().from_parent(parent, path=file_path)
        return None


_NOTEBOOK_CLASS = None


def _jupytext_notebook_class():
    """nbval's notebook collector, reading the notebook with jupytext (imported lazily)."""
    global _NOTEBOOK_CLASS
    if _NOTEBOOK_CLASS is None:
        from unittest import mock

        import jupytext
        import nbval.plugin

        class JupytextNotebook(nbval.plugin.IPyNbFile):
            """A chapter read with ``jupytext.read``, executed cell by cell by nbval."""

            def collect(self):
                notebook = jupytext.read(self.path)
                # IPyNbFile.collect reads the file with nbformat.read; hand it our notebook.
                with mock.patch.object(
                    nbval.plugin.nbformat, "read", lambda *args, **kwargs: notebook
                ):
                    return list(super().collect())

        _NOTEBOOK_CLASS = JupytextNotebook
    return _NOTEBOOK_CLASS


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("esser-lab-notebooks"):
        config.pluginmanager.register(_NotebookPlugin(), "esser-lab-notebooks")


# --------------------------------------------------------------------------------------------
# No network during unit tests
# --------------------------------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent / "offline"))
import esser_offline  # noqa: E402  (the one implementation, shared with the kernels' start-up hook)

_is_local_address = esser_offline.is_local_address


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that is not loopback or a unix socket (autouse, tests/ only)."""
    patches = esser_offline.guarded("tests/conftest.py")
    connect, connect_ex = patches["connect"], patches["connect_ex"]
    create_connection = patches["create_connection"]
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
