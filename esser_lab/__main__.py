"""``python -m esser_lab <paper> fit …``: see :mod:`esser_lab.cli`."""

from esser_lab.cli import main

raise SystemExit(main())
