"""esser-lab: an executable book reproducing Patrick Esser's line of work in generative modelling.

Importing ``esser_lab`` is cheap: it imports no subpackage (and never torch or Lightning).
"""

__version__ = "0.1.0"
