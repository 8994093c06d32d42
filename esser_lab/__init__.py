"""esser-lab: an executable book reproducing Patrick Esser's line of work in generative modelling.

Importing ``esser_lab`` is cheap: it imports no subpackage (and never torch or Lightning).

Bad input fails at the public boundaries with a ``TypeError``, ``ValueError`` or
``FileNotFoundError`` naming the argument, what was expected and what came
(:mod:`esser_lab.checks`): models check type, dtype, shape and a non-empty batch on every call
(metadata only, free on any device), and NaN/±inf where reading the values is cheap: always on
the CPU, on a GPU outside training steps (no host sync inside a step), everywhere with
``ESSER_LAB_CHECK_FINITE=1``, nowhere with ``=0``. Configs check every field's type against its
annotation and their ranges when built (:func:`esser_lab.config.check_fields`); loaders name
missing, truncated or unsafe files. ``tests/test_bad_input.py`` is the table of cases.
"""

__version__ = "0.1.0"
