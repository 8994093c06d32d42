"""Start-up hook: with ``ESSER_LAB_OFFLINE=1`` and this folder on ``PYTHONPATH``, the process (a
notebook kernel, a DataLoader worker, a DDP child) refuses non-local connections (esser_offline)."""

import os

if os.environ.get("ESSER_LAB_OFFLINE") == "1":
    import esser_offline

    esser_offline.install()
