"""Training harness: seeding, a Lightning Trainer from a scale profile, checkpoint I/O.

``seed_everything`` and the checkpoint functions don't import Lightning; ``make_trainer`` and
``TextProgress`` do (import them from ``esser_lab.training.trainer``).
"""

from esser_lab.training.checkpoint import load_checkpoint, save_checkpoint
from esser_lab.training.seed import seed_everything

__all__ = ["load_checkpoint", "save_checkpoint", "seed_everything"]
