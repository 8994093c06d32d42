"""``LitGen1``: the Lightning system of the Gen-1 video model (chapter 16).

Esser et al., *Structure and Content-Guided Video Synthesis with Diffusion Models* (ICCV 2023;
arXiv 2302.03011). Each batch: the clips are encoded frame by frame by the frozen first stage,
a structure level t_s is drawn per clip uniformly from 0..``max_t_s`` and the depth blurred by
it (:func:`~esser_lab.gen1.method.structure`), and one AdamW step is taken on Eq. 6
(:func:`~esser_lab.gen1.method.gen1_loss`: content dropout ``p_drop``, image batches with
probability ``p_image``).

Batches are dicts: ``"video"`` (b, f, 3, H, W) in [−1, 1], ``"depth"`` (b, f, 1, H, W) and
``"content"`` (b, content_dim) (the frozen content embedding: in the paper CLIP's of a frame;
in every run of this book the clip's content code). [choice] The paper does not state its
optimiser settings in the text we had: AdamW at ``learning_rate`` (1e-4 default, SD
fine-tuning's usual value).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esser_lab.diffusion import DiscreteSchedule
from esser_lab.gen1.method import gen1_loss, structure
from esser_lab.gen1.model import Gen1UNet
from esser_lab.nn.placement import randint
from esser_lab.training.history import History
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now

__all__ = ["LitGen1"]


class LitGen1(ResumableModule):
    """Trains ``model`` (a :class:`~esser_lab.gen1.model.Gen1UNet`) on clips encoded by the
    frozen ``first_stage`` under the DDPM ``schedule``. ``first_stage.encode`` must map videos
    (b, f, 3, H, W) to latents (b, f, c, h, w) and ``.decode`` back; ``.factor`` is the
    downsampling. Every run of this book uses :class:`~esser_lab.gen1.method.PixelFold`; the
    paper's SD autoencoder (``AutoencoderKL``, which takes (b, 3, H, W) and returns a
    distribution) enters through :class:`~esser_lab.gen1.checkpoint.VideoFirstStage` (frames
    folded into the batch, a posterior sample or its mean, SD's latent scale factor;
    :func:`~esser_lab.gen1.checkpoint.load_video_first_stage` reads it from an SD file). A first
    stage whose ``encode`` does not return a 5-D tensor is refused with an error naming this."""

    resume_attributes = ("history",)
    resume_generators = ("generator",)

    def __init__(
        self,
        model: Gen1UNet,
        first_stage: nn.Module,
        schedule: DiscreteSchedule,
        *,
        learning_rate: float = 1e-4,
        p_image: float = 0.25,
        p_drop: float = 0.1,
    ) -> None:
        super().__init__()
        if not isinstance(model, Gen1UNet):
            raise TypeError(f"model must be a Gen1UNet, got {type(model).__name__}")
        for name in ("encode", "decode"):
            if not callable(getattr(first_stage, name, None)):
                raise TypeError(f"first_stage needs .{name}, got {type(first_stage).__name__}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.model = model
        first_stage.requires_grad_(False).eval()
        self.first_stage = first_stage
        self.schedule = schedule
        self.learning_rate = float(learning_rate)
        self.p_image, self.p_drop = float(p_image), float(p_drop)
        self.history = History()
        self.generator: torch.Generator | None = None  # seeded from torch's state at first use

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        missing = {"video", "depth", "content"} - set(batch)
        if missing:
            raise KeyError(
                f"a batch needs 'video', 'depth' and 'content'; missing {sorted(missing)}"
            )
        video = batch["video"]
        if video.dim() != 5:
            raise ValueError(f"batch['video'] must be (b, f, 3, H, W), got {tuple(video.shape)}")
        with torch.no_grad():
            z0 = self.first_stage.encode(video)
        if not isinstance(z0, Tensor) or z0.dim() != 5:
            raise TypeError(
                "first_stage.encode must return latents (b, f, c, h, w) for a video, got "
                f"{type(z0).__name__}: an image autoencoder such as SD's AutoencoderKL "
                "(4-D input, a distribution out) must be wrapped in "
                "esser_lab.gen1.checkpoint.VideoFirstStage"
            )
        b = z0.shape[0]
        t_s = randint(
            self.model.config.max_t_s + 1, (b,), generator=self.generator, device=z0.device
        )
        factor = getattr(self.first_stage, "factor", 1)
        s = structure(batch["depth"], t_s, factor, max_level=self.model.config.max_t_s)
        out = gen1_loss(
            self.model,
            z0,
            s,
            batch["content"],
            self.schedule,
            p_image=self.p_image,
            p_drop=self.p_drop,
            generator=self.generator,
        )
        self.history.append({"step": self.global_step, "loss": out.loss.detach()})
        if log_now(self):
            self.log("loss", out.loss.detach(), on_step=True, prog_bar=True)
        return out.loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate, foreach=True)
