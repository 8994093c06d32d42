"""Gen-1 at full scale, started from Stable Diffusion: the UNet's spatial layers and the video
first stage read from a released SD 1.x checkpoint (chapter 16).

Gen-1 (Esser et al., ICCV 2023; arXiv 2302.03011, Sec. 3.2) extends a pretrained text-to-image
latent diffusion model with temporal layers; Runway released no Gen-1 weights, so the released
files that *can* start it are Stable Diffusion's. :func:`init_gen1_from_sd` reads one (chapter
14's :mod:`esser_lab.ldm.checkpoint`: weights-only ``.ckpt`` or safetensors, never a full
unpickle) into :class:`~esser_lab.gen1.model.Gen1UNet` at :meth:`Gen1Config.paper`:

* every key of the image UNet (``model.diffusion_model.*`` → ``Gen1UNet.unet.*``, the official
  names unchanged) is copied **strictly**: a key the file lacks, a key the UNet lacks, or a
  tensor of another shape raises :class:`~esser_lab.weights.WeightsError` naming them;
* the one tensor Gen-1 widens, the first convolution ``input_blocks.0.0.weight`` (latent
  channels → latent + structure channels), keeps SD's kernels on the latent channels and gets
  **zeros** on the structure (depth) channel(s), so the initialised model ignores the depth and
  equals SD applied frame by frame (a file that already has the structure channels, e.g. a
  depth-conditioned model of the same widths, is copied as it is);
* the temporal layers (``temporal_input/middle/output.*``) are not in any SD file: they keep
  their zero-initialised residuals (the video model *is* the image model at initialisation) and
  are reported as new (:attr:`Gen1Init.new_keys`).

:func:`load_video_first_stage` wraps the same file's KL-f8 autoencoder
(``first_stage_model.*``) as a video first stage (:class:`VideoFirstStage`: frame by frame,
chunked over frames, SD's scale factor 0.18215), a drop-in for the chapter's
:class:`~esser_lab.gen1.method.PixelFold` (``encode(video)`` / ``decode(z)``).

Where the paper is silent (our reading, marked [check] in :class:`Gen1Config`): it initialises
from a Stable-Diffusion-family text-to-image model without naming the version in the text we
had; ``paper()`` uses SD 1.x's UNet (the one chapter 14 loads), whose cross-attention width, 768,
is the CLIP ViT-L/14 image embedding's (:data:`esser_lab.gen1.pretrained.CLIP_IMAGE_WIDTH`), so
SD 1.x's text cross-attention can read the image embedding without a new projection. An SD 2.x
start would need 1024-wide context (OpenCLIP ViT-H/14) and chapter 14's loader is SD 1.x only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from esser_lab.gen1.model import Gen1Config, Gen1UNet
from esser_lab.ldm.checkpoint import (
    LDMParts,
    ema_state_dict,
    load_first_stage,
    split_ldm_checkpoint,
)
from esser_lab.weights import WeightsError, adopt_weights

__all__ = [
    "FIRST_CONV",
    "SD_SCALE_FACTOR",
    "Gen1Init",
    "VideoFirstStage",
    "init_gen1_from_sd",
    "load_video_first_stage",
    "widen_first_conv",
]

#: the UNet's first convolution, the one tensor whose input channels Gen-1 widens
FIRST_CONV = "input_blocks.0.0.weight"
#: Stable Diffusion 1.x's latent scale (``scale_factor: 0.18215`` in ``v1-inference.yaml``; SD
#: files do not store it: ``scale_by_std`` is off)
SD_SCALE_FACTOR = 0.18215


@dataclass(frozen=True)
class Gen1Init:
    """What :func:`init_gen1_from_sd` did: the ``model`` (eval mode), the file (``source``), the
    ``copied`` UNet keys (all of SD's), the ``zero_filled`` key with the structure channels it
    added (``None`` when the file already had them), the ``new_keys`` (the temporal layers, at
    their zero-initialised residuals), and the file's ``scale_factor`` (``None``: SD's 0.18215)."""

    model: Gen1UNet
    source: str
    copied: tuple[str, ...]
    zero_filled: str | None
    new_keys: tuple[str, ...]
    scale_factor: float | None

    def summary(self) -> str:
        """One paragraph for a person: what was copied, widened and left new."""
        widened = (
            f"{self.zero_filled} widened with zeros on the structure channel(s)"
            if self.zero_filled
            else "the first convolution already had the structure channel(s)"
        )
        new = sum(self.model.state_dict()[k].numel() for k in self.new_keys)
        return (
            f"{len(self.copied)} UNet tensors copied strictly from {self.source}; {widened}; "
            f"{len(self.new_keys)} temporal tensors ({new:,} numbers) new, zero-initialised "
            "residuals"
        )


def widen_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """``weight`` (out, c, k, k) with zero input channels appended up to ``in_channels``."""
    if weight.dim() != 4:
        raise WeightsError(f"{FIRST_CONV} must be a 4-d conv kernel, got {tuple(weight.shape)}")
    extra = in_channels - weight.shape[1]
    if extra < 0:
        raise WeightsError(
            f"{FIRST_CONV} has {weight.shape[1]} input channels, more than the "
            f"{in_channels} the Gen-1 UNet takes"
        )
    zeros = weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])
    return torch.cat([weight, zeros], dim=1)


def _build_on_meta(config: Gen1Config, seed: int) -> Gen1UNet:
    """The Gen-1 UNet with its image UNet on the meta device (to adopt the file's tensors) and
    its temporal layers built for real on the CPU (zero residuals; the frame-position encoding
    and the attention's inner projections drawn from ``seed``)."""
    with torch.device("meta"):
        model = Gen1UNet(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.temporal_input = nn.ModuleList(model._mirror(b) for b in model.unet.input_blocks)
        model.temporal_middle = model._mirror(model.unet.middle_block)
        model.temporal_output = nn.ModuleList(model._mirror(b) for b in model.unet.output_blocks)
    return model


def init_gen1_from_sd(
    source: str | Path | LDMParts,
    config: Gen1Config | None = None,
    *,
    use_ema: bool = False,
    dtype: torch.dtype | None = torch.float32,
    seed: int = 0,
) -> Gen1Init:
    """A :class:`Gen1UNet` of ``config`` (default :meth:`Gen1Config.paper`) started from a
    released Stable Diffusion 1.x checkpoint (module docstring).

    ``source``: the file (``.ckpt`` read weights-only, or ``.safetensors``) or its
    :class:`~esser_lab.ldm.checkpoint.LDMParts`. ``use_ema``: SD's averaged weights
    (``model_ema.*``, in the ``-full-ema`` files). ``dtype``: of the result (``None``: the
    file's). ``seed``: draws the temporal layers' non-zero parts (frame-position encoding, the
    temporal attention's query/key/value projections); their outputs are zero either way.
    Raises :class:`~esser_lab.weights.WeightsError` for a missing file, another layout, missing
    or unexpected keys, or shapes of another configuration, naming them.
    """
    config = Gen1Config.paper() if config is None else config
    if not isinstance(config, Gen1Config):
        raise TypeError(f"config must be a Gen1Config, got {type(config).__name__}")
    if config.parameterization != "eps":
        raise WeightsError(
            f"Stable Diffusion 1.x predicts ε; a Gen-1 config with parameterization="
            f"{config.parameterization!r} cannot start from its weights (use 'eps')"
        )
    parts = source if isinstance(source, LDMParts) else split_ldm_checkpoint(source)
    model = _build_on_meta(config, seed)
    state = dict(parts.unet)
    what = f"the UNet (model.diffusion_model.*) of {parts.source}"
    if use_ema:
        if not parts.ema:
            raise WeightsError(
                f"{parts.source} holds no EMA weights (model_ema.*): load with use_ema=False"
            )
        names = [name for name, _ in model.unet.named_parameters()]
        state |= ema_state_dict(parts.ema, names)
        what += " with its EMA weights (model_ema.*)"
    zero_filled = None
    first = state.get(FIRST_CONV)
    wanted = config.unet.in_channels
    if first is not None and first.dim() == 4 and first.shape[1] == config.latent_channels:
        state[FIRST_CONV] = widen_first_conv(first, wanted)
        zero_filled = FIRST_CONV
    elif first is not None and (first.dim() != 4 or first.shape[1] != wanted):
        raise WeightsError(
            f"{what}: {FIRST_CONV} has shape {tuple(first.shape)}; the Gen-1 UNet takes "
            f"{config.latent_channels} latent (+ {config.structure_channels} structure) input "
            f"channels, so it must have {config.latent_channels} (an image model, widened with "
            f"zeros) or {wanted} input channels"
        )
    adopt_weights(model.unet, state, what=what, dtype=None)
    # one dtype for the whole model: the one asked for, else the file's (e.g. float16)
    model = model.to(dtype if dtype is not None else model.unet.input_blocks[0][0].weight.dtype)
    new = tuple(k for k in model.state_dict() if not k.startswith("unet."))
    return Gen1Init(
        model=model.eval(),
        source=parts.source,
        copied=tuple(sorted(state)),
        zero_filled=zero_filled,
        new_keys=new,
        scale_factor=parts.scale_factor,
    )


class VideoFirstStage(nn.Module):
    """A frozen image first stage applied to videos frame by frame: ``encode`` (b, f, c, H, W)
    → ``scale_factor`` · E(x) (b, f, d, H/f, W/f), ``decode`` the inverse, ``chunk`` frames at a
    time (memory: SD's KL-f8 decoder at 512² takes several GiB per frame in float32).

    ``first_stage``: a :class:`~esser_lab.nn.first_stage.FirstStage` (chapter 14's
    ``AutoencoderKL``: ``encode_latent`` / ``decode_latent`` and ``factor``). ``scale_factor``:
    SD's 0.18215 (the diffusion runs on unit-variance latents). ``sample``: encode to a posterior
    sample (as SD trains; drawn from ``generator``) or to its mean (``False``: deterministic).
    Same interface as :class:`~esser_lab.gen1.method.PixelFold`, so ``LitGen1`` takes either.
    """

    def __init__(
        self,
        first_stage: nn.Module,
        scale_factor: float = SD_SCALE_FACTOR,
        chunk: int = 8,
        sample: bool = True,
    ) -> None:
        super().__init__()
        for name in ("encode_latent", "decode_latent", "factor"):
            if not hasattr(first_stage, name):
                raise TypeError(
                    f"first_stage must be a FirstStage (encode_latent, decode_latent, factor), "
                    f"{type(first_stage).__name__} has no {name!r}"
                )
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive int (frames at a time), got {chunk!r}")
        if not (isinstance(scale_factor, (int, float)) and math.isfinite(scale_factor)) or (
            scale_factor <= 0
        ):
            raise ValueError(f"scale_factor must be a positive number, got {scale_factor!r}")
        self.first_stage = first_stage.eval().requires_grad_(False)
        self.scale_factor, self.chunk, self.sample = float(scale_factor), chunk, sample

    @property
    def factor(self) -> int:
        """The spatial down-sampling factor f of the image first stage."""
        return int(self.first_stage.factor)

    def train(self, mode: bool = True) -> VideoFirstStage:  # frozen: always eval
        super().train(mode)
        self.first_stage.eval()
        return self

    @staticmethod
    def _check(x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != 5:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a video (b, f, c, h, w), got {got}")

    @torch.no_grad()
    def encode(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Videos (b, f, c, H, W) in [−1, 1] → scaled latents (b, f, d, H/f, W/f)."""
        self._check(video, "video")
        b = video.shape[0]
        frames = rearrange(video, "b f c h w -> (b f) c h w")
        # the mean (sample=False) is AutoencoderKL's option; the FirstStage protocol samples
        options = {} if self.sample else {"sample": False}
        latents = [
            self.first_stage.encode_latent(part, generator=generator, **options)
            for part in frames.split(self.chunk)
        ]
        z = torch.cat(latents) * self.scale_factor
        return rearrange(z, "(b f) c h w -> b f c h w", b=b)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents (b, f, d, h, w) → videos (b, f, c, h·f, w·f)."""
        self._check(z, "z")
        b = z.shape[0]
        frames = rearrange(z, "b f c h w -> (b f) c h w") / self.scale_factor
        images = [self.first_stage.decode_latent(part) for part in frames.split(self.chunk)]
        return rearrange(torch.cat(images), "(b f) c h w -> b f c h w", b=b)


def load_video_first_stage(
    source: str | Path | LDMParts,
    config=None,
    *,
    scale_factor: float | None = None,
    chunk: int = 8,
    sample: bool = True,
    dtype: torch.dtype | None = torch.float32,
) -> VideoFirstStage:
    """The :class:`VideoFirstStage` of an SD checkpoint's ``first_stage_model.*`` (strict).

    ``config``: an ``AutoencoderKLConfig`` (default ``kl_f8()``, SD's VAE). ``scale_factor``:
    default the file's stored one, else SD's :data:`SD_SCALE_FACTOR`.
    """
    from esser_lab.nn.first_stage import AutoencoderKLConfig

    config = AutoencoderKLConfig.kl_f8() if config is None else config
    parts = source if isinstance(source, LDMParts) else split_ldm_checkpoint(source)
    autoencoder = load_first_stage(parts, config, dtype=dtype)
    if scale_factor is None:
        scale_factor = parts.scale_factor if parts.scale_factor is not None else SD_SCALE_FACTOR
    return VideoFirstStage(autoencoder, scale_factor, chunk=chunk, sample=sample)
