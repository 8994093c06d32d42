"""``LitSelfFlow``: the Lightning system that trains a :class:`SelfFlowDiT` with Self-Flow.

One class for the three arms of chapter 19 (vanilla flow matching, DTS alone, Self-Flow) and the
Attention-Separation ablation: the :class:`~esser_lab.selfflow.method.SelfFlowMethod` switches
pick the arm. The EMA teacher (``teacher``, frozen, outside the optimiser) is created for every
arm, so all arms hold the same modules, but it only runs, and only changes, under
``self_distill``. The release trains with AdamW and gradient clipping at 1 (README); the
learning rate and warm-up are the caller's.

Deviation: only unconditional models train here (``num_classes = 0``, the book's toy; the
paper's probing protocol keeps labels out of the model). The release's class-conditional training
(labels dropped to the null class 1000 for guidance) has no path in this package:
:meth:`SelfFlowConfig.paper`'s 1001 classes serve loading the released weights only, and a
conditional model is refused with an error saying so.
"""

from __future__ import annotations

import torch
from torch import Tensor

from esser_lab.nn.placement import to_device
from esser_lab.selfflow.method import (
    SelfFlowMethod,
    draw_times,
    ema_update,
    make_teacher,
    selfflow_loss,
)
from esser_lab.selfflow.model import SelfFlowDiT
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitSelfFlow"]


class LitSelfFlow(ResumableModule):
    """Trains ``model`` on batches ``{"image": (b, C, H, W)}`` with :func:`selfflow_loss`.

    ``history`` keeps every step's ``loss``, ``gen`` (the flow-matching term), ``rep`` and
    ``cosine`` (the student–teacher alignment, NaN for arms without a teacher).
    """

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(
        self,
        model: SelfFlowDiT,
        method: SelfFlowMethod,
        *,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        clip: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(model, SelfFlowDiT):
            raise TypeError(f"model must be a SelfFlowDiT, got {type(model).__name__}")
        if model.config.num_classes:
            raise ValueError(
                f"LitSelfFlow trains unconditional models only (num_classes=0), got num_classes="
                f"{model.config.num_classes}: the class-conditional path of the release (label "
                "dropout to the null class) is not implemented; SelfFlowConfig.paper() is for "
                "loading the released weights (esser_lab.selfflow.checkpoint.load_selfflow)"
            )
        depth = model.config.depth
        if method.self_distill and max(method.student_layer, method.teacher_layer) > depth:
            raise ValueError(
                f"student_layer {method.student_layer} and teacher_layer {method.teacher_layer} "
                f"must be blocks of the model (1..{depth})"
            )
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.model = model
        self.teacher = make_teacher(model)
        self.method = method
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.warmup_steps = int(warmup_steps)
        self.clip = float(clip)
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        if not isinstance(batch, dict) or "image" not in batch:
            raise KeyError("a batch is a dict with 'image' (b, C, H, W)")
        x0 = batch["image"]
        times = draw_times(len(x0), self.model.config.tokens, self.method, self.generator)
        # drawn on the CPU generator, copied through pinned memory (no host sync on a GPU)
        noise = to_device(torch.randn(x0.shape, generator=self.generator), x0.device).to(x0)
        times = type(times)(*(to_device(v, x0.device) for v in times))
        teacher = self.teacher if self.method.self_distill else None
        terms = selfflow_loss(self.model, teacher, x0, noise, times, self.method)
        self.history.append(
            {"step": self.global_step, **{k: v.detach() for k, v in terms._asdict().items()}}
        )
        if log_now(self):
            self.log("loss", terms.loss.detach(), on_step=True, prog_bar=True)
        return terms.loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if self.method.self_distill:
            ema_update(self.teacher, self.model, self.method.ema_decay)

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):  # noqa: ANN001, ANN201
        self.clip_gradients(optimizer, gradient_clip_val=self.clip, gradient_clip_algorithm="norm")

    def configure_optimizers(self):  # noqa: ANN201
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            foreach=True,
        )
        if self.warmup_steps == 0:
            return optimizer
        warmup = self.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
