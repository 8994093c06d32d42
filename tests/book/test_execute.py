"""book/_ext/execute.py: chapters executed once, cached for the book build, stale caches emptied."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import execute  # noqa: E402

CHAPTER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A chapter

# %%
import ipywidgets

ipywidgets.IntSlider(value=3)

# %%
print(6 * 7)
{extra}
"""


def write(path: Path, extra: str = "") -> Path:
    path.write_text(CHAPTER.format(extra=extra))
    return path


@pytest.fixture
def cards(tmp_path, monkeypatch):
    monkeypatch.setenv("ESSER_LAB_CARDS", str(tmp_path / "cards"))
    monkeypatch.setenv("ESSER_LAB_SCALE", "tiny")
    return tmp_path / "cards"


def test_a_chapter_is_executed_once_and_found_as_myst_nb_looks_for_it(tmp_path, cards, monkeypatch):
    from jupyter_cache import get_cache

    monkeypatch.setattr(execute, "stamp", lambda: {"sources": "fixed"})  # others edit meanwhile

    chapter = write(tmp_path / "98_demo.py")
    cache = tmp_path / "cache"
    assert execute.execute([chapter], 1, cache) == 0
    record = get_cache(str(cache)).match_cache_notebook(execute.read_chapter(chapter))
    _, merged = get_cache(str(cache)).merge_match_into_notebook(execute.read_chapter(chapter))
    assert merged.cells[-1].outputs[0]["text"] == "42\n" and record.pk
    assert "application/vnd.jupyter.widget-state+json" in merged.metadata["widgets"]
    assert execute.executed_at(cache) is not None  # stamped: make book reuses it
    assert execute.check(cache) and cache.is_dir()


def test_a_failing_cell_fails_and_is_not_cached(tmp_path, cards, capfd):
    chapter = write(tmp_path / "97_broken.py", extra="raise ValueError('broken chapter')")
    cache = tmp_path / "cache"
    assert execute.execute([chapter], 1, cache) == 1
    assert "broken chapter" in capfd.readouterr().err
    assert execute.executed_at(cache) is None


def test_a_stale_stamp_empties_the_cache_and_the_cards(tmp_path, cards, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    cards.mkdir()
    (cards / "01_vunet.json").write_text("[]")
    stamp = execute.stamp()
    (cache / execute.STAMP).write_text(json.dumps({"stamp": stamp, "executed_at": 1.0}))
    assert execute.check(cache) and execute.executed_at(cache) == 1.0
    monkeypatch.setenv("ESSER_LAB_SEED", "3")  # other settings: other outputs
    assert execute.executed_at(cache) is None
    assert not execute.check(cache)
    assert not cache.exists() and not cards.exists()


def test_the_stamp_resolves_unset_settings(monkeypatch):
    monkeypatch.delenv("ESSER_LAB_SEED", raising=False)
    monkeypatch.setenv("ESSER_LAB_SCALE", "tiny")
    explicit = execute.stamp()
    monkeypatch.setenv("ESSER_LAB_SEED", "0")
    assert execute.stamp() == explicit
    monkeypatch.delenv("ESSER_LAB_SCALE")
    monkeypatch.setattr("esser_lab.scale._gpu_available", lambda: False)
    assert execute.stamp() == explicit  # unset scale on a CPU is tiny


def test_a_kernel_that_dies_at_start_is_started_again_but_a_dead_run_is_not(tmp_path, monkeypatch):
    import nbclient

    real, starts = nbclient.NotebookClient, []

    class Flaky(real):  # the first kernel loses the port race, as in CI's parallel starts
        def execute(self, **kwargs):
            starts.append(1)
            if len(starts) == 1:
                raise RuntimeError("Kernel died before replying to kernel_info")
            return super().execute(**kwargs)

    monkeypatch.setattr(nbclient, "NotebookClient", Flaky)
    chapter, out = write(tmp_path / "97_flaky.py"), tmp_path / "out" / "97_flaky.ipynb"
    assert execute.run_one(chapter, out) == 0 and len(starts) == 2
    assert "42" in out.read_text()

    class DiesMidway(real):  # a kernel that dies after cells ran is a real failure: no second try
        def execute(self, **kwargs):
            starts.append(1)
            self.code_cells_executed = 2
            raise RuntimeError("Kernel died")

    monkeypatch.setattr(nbclient, "NotebookClient", DiesMidway)
    starts.clear()
    with pytest.raises(RuntimeError, match="Kernel died"):
        execute.run_one(chapter, tmp_path / "out2.ipynb")
    assert len(starts) == 1
