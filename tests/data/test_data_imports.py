"""The data modules other than ``modules.py`` never import Lightning (it costs seconds)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import esser_lab.data
assert "torch" not in sys.modules, "import esser_lab.data imported torch"
assert "lightning" not in sys.modules
from esser_lab.data import Figures, ImageFolder, Sprites, load_digits
import esser_lab.data.digits, esser_lab.data.figures, esser_lab.data.folder
import esser_lab.data.sprites
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("lightning", "sklearn"))
assert not loaded, loaded
"""


def test_data_modules_do_not_import_lightning() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
