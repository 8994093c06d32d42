"""Training harness: seeding, a Lightning Trainer from a scale profile, checkpoint I/O.

``seed_everything`` and the checkpoint functions don't import Lightning; ``make_trainer`` and
``TextProgress`` do (import them from ``esser_lab.training.trainer``).

Optimisers across the package are built with ``foreach=True`` (or ``fused=True``): on the CPU
torch's default Adam updates one parameter tensor at a time, which dominates a tiny model's step
(measured: a chapter-10 VQGAN step 19 % faster); the multi-tensor update gave bitwise the same
weights in our checks, so no chapter's numbers move. On a GPU ``foreach`` is torch's default.
"""

from esser_lab.training.checkpoint import load_checkpoint, save_checkpoint
from esser_lab.training.seed import seed_everything

__all__ = ["load_checkpoint", "save_checkpoint", "seed_everything"]
