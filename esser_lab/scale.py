"""Scale profiles: one switch, ``ESSER_LAB_SCALE``, picks ``tiny``, ``small`` or ``full``.

* ``tiny``  – CI and ``make test``: each chapter trains and measures in about a minute on 2 cores.
* ``small`` – a laptop GPU or a free Colab GPU: minutes, results worth looking at.
* ``full``  – the paper's configuration on real data, on one or many GPUs.

Unset: ``small`` when a CUDA GPU is present, else ``tiny``. The method and the code path are the
same at every scale; only sizes, steps, data and the hardware settings below change.

The library never applies a profile by itself (no global state on import): a notebook calls
:func:`apply` once, which sets torch's thread count and matplotlib's figure style.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, TypeVar

ScaleName = Literal["tiny", "small", "full"]
SCALES: tuple[ScaleName, ...] = ("tiny", "small", "full")
ENV_VAR = "ESSER_LAB_SCALE"
THREADS_ENV_VAR = "ESSER_LAB_THREADS"
DEVICES_ENV_VAR = "ESSER_LAB_DEVICES"  # GPUs per node (small/full); more than one → DDP
NODES_ENV_VAR = "ESSER_LAB_NODES"
SEED_ENV_VAR = "ESSER_LAB_SEED"  # the training seed of a chapter run (default 0)
BUDGET_ENV_VAR = "ESSER_LAB_BUDGET"  # "minute" (the book) or "long" (bench: claims_long.csv)
BUDGETS = ("minute", "long")
# Running `small`/`full` without a GPU (CI's small pass, or a look at a chapter on a laptop):
DEVICE_ENV_VAR = "ESSER_LAB_DEVICE"  # "cpu" runs small/full on the CPU (fp32); "gpu" insists on one
MAX_STEPS_ENV_VAR = "ESSER_LAB_MAX_STEPS"  # caps every training run's steps (Scale.steps)
MAX_SAMPLES_ENV_VAR = "ESSER_LAB_MAX_SAMPLES"  # caps data and evaluation set sizes (Scale.count)
# the smallest cap: the chapters' grids show, and their scores need, this many held-out samples
# (chapter 2's swap grid alone takes 11 figures; below that a chapter stopped with an IndexError)
MIN_SAMPLES = 32
# Pretrained components (VGG for LPIPS / perceptual losses, …): "published" weights (fetched by
# torchvision's weights API with their checksum when missing) or seeded "stand-in" weights of the
# same architecture (CI's small pass: nothing downloads). tiny never uses published weights.
PRETRAINED_ENV_VAR = "ESSER_LAB_PRETRAINED"
PRETRAINED = ("published", "stand-in")
# the line a capped run prints under its profile (Scale.describe), once, early in each chapter
SMOKE_RUN_NOTE = "steps and data capped: a smoke run, its numbers mean nothing"

T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """The hardware side of a scale profile; chapters read sizes from their configs' presets."""

    name: ScaleName
    accelerator: Literal["cpu", "gpu"]
    precision: Literal["32-true", "bf16-mixed"]
    num_threads: int | None  # torch intra-op threads; None leaves torch's default
    progress: Literal["text", "bar"]  # text lines in CI logs and the static site; a bar for people
    devices: int = 1
    num_nodes: int = 1
    # the chapters' training seed (initial weights, noise, batch order; the data sets keep their
    # own seeds): 0 unless ESSER_LAB_SEED says otherwise, to see a claim across seeds
    seed: int = 0
    # "minute": the book's budget. "long": a longer tiny run that bench/ records in
    # claims_long.csv, for claims a minute on a CPU cannot show (ESSER_LAB_BUDGET=long).
    budget: Literal["minute", "long"] = "minute"
    # caps for a quick look at small/full (CI's small pass): None = the profile's own numbers
    max_steps: int | None = None
    max_samples: int | None = None
    # "stand-in": pretrained networks get seeded random weights (tiny, tests, CI); "published":
    # the released weights, read from data/checkpoints/ or fetched with their checksum
    pretrained: Literal["published", "stand-in"] = "stand-in"

    @property
    def device(self) -> str:
        """The torch device training runs on, and evaluation after it: ``"cpu"`` or this process's
        GPU, ``"cuda:<LOCAL_RANK>"`` (each DDP process Lightning or torchrun starts has its own)."""
        if self.accelerator != "gpu":
            return "cpu"
        return f"cuda:{_int_from_env('LOCAL_RANK', minimum=0) or 0}"

    @property
    def capped(self) -> bool:
        """Whether steps or sample counts are capped (a smoke run: its numbers mean nothing)."""
        return self.max_steps is not None or self.max_samples is not None

    def steps(self, steps: int) -> int:
        """``steps`` under the ``ESSER_LAB_MAX_STEPS`` cap (training loops outside Lightning)."""
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def count(self, tiny: int, small: int, full: int, long: int | None = None) -> int:
        """A data or evaluation set size for this profile, under ``ESSER_LAB_MAX_SAMPLES``."""
        value = self.pick(tiny, small, full, long)
        return value if self.max_samples is None else min(value, self.max_samples)

    def describe(self) -> str:
        """The line a chapter prints first: scale, hardware, precision, torch threads, seed."""
        import torch

        budget = "" if self.budget == "minute" else f" · budget {self.budget}"
        caps = "".join(
            f" · {what} capped at {cap}"
            for what, cap in (("steps", self.max_steps), ("samples", self.max_samples))
            if cap is not None
        )
        stand_ins = self.name != "tiny" and self.pretrained == "stand-in"
        pretrained = " · pretrained stand-ins" if stand_ins else ""
        smoke = f"\n{SMOKE_RUN_NOTE}" if self.capped else ""
        return (
            f"scale: {self.name} · {self.accelerator} · {self.precision} · "
            f"threads {torch.get_num_threads()} · seed {self.seed}{budget}{caps}{pretrained}{smoke}"
        )

    def pick(self, tiny: T, small: T, full: T, long: T | None = None) -> T:
        """The value for this profile, e.g. ``scale.pick(tiny=600, small=20_000, full=100_000)``.

        ``long`` is the ``tiny`` value under the long budget (``ESSER_LAB_BUDGET=long``, a
        ``bench/`` run); without it the long budget uses ``tiny``'s value.
        """
        if self.name == "tiny" and self.budget == "long" and long is not None:
            return long
        return {"tiny": tiny, "small": small, "full": full}[self.name]


def _gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _int_from_env(name: str, minimum: int = 1) -> int | None:
    """``$name`` as an int ≥ ``minimum``; None when unset or empty; a clear error otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    kind = "positive" if minimum == 1 else "non-negative"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {kind} integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be a {kind} integer, got {raw!r}")
    return value


def profile(name: str) -> Scale:
    """The profile called ``name`` (one of ``tiny``, ``small``, ``full``)."""
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}: expected one of {', '.join(SCALES)}")
    threads = _int_from_env(THREADS_ENV_VAR)
    seed = _int_from_env(SEED_ENV_VAR, minimum=0) or 0
    devices = _int_from_env(DEVICES_ENV_VAR) or 1
    nodes = _int_from_env(NODES_ENV_VAR) or 1
    budget = os.environ.get(BUDGET_ENV_VAR, "").strip().lower() or "minute"
    if budget not in BUDGETS:
        raise ValueError(f"{BUDGET_ENV_VAR} must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if budget != "minute" and name != "tiny":
        raise ValueError(f"{BUDGET_ENV_VAR}={budget} is a tiny-scale bench setting, not {name}")
    device = os.environ.get(DEVICE_ENV_VAR, "").strip().lower()
    if device not in ("", "cpu", "gpu", "cuda"):
        raise ValueError(f"{DEVICE_ENV_VAR} must be cpu or gpu, got {device!r}")
    caps = {
        "max_steps": _int_from_env(MAX_STEPS_ENV_VAR),
        "max_samples": _int_from_env(MAX_SAMPLES_ENV_VAR),
    }
    if caps["max_samples"] is not None and caps["max_samples"] < MIN_SAMPLES:
        raise ValueError(
            f"{MAX_SAMPLES_ENV_VAR} must be at least {MIN_SAMPLES} (the chapters' grids and "
            f"evaluation sets need that many held-out samples), got {caps['max_samples']}"
        )
    pretrained = os.environ.get(PRETRAINED_ENV_VAR, "").strip().lower()
    if pretrained and pretrained not in PRETRAINED:
        raise ValueError(
            f"{PRETRAINED_ENV_VAR} must be one of {', '.join(PRETRAINED)}, got {pretrained!r}"
        )
    if name == "tiny":
        if devices > 1 or nodes > 1:
            raise ValueError(
                f"{DEVICES_ENV_VAR}/{NODES_ENV_VAR} need small or full (on GPUs, or on CPU "
                f"processes with {DEVICE_ENV_VAR}=cpu), not tiny"
            )
        if device in ("gpu", "cuda"):
            raise ValueError(f"{DEVICE_ENV_VAR}={device}: tiny runs on the CPU; use small or full")
        if pretrained == "published":
            raise ValueError(
                f"{PRETRAINED_ENV_VAR}=published needs small or full: tiny never downloads"
            )
        # Tiny models on 2 cores: one intra-op thread avoids oversubscription, which measured
        # faster than two on a shared 2-core machine (see TOOLCHAIN.md, "Timing facts").
        return Scale(
            "tiny",
            "cpu",
            "32-true",
            threads or 1,
            "text",
            seed=seed,
            budget=budget,
            **caps,  # type: ignore[arg-type]
        )
    pretrained = pretrained or "published"
    if device == "cpu":
        # small/full sizes on a CPU in fp32 (bf16 matmuls are slow there), text progress for logs;
        # ESSER_LAB_DEVICES > 1 here means that many CPU processes under DDP (gloo)
        return Scale(
            name,
            "cpu",
            "32-true",
            threads,
            "text",
            devices,
            nodes,
            seed,
            pretrained=pretrained,
            **caps,  # type: ignore[arg-type]
        )
    hardware = ("gpu", "bf16-mixed", threads, "bar", devices, nodes, seed)
    return Scale(name, *hardware, pretrained=pretrained, **caps)  # type: ignore[arg-type]


def current() -> Scale:
    """The active profile: ``$ESSER_LAB_SCALE``, else ``small`` with a GPU and ``tiny`` without."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        name = "small" if _gpu_available() else "tiny"
    scale = profile(name)
    if scale.accelerator == "gpu" and not _gpu_available():
        raise RuntimeError(
            f"{ENV_VAR}={name} needs a CUDA GPU and none was found; use {ENV_VAR}=tiny on a CPU, "
            f"or {DEVICE_ENV_VAR}=cpu to run {name}'s sizes on the CPU (slow: cap the steps with "
            f"{MAX_STEPS_ENV_VAR} and the data with {MAX_SAMPLES_ENV_VAR})."
        )
    return scale


def apply(scale: Scale) -> Scale:
    """Apply a profile's process-wide settings (threads, plotting style) once, from a notebook."""
    import torch

    if scale.num_threads is not None:
        torch.set_num_threads(scale.num_threads)
    if scale.accelerator == "gpu":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if scale.progress == "text":
        # a known deprecation warning raised inside Lightning on new torch: noise in CI logs
        import warnings

        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    from esser_lab.viz.style import use_book_style

    use_book_style()
    return scale
