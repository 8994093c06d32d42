"""Chapter 12's shipped first stage: a small VQGAN for the toy world's 16-pixel views.

Training a VQGAN live would take most of the chapter's minute, so (as CHAPTER.md's *shipped
stages* allow) the package ships one: ``esser_lab/geofree/weights/vqgan_tiny.safetensors``, the
:func:`~esser_lab.geofree.model.first_stage_config` ``"tiny"`` architecture (chapter 10's
``VQModel``, f = 4, 4×4 codes of a 128-entry codebook) trained by :func:`train_first_stage` on
fresh view pairs of :mod:`esser_lab.data.scenes` every step. The file is re-made, bit for bit on a
CPU with one thread, by::

    python -m esser_lab.geofree.first_stage

Training differs from the paper's VQGAN (stated in the chapter): L1 reconstruction + the
codebook loss only, no LPIPS (VGG16 weights cannot be had offline) and no discriminator
(at this size the adversarial term did not sharpen anything in chapter 10's tiny runs), Adam
(0.5, 0.9) at a toy learning rate.
"""

from __future__ import annotations

from pathlib import Path

import torch

from esser_lab.geofree.model import first_stage_config
from esser_lab.taming.model import VQModel

__all__ = ["WEIGHTS", "load_first_stage", "train_first_stage"]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "vqgan_tiny.safetensors"
STEPS = 1500
BATCH_SIZE = 32
LEARNING_RATE = 2e-3


def train_first_stage(
    steps: int = STEPS,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    preset: str = "tiny",
    device: torch.device | str = "cpu",
) -> VQModel:
    """Train the ``preset``'s VQGAN on fresh source and target views of its resolution
    (deterministic on a CPU; ``small`` trains this way on a GPU, as nothing is shipped for it)."""
    from esser_lab.data import scenes

    torch.manual_seed(seed)
    model = VQModel(first_stage_config(preset)).to(device)
    size = model.config.resolution
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        pairs = scenes.sample_pairs(batch_size // 2, size, generator=generator)
        x = torch.cat([pairs.source, pairs.target]).to(device)
        x_hat, q = model(x)
        loss = (x_hat - x).abs().mean() + q.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def load_first_stage(path: str | Path = WEIGHTS) -> VQModel:
    """The shipped tiny VQGAN, frozen (read strictly by :mod:`esser_lab.weights`)."""
    from esser_lab.weights import load_weights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: re-make it with `python -m esser_lab.geofree.first_stage`"
        )
    model = VQModel(first_stage_config("tiny"))
    load_weights(model, path, what="chapter 12's tiny VQGAN")
    return model.eval().requires_grad_(False)


if __name__ == "__main__":
    from esser_lab.weights import save_weights

    torch.set_num_threads(1)  # bit-for-bit reproducible on a CPU
    trained = train_first_stage()
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_weights(trained, WEIGHTS, {"made_by": "python -m esser_lab.geofree.first_stage"})
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.2f} MB)")
