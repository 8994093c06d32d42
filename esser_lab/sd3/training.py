"""``LitMMDiT``: the Lightning system of a Stable Diffusion 3 denoiser (chapter 17).

Esser et al., *Scaling Rectified Flow Transformers for High-Resolution Image Synthesis*
(ICML 2024, arXiv 2403.03206). Each batch: the caption tokens go through the frozen text
encoder (``{"context", "pooled"}``, the MMDiT's condition), the encoders' outputs of a random
fraction of the captions are set to zero (caption dropout, which trains the one network for
classifier-free guidance; the paper zeroes each of its three encoders independently with
46.4 %, Appendix B.3, :func:`esser_lab.sd3.text.drop_captions` — the toy has one encoder), and
one AdamW step is taken on the formulation's loss (``formulation.loss``: rectified flow with
its timestep density, or eps/linear, ...; the loss lives in
:mod:`esser_lab.diffusion.formulations`).

The optimiser is the paper's (Appendix B.3: AdamW, learning rate 1e-4 with a linear warm-up of
1,000 steps; Sec. 5.3.2: ε = 1e-15 with QK-norm for stable bf16-mixed training); weight decay
defaults to 0. For guidance, :meth:`LitMMDiT.null_condition` gives the empty caption's encoding,
what the official ``sd3_infer`` samples with; chapter 17 guides the toy with the zeroed encoding
caption dropout trains with instead (the toy never sees the empty caption's encoding).

``autocast_dtype=torch.bfloat16`` runs the forward pass in bf16 autocast whatever the trainer's
precision, which is what the chapter's QK-norm comparison needs on the CPU. ``use_ema`` keeps an
exponential moving average of the denoiser (the paper evaluates EMA and non-EMA weights); it is
off by default and chapter 17 trains without it (``ema_weights()`` is then a no-op).

Batches are dicts: ``"latent"`` (b, c, h, w), latents already normalised, or ``"image"``
(b, 3, H, W) in [−1, 1] with a ``first_stage`` given (encoded with the SD3 normalisation,
``z = (E(x) − shift) · scale``); and ``"tokens"`` (b, L) int64 caption token ids (0 = padding).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from esser_lab.sd3.text import drop_captions, null_condition
from esser_lab.training.ema import EMA
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitMMDiT"]


class LitMMDiT(ResumableModule):
    """Trains ``model`` (an MMDiT, or any denoiser ``model(x_t, t, cond)``) with
    ``formulation.loss`` on latents conditioned through the frozen ``text_encoder``.

    ``learning_rate``, ``eps``: AdamW's (paper: 1e-4 and 1e-15); ``warmup_steps``: linear
    warm-up of the learning rate (paper: 1,000); ``caption_dropout``: probability that each
    encoder's share of a caption's encoding is zeroed, independently per group of
    ``caption_groups`` (None = the toy's one encoder, :data:`~esser_lab.sd3.text.TOY_GROUPS`:
    the default 0.1 then makes about the paper's share of fully unconditional samples;
    with SD3's three encoders, ``caption_groups=SD3_GROUPS``, pass the paper's 0.464 per
    encoder: 0.464³ ≈ 10 % of the captions lose all three); ``autocast_dtype``: e.g.
    ``torch.bfloat16`` for a bf16 autocast forward pass; ``history`` keeps the loss of every
    step (lazily read tensors).
    """

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(
        self,
        model: nn.Module,
        formulation,  # noqa: ANN001 (esser_lab.diffusion.formulations.Formulation)
        text_encoder,  # noqa: ANN001 (esser_lab.sd3.text.TextEncoder)
        *,
        first_stage: nn.Module | None = None,
        learning_rate: float = 1e-4,
        eps: float = 1e-15,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int = 1000,
        caption_dropout: float = 0.1,
        caption_groups: dict | None = None,
        use_ema: bool = False,
        ema_decay: float = 0.9999,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(getattr(formulation, "loss", None)):
            raise TypeError(f"formulation needs a .loss method, got {type(formulation).__name__}")
        if not callable(getattr(text_encoder, "encode", None)):
            raise TypeError(f"text_encoder needs .encode, got {type(text_encoder).__name__}")
        if not learning_rate > 0 or not eps > 0:
            raise ValueError(f"learning_rate and eps must be > 0, got {learning_rate}, {eps}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int ≥ 0, got {warmup_steps!r}")
        if not 0.0 <= caption_dropout <= 1.0:
            raise ValueError(f"caption_dropout must lie in [0, 1], got {caption_dropout}")
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(
                f"autocast_dtype must be None, bfloat16 or float16, got {autocast_dtype}"
            )
        self.model = model
        self.formulation = formulation
        # frozen, and kept out of the optimiser (a module is registered: it moves with the system)
        if isinstance(text_encoder, nn.Module):
            text_encoder.requires_grad_(False).eval()
        self.text_encoder = text_encoder
        if first_stage is not None:
            first_stage.requires_grad_(False).eval()
        self.first_stage = first_stage
        self.learning_rate = float(learning_rate)
        self.eps = float(eps)
        self.betas = tuple(betas)
        self.weight_decay = float(weight_decay)
        self.warmup_steps = warmup_steps
        self.caption_dropout = float(caption_dropout)
        self.caption_groups = caption_groups
        self.autocast_dtype = autocast_dtype
        self.model_ema = EMA(model, decay=ema_decay) if use_ema else None
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    # ---- the condition ------------------------------------------------------------------------

    @torch.no_grad()
    def condition(self, tokens: Tensor) -> dict[str, Tensor]:
        """The text encoder's ``{"context", "pooled"}`` for ``tokens`` (b, L)."""
        return self.text_encoder.encode(tokens)

    @torch.no_grad()
    def null_condition(self, batch: int) -> dict[str, Tensor]:
        """The empty caption's condition, ``batch`` rows (guidance's unconditional input)."""
        return null_condition(self.text_encoder, batch)

    def _latents(self, batch: dict[str, Tensor]) -> Tensor:
        if "latent" in batch:
            return batch["latent"]
        if "image" not in batch:
            raise KeyError(f"a batch needs 'latent' or 'image' (and 'tokens'), got {sorted(batch)}")
        if self.first_stage is None:
            raise ValueError("an 'image' batch needs the first_stage to encode it; none was given")
        from esser_lab.sd3.first_stage import encode_latents

        with torch.no_grad():
            return encode_latents(self.first_stage, batch["image"])

    # ---- training -----------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.generator is None:
            seed = int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)
        if not isinstance(batch, dict) or "tokens" not in batch:
            raise KeyError("a batch is a dict with 'tokens' and 'latent' (or 'image')")
        z0 = self._latents(batch).detach()
        cond = self.condition(batch["tokens"])
        if self.caption_dropout > 0:
            cond = drop_captions(cond, self.caption_dropout, self.generator, self.caption_groups)
        autocast = (
            torch.autocast(z0.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss = self.formulation.loss(self.model, z0, cond, generator=self.generator)
        loss = loss.float()
        self.history.append({"step": self.global_step, "loss": loss.detach()})
        if log_now(self):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if self.model_ema is not None:
            self.model_ema.update(self.model)

    def ema_weights(self):  # noqa: ANN201
        """A context in which ``model`` holds the EMA weights (a no-op without EMA)."""
        if self.model_ema is None:
            return contextlib.nullcontext()
        return self.model_ema.average_of(self.model)

    def configure_optimizers(self):  # noqa: ANN201
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.learning_rate,
            betas=self.betas,
            eps=self.eps,
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
