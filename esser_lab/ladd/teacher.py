"""The teacher of chapter 18 (LADD): a rectified-flow MMDiT of chapter 17, shipped with the package.

Sauer, Boesel, Dockhorn, Blattmann, Esser & Rombach, *Fast High-Resolution Image Synthesis with
Latent Adversarial Diffusion Distillation* (SIGGRAPH Asia 2024; arXiv 2403.12015), Sec. 3: LADD
starts from a pretrained latent rectified-flow model (SD3's MMDiT). The toy's teacher is chapter
17's MMDiT trained as SD3 trains it (``rf/lognorm(0.00,1.00)``: the straight path, velocity
prediction, logit-normal(0, 1) training times; caption dropout for classifier-free guidance) on
the latents of chapter 17's captioned sprites under chapter 17's shipped toy autoencoder
(``esser_lab/sd3/weights/ae_tiny.safetensors``, 16 px → 8×8×4) and its frozen toy text encoder
(seed 0). Training it takes minutes, more than chapter 18's budget, so it ships
(CHAPTER.md, *shipped stages*): ``weights/teacher_tiny.safetensors``, re-made bit for bit on a
CPU with one thread by ``python -m esser_lab.ladd.teacher`` (:func:`train_teacher`), its sha256
recorded in :data:`SHA256` and in ``bench/results/shipped_stages.csv``.

Training settings (all here, nothing else read): :data:`TEACHER_CONFIG` (depth 4, width 64, 4
heads, patch 2, 4 latent channels, 32-d text: 0.58 M parameters, larger than chapter 17's tiny
MMDiT so that its guided many-step samples are worth distilling); :data:`STEPS` AdamW steps
(ε = 1e-15, weight decay 0, as chapter 17) at learning rate :data:`LEARNING_RATE` with a linear
warm-up of :data:`WARMUP` steps and a cosine decay to 0 (the decay is ours: it leaves smoother
weights than a constant rate at this budget); batch :data:`BATCH_SIZE` drawn with replacement
from :data:`NUM_TRAIN` captioned sprites (seed 1, one or two objects; latents: one posterior
sample each, seed 0); caption dropout :data:`CAPTION_DROPOUT` (the encoding set to zero, as
chapter 17); torch seed :data:`SEED`.

Conventions: t = 1 noise, t = 0 data; latents normalised by the toy autoencoder's shift and scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.sd3.model import MMDiT, MMDiTConfig

__all__ = [
    "FORMULATION",
    "SHA256",
    "TEACHER_CONFIG",
    "WEIGHTS",
    "file_sha256",
    "load_teacher",
    "sprite_latents",
    "train_teacher",
]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "teacher_tiny.safetensors"
COMMAND = "python -m esser_lab.ladd.teacher"
#: the sha256 of the shipped file (a test checks it; re-making the file must reproduce it)
SHA256 = "212630c8a01245e2532d8745b5ac5d3241857247a65b6fa89debcb15b8d8da47"
METADATA_KEY = "esser_lab"
FORMULATION = "rf/lognorm(0.00,1.00)"
TEACHER_CONFIG = replace(MMDiTConfig.tiny(), depth=4, hidden=64, num_heads=4)
STEPS, BATCH_SIZE, LEARNING_RATE, WARMUP = 3000, 64, 1e-3, 50
NUM_TRAIN, CAPTION_DROPOUT, SEED = 4096, 0.1, 0
TEXT_SEED = 0  # the toy text encoder's seed (chapter 17's)


def sprite_latents(n: int, seed: int, size: int = 16) -> tuple[Tensor, object]:
    """``n`` captioned sprites drawn from ``seed`` (:func:`esser_lab.sd3.data.captioned_batch`)
    and their normalised latents under chapter 17's shipped autoencoder (one posterior sample
    each, drawn from a generator seeded 0): ``(latents (n, 4, size/2, size/2), sprites)``."""
    from esser_lab.sd3.data import captioned_batch
    from esser_lab.sd3.first_stage import encode_latents, load_toy_first_stage

    sprites = captioned_batch(n, size, generator=torch.Generator().manual_seed(seed))
    autoencoder = load_toy_first_stage()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        latents = torch.cat(
            [encode_latents(autoencoder, x, generator=generator) for x in sprites.image.split(512)]
        )
    return latents, sprites


def train_teacher(steps: int = STEPS, seed: int = SEED, num_train: int = NUM_TRAIN) -> MMDiT:
    """Train the teacher with the settings of the module docstring; deterministic on a CPU."""
    from esser_lab.diffusion.formulations import formulation
    from esser_lab.sd3.text import ToyTextEncoder, drop_captions

    latents, sprites = sprite_latents(num_train, seed=1)
    encoder = ToyTextEncoder(TEACHER_CONFIG.context_dim, TEACHER_CONFIG.adm_in, seed=TEXT_SEED)
    torch.manual_seed(seed)
    model = MMDiT(TEACHER_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, eps=1e-15, weight_decay=0)
    warm, total = WARMUP, steps

    def rate(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    loss_of = formulation(FORMULATION)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(num_train, (BATCH_SIZE,), generator=generator)
        cond = encoder.encode(sprites.tokens[index])
        cond = drop_captions(cond, CAPTION_DROPOUT, generator)
        loss = loss_of.loss(model, latents[index], cond, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval().requires_grad_(False)


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_teacher(path: str | Path = WEIGHTS) -> MMDiT:
    """The shipped teacher, strict, frozen (``requires_grad_(False)``) and in eval mode; its
    configuration read from the file's metadata and checked against :data:`TEACHER_CONFIG`."""
    from esser_lab.weights import load_weights, read_metadata

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: re-make it with `{COMMAND}`")
    metadata = json.loads(read_metadata(path).get(METADATA_KEY, "{}"))
    if "config" not in metadata:
        raise ValueError(f"{path} lacks its config metadata; re-make it with `{COMMAND}`")
    config = MMDiTConfig.from_dict(metadata["config"])
    model = MMDiT(config)
    load_weights(model, path, what="chapter 18's teacher")
    return model.eval().requires_grad_(False)


def _record(path: Path, seconds: float, command: str = COMMAND) -> None:
    """Upsert this file's row of bench/results/shipped_stages.csv (in a source checkout)."""
    import csv
    import datetime
    import subprocess

    root = Path(__file__).resolve().parents[2]
    table = root / "bench" / "results" / "shipped_stages.csv"
    if not table.parent.is_dir():
        return
    name = str(path.relative_to(root))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    row = {
        "file": name,
        "sha256": file_sha256(path),
        "bytes": str(path.stat().st_size),
        "seconds": f"{seconds:.1f}",
        "command": command,
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
    rows = []
    if table.is_file():
        with table.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["file"] != name]
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])


if __name__ == "__main__":
    import time

    from esser_lab.weights import save_weights

    torch.set_num_threads(1)  # bit-for-bit reproducible on a CPU
    start = time.perf_counter()
    teacher = train_teacher()
    seconds = time.perf_counter() - start
    config = dataclasses.asdict(TEACHER_CONFIG)
    metadata = {"made_by": COMMAND, "config": config, "formulation": FORMULATION}
    WEIGHTS.parent.mkdir(exist_ok=True)
    save_weights(teacher, WEIGHTS, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    _record(WEIGHTS, seconds)
    print(
        f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.2f} MB, {seconds:.0f} s); "
        f"sha256 {file_sha256(WEIGHTS)}"
    )
