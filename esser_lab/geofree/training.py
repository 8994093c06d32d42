"""The Lightning systems of chapter 12: the geometry-free transformer and the explicit baseline.

Both read the same batches, dicts of :class:`~esser_lab.data.scenes.ViewPairs` fields
(``source``, ``target``, ``source_depth``, ``R``, ``t``, ``K``, ``K_inv``), and train for the same
steps with the same learning-rate schedule (:func:`warmup_cosine`: the official
``LambdaWarmUpCosineScheduler``'s shape, a linear warm-up, then a cosine decay to 0 at the last
step):

* :class:`LitGeoTransformer`: (G2) on the target's codes (``source_codes`` / ``target_codes`` in
  the batch when precomputed, else encoded each step), AdamW (0.9, 0.95) with weight decay on the
  GPT's Linear weights (the minGPT recipe) and none on the camera embedder (as the official
  ``GeoTransformer.configure_optimizers``); the camera's t is scale-normalised by (G3) first,
  with α taken from the same noisy depth estimate the explicit baseline warps with (a fresh
  :class:`~esser_lab.geofree.baseline.DepthErrorModel` draw every batch): in the official code α
  comes from the MiDaS estimate an explicit method would also use, so neither model sees exact
  depth;
* :class:`LitExplicitBaseline`: L1 between the filled warp and the target, Adam; a fresh depth
  error (:class:`~esser_lab.geofree.baseline.DepthErrorModel`) every batch, as an estimator's
  errors differ from image to image.

# official code: the schedule warms up linearly from 2.5e-6 and decays by a cosine to 1e-8 over
# 500,001 steps whatever the run's length, and the learning rate is scaled with the number of
# GPUs; here the warm-up starts at lr / warmup_steps and the cosine reaches 0 at the run's last
# step, so that a short run sees the whole schedule.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from esser_lab.geofree.baseline import DepthErrorModel, ExplicitBaseline
from esser_lab.geofree.method import geofree_loss, normalize_scale
from esser_lab.geofree.model import CAMERA_KEYS, GeoTransformer
from esser_lab.nn.transformer import configure_gpt_optimizer
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitExplicitBaseline", "LitGeoTransformer", "camera_of", "warmup_cosine"]

BATCH_KEYS = ("source", "target", "source_depth", *CAMERA_KEYS)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate factor at ``step``: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _check_batch(batch: dict[str, Tensor]) -> None:
    if not isinstance(batch, dict) or any(k not in batch for k in BATCH_KEYS):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"a batch is a dict with keys {BATCH_KEYS}, got {got}")


def camera_of(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The camera keys of a batch."""
    return {k: batch[k] for k in CAMERA_KEYS}


class _Scheduled(ResumableModule):
    resume_attributes = ("history",)

    def __init__(self, learning_rate: float, warmup_steps: int, total_steps: int) -> None:
        super().__init__()
        if not learning_rate > 0 or total_steps < 1 or warmup_steps < 0:
            raise ValueError(
                f"need learning_rate > 0, total_steps ≥ 1 and warmup_steps ≥ 0, got "
                f"{learning_rate}, {total_steps}, {warmup_steps}"
            )
        self.learning_rate = learning_rate
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.history = History()

    def _schedule(self, optimizer: torch.optim.Optimizer) -> dict:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.warmup_steps, self.total_steps)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _record(self, loss: Tensor) -> None:
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True)


class LitGeoTransformer(_Scheduled):
    """Trains a :class:`GeoTransformer` (the frozen first stage untouched).

    ``depth_error``: the depth estimate α is read from (module doc); ``None`` uses exact depth.
    """

    resume_generators = ("generator",)

    def __init__(
        self,
        model: GeoTransformer,
        total_steps: int,
        depth_error: DepthErrorModel | None = DepthErrorModel(),  # noqa: B008 (frozen)
    ) -> None:
        if not isinstance(model, GeoTransformer):
            raise TypeError(f"model must be a GeoTransformer, got {type(model).__name__}")
        if depth_error is not None and not isinstance(depth_error, DepthErrorModel):
            raise TypeError(
                f"depth_error must be a DepthErrorModel or None, got {type(depth_error).__name__}"
            )
        c = model.config
        super().__init__(c.learning_rate, c.warmup_steps, total_steps)
        self.model = model
        self.depth_error = depth_error
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        _check_batch(batch)
        depth = batch["source_depth"]
        if self.depth_error is not None:
            if self.generator is None:
                seed = int(torch.randint(0, 2**62, (1,)))
                self.generator = torch.Generator().manual_seed(seed)
            depth = self.depth_error(depth, self.generator)
        camera = normalize_scale(camera_of(batch), depth)
        codes = [  # precomputed codes when the batch has them (the first stage is frozen)
            batch[f"{view}_codes"]
            if f"{view}_codes" in batch
            else self.model.encode_to_z(batch[view])
            for view in ("source", "target")
        ]
        loss = geofree_loss(self.model, *codes, camera)
        self._record(loss)
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        c = self.model.config
        gpt = self.model.transformer
        optimizer = configure_gpt_optimizer(gpt, self.learning_rate, c.weight_decay, c.betas)
        # official code: the camera embedder's weights are never decayed
        camera = [p for p in self.model.emb_stage_model.parameters() if p.requires_grad]
        optimizer.add_param_group({"params": camera, "weight_decay": 0.0})
        covered = {id(p) for group in optimizer.param_groups for p in group["params"]}
        trainable = {id(p) for p in self.model.parameters() if p.requires_grad}
        if covered != trainable:
            raise RuntimeError(
                "the optimizer must hold exactly the GeoTransformer's trainable parameters"
            )
        return self._schedule(optimizer)


class LitExplicitBaseline(_Scheduled):
    """Trains the hole filler of an :class:`ExplicitBaseline` on warps with estimated depth."""

    resume_generators = ("generator",)

    def __init__(
        self,
        baseline: ExplicitBaseline,
        learning_rate: float,
        warmup_steps: int,
        total_steps: int,
    ) -> None:
        if not isinstance(baseline, ExplicitBaseline):
            raise TypeError(f"baseline must be an ExplicitBaseline, got {type(baseline).__name__}")
        super().__init__(learning_rate, warmup_steps, total_steps)
        self.baseline = baseline
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        _check_batch(batch)
        if self.generator is None:
            seed = int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)
        prediction = self.baseline(
            batch["source"], batch["source_depth"], camera_of(batch), self.generator
        )
        loss = (prediction - batch["target"]).abs().mean()
        self._record(loss)
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        optimizer = torch.optim.Adam(self.baseline.parameters(), lr=self.learning_rate)
        return self._schedule(optimizer)
