"""A Lightning ``Trainer`` built from a scale profile, and a text progress callback for CI logs."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import DDPStrategy, Strategy

from esser_lab.scale import Scale


class TextProgress(Callback):
    """Print one line every ``every`` batches (and at the last step): readable in CI logs and on
    the static site. The line shows the ``keys`` the system logged with ``self.log``."""

    def __init__(self, every: int = 100, keys: tuple[str, ...] = ("loss",)) -> None:
        self.every = every
        self.keys = keys
        self._start = 0.0
        self._batches = 0
        self._step_increment = 1  # optimizer steps per batch, as last observed
        self._last_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._batches, self._step_increment = 0, 1
        self._last_step = trainer.global_step

    def due(self, trainer: L.Trainer) -> bool:
        """Whether the batch about to run will be printed (see :func:`log_now`)."""
        batches = self._batches + 1
        # the step count when this batch began (the system may call this before or after its
        # optimizer steps)
        last = self._last_step + self._step_increment >= trainer.max_steps
        return batches % self.every == 0 or last

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._batches += 1
        step = trainer.global_step
        self._step_increment = max(step - self._last_step, 1)
        self._last_step = step
        if self._batches % self.every and step < trainer.max_steps:
            return
        metrics = trainer.callback_metrics
        parts = [f"{k} {float(metrics[k]):.4g}" for k in self.keys if k in metrics]
        elapsed = time.perf_counter() - self._start
        print(f"step {step:>6}/{trainer.max_steps}  " + "  ".join(parts) + f"  ({elapsed:.1f} s)")


def checkpoint_folder(scale: Scale, name: str) -> Path:
    """A folder for a chapter's own checkpoints (chapter 10 saves a shared prefix and resumes two
    branches from it). One process: a fresh temporary folder. Several (``devices × num_nodes``
    > 1, DDP): rank 0 writes the file and every rank reads it, so the folder must be the same
    on every process, on every node: ``runs/<name>/seed<seed>`` under the working directory
    (the job's shared file system under SLURM), made if missing."""
    if scale.devices * scale.num_nodes == 1:
        return Path(tempfile.mkdtemp(prefix=f"{name}_"))
    folder = Path.cwd() / "runs" / name / f"seed{scale.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_now(module: L.LightningModule) -> bool:
    """Whether a system should call ``self.log`` this step.

    Each ``self.log`` costs about a millisecond of Python, which at ``tiny`` scale is up to a
    tenth of a training step. Under :class:`TextProgress` the logged values are only read on the
    steps it prints, so systems log on those steps only (every system keeps its own per-step
    ``history`` for plots); under a progress bar (GPU scales) they log every step.
    """
    trainer = module._trainer  # None outside a Trainer (e.g. a test calling training_step)
    if trainer is None:
        return False
    for callback in trainer.callbacks:
        if isinstance(callback, TextProgress):
            return callback.due(trainer)
    return True


def make_trainer(
    scale: Scale,
    max_steps: int,
    *,
    devices: int | None = None,
    num_nodes: int | None = None,
    accelerator: str | None = None,
    strategy: str | Strategy | None = None,
    find_unused_parameters: bool = True,
    progress_every: int = 100,
    progress_keys: tuple[str, ...] = ("loss",),
    default_root_dir: str | None = None,
    logger: Logger | bool = False,
    extra_callbacks: tuple[Callback, ...] = (),
) -> L.Trainer:
    """A Trainer for ``scale``: CPU fp32 at tiny; GPU bf16-mixed at small/full, DDP on many GPUs.

    ``devices`` and ``num_nodes`` default to the profile's (``ESSER_LAB_DEVICES``,
    ``ESSER_LAB_NODES``). No logger and no automatic checkpoints (chapters save explicitly) unless
    ``logger`` and a ``ModelCheckpoint`` in ``extra_callbacks`` are passed (the ``esser_lab`` CLI).

    More than one process in all (``devices × num_nodes``) means DDP: ``strategy`` defaults to a
    :class:`~lightning.pytorch.strategies.DDPStrategy` (gloo on the CPU, NCCL on GPUs) that
    finds parameters a step leaves unused (``find_unused_parameters``): GAN-style systems step
    one player at a time, VQGAN's discriminator idles before ``disc_start``, and the VUNet has a
    block whose output no loss reads (as in the official code). Any Lightning strategy can be
    passed instead, e.g. ``"fsdp"`` for models too large to replicate. ``devices=2,
    accelerator="cpu"`` asks for two CPU processes (the DDP tests). Processes are started by
    Lightning, or by a launcher (``srun``, ``torchrun``) whose environment Lightning detects.
    """
    devices = scale.devices if devices is None else devices
    num_nodes = scale.num_nodes if num_nodes is None else num_nodes
    accelerator = scale.accelerator if accelerator is None else accelerator
    for name, value in (("devices", devices), ("num_nodes", num_nodes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if accelerator not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"accelerator must be 'cpu' or 'gpu', got {accelerator!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be ≥ 1, got {max_steps}")
    max_steps = scale.steps(max_steps)  # ESSER_LAB_MAX_STEPS: a capped smoke run
    # validation is off (limit_val_batches=0): Lightning's warning that a datamodule offers a
    # val_dataloader the system does not use is noise, printed to stderr on the book's pages
    warnings.filterwarnings("ignore", message=r".*val_dataloader.*no `validation_step`.*")
    # frozen experts (chapters 5–9) stay in eval mode on purpose (the official ``disabled_train``);
    # Lightning's warning about modules in eval mode would land on the book's pages as stderr
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    callbacks: list[Callback] = []
    if scale.progress == "text":
        callbacks.append(TextProgress(progress_every, progress_keys))
        # text profile (CI, the static site): drop Lightning's INFO banners (GPU/TPU availability,
        # tips, "fit stopped"), which it writes to stderr; Lightning sets INFO when imported, so
        # this has to happen after the import, here.
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    else:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if strategy is None:
        strategy = "auto"
        if num_nodes > 1 or devices > 1:
            strategy = DDPStrategy(
                find_unused_parameters=find_unused_parameters,
                process_group_backend="gloo" if accelerator == "cpu" else None,
            )
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=scale.precision,
        max_steps=max_steps,
        max_epochs=-1,
        logger=logger,
        # checkpoints only when asked for (``python -m esser_lab``'s ModelCheckpoint)
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in extra_callbacks),
        enable_progress_bar=scale.progress == "bar",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[*callbacks, *extra_callbacks],
        default_root_dir=default_root_dir,
        deterministic=False,
    )
