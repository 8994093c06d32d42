"""Gen-1's two pretrained networks at small/full scale: CLIP's image embedding (the content c)
and MiDaS's depth (the structure s), through ``transformers`` (an optional extra).

Gen-1 (Esser et al., ICCV 2023; arXiv 2302.03011, Fig. 2 and Sec. 3.3) computes, from the same
training clip, the content c = the CLIP image embedding of *one of its frames* and the structure
s = the MiDaS monocular depth of *every* frame (blurred by t_s and brought to the latent grid by
:func:`esser_lab.gen1.method.structure`). At tiny size, in tests and in CI the chapter uses
stand-ins behind the same interfaces (the clip's content code; the data's exact depth: CHAPTER.md's
rule for pretrained parts); nothing here downloads unless :meth:`from_hub` is called at small or
full scale with published weights, at a pinned revision.

* :class:`CLIPImageContent`: ``CLIPVisionModelWithProjection``, its projected ``image_embeds``
  (768-d for ViT-L/14 = :data:`CLIP_IMAGE_WIDTH` = ``Gen1Config.paper().content_dim``). Which CLIP
  the paper used is not in the text we had [check]; ViT-L/14 is SD 1.x's text encoder's
  family and the width SD 1.x's cross-attention reads. [choice] The embedding is used as the
  model returns it (not L2-normalised), as diffusers' image-embedding pipelines do.
* :class:`MiDaSDepth`: MiDaS v3 DPT-Large as ``DPTForDepthEstimation`` (``Intel/dpt-large``,
  the model the paper names). It predicts *relative inverse* depth (large = near, unknown
  scale and shift); :func:`inverse_depth_to_distance` turns it into the chapter's convention,
  a *distance* in [0, 1] with 1 = far (:mod:`esser_lab.data.video`: background 1, objects
  nearer). [choice] min–max over each *clip* (not each frame, so a clip's depth keeps one scale
  and does not flicker); the paper does not say how it normalises.

Pre-processing is done on tensors (videos in [−1, 1], as the whole book), with the constants of
the models' image processors (read from the processor when one is loaded): CLIP resizes the
shorter side to 224 (bicubic), centre-crops 224 and normalises with CLIP's mean and std; DPT
resizes to 384×384 (bicubic) and normalises with mean = std = 0.5. Differences from the
processors: they resample 8-bit PIL images; here ``torch`` bicubic with antialiasing on floats
(values differ by about one grey level).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "CLIP_IMAGE_MODEL",
    "CLIP_IMAGE_WIDTH",
    "CLIP_MEAN",
    "CLIP_REVISION",
    "CLIP_SIZE",
    "CLIPImageContent",
    "ContentEncoder",
    "DepthEstimator",
    "MIDAS_MODEL",
    "MIDAS_SIZE",
    "MiDaSDepth",
    "clip_preprocess",
    "inverse_depth_to_distance",
    "midas_preprocess",
    "random_frame",
]

CLIP_IMAGE_MODEL = "openai/clip-vit-large-patch14"
#: a commit of ``openai/clip-vit-large-patch14`` on the Hugging Face hub, as pinned by other
#: public projects (not re-checked against the hub from here: nothing is downloaded)
CLIP_REVISION = "32bd64288804d66eefd0ccbe215aa642df71cc41"
CLIP_IMAGE_WIDTH = 768  # ViT-L/14's projection_dim
CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIDAS_MODEL = "Intel/dpt-large"
MIDAS_SIZE = 384
MIDAS_MEAN = MIDAS_STD = (0.5, 0.5, 0.5)
_COMMIT = re.compile(r"[0-9a-f]{40}")


@runtime_checkable
class ContentEncoder(Protocol):
    """c(x): ``encode(frames (b, 3, H, W) in [−1, 1]) → (b, content_dim)``."""

    content_dim: int

    def encode(self, frames: Tensor) -> Tensor: ...


@runtime_checkable
class DepthEstimator(Protocol):
    """s(x) before the blur: ``depth(video (b, f, 3, H, W) in [−1, 1]) → (b, f, 1, H, W)``, a
    distance in [0, 1], 1 = far (the data's convention)."""

    def depth(self, video: Tensor) -> Tensor: ...


# ---- tensors in, tensors out ------------------------------------------------------------------


def _check_images(x: Tensor, name: str, dims: int) -> None:
    shape = "(b, 3, H, W)" if dims == 4 else "(b, f, 3, H, W)"
    if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-3] != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be RGB {shape} in [-1, 1], got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")


def _normalise(x01: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 - m) / s


def clip_preprocess(
    frames: Tensor,
    size: int = CLIP_SIZE,
    mean: tuple[float, ...] = CLIP_MEAN,
    std: tuple[float, ...] = CLIP_STD,
) -> Tensor:
    """Frames (b, 3, H, W) in [−1, 1] → CLIP's ``pixel_values`` (b, 3, size, size): the shorter
    side resized to ``size`` (bicubic, antialiased, clamped to [0, 1]), centre-cropped, then
    normalised with ``mean`` and ``std`` (module docstring)."""
    _check_images(frames, "frames", 4)
    x = (frames.float() + 1) / 2
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if new != (h, w):
        x = F.interpolate(x, size=new, mode="bicubic", align_corners=False, antialias=True)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    x = x[..., top : top + size, left : left + size].clamp(0, 1)
    return _normalise(x, mean, std)


def midas_preprocess(
    frames: Tensor,
    size: int | tuple[int, int] = MIDAS_SIZE,
    mean: tuple[float, ...] = MIDAS_MEAN,
    std: tuple[float, ...] = MIDAS_STD,
) -> Tensor:
    """Frames (n, 3, H, W) in [−1, 1] → DPT's ``pixel_values`` (n, 3, size, size): resized
    (bicubic, antialiased, clamped to [0, 1], aspect not kept, as ``Intel/dpt-large``'s
    processor) and normalised (mean = std = 0.5 maps [0, 1] back to [−1, 1])."""
    _check_images(frames, "frames", 4)
    target = (size, size) if isinstance(size, int) else tuple(size)
    x = (frames.float() + 1) / 2
    if tuple(x.shape[-2:]) != target:
        x = F.interpolate(x, size=target, mode="bicubic", align_corners=False, antialias=True)
    return _normalise(x.clamp(0, 1), mean, std)


def inverse_depth_to_distance(
    inverse_depth: Tensor, per: Literal["clip", "frame"] = "clip"
) -> Tensor:
    """MiDaS's relative inverse depth (b, f, H, W) or (b, f, 1, H, W) → the structure's
    convention (b, f, 1, H, W): 1 − (d − min) / (max − min), min and max over each clip (or
    each frame), so the farthest point is 1 and the nearest 0. A flat map (max = min) becomes
    1 everywhere (all background)."""
    if not isinstance(inverse_depth, Tensor) or inverse_depth.dim() not in (4, 5):
        got = tuple(inverse_depth.shape) if isinstance(inverse_depth, Tensor) else inverse_depth
        raise ValueError(f"inverse_depth must be (b, f, H, W) or (b, f, 1, H, W), got {got}")
    if per not in ("clip", "frame"):
        raise ValueError(f"per must be 'clip' or 'frame', got {per!r}")
    d = inverse_depth if inverse_depth.dim() == 5 else inverse_depth.unsqueeze(2)
    if d.shape[2] != 1:
        raise ValueError(f"inverse_depth must have one channel, got {tuple(d.shape)}")
    if d.numel() and not bool(torch.isfinite(d).all()):
        raise ValueError("inverse_depth holds NaN or infinite values")
    d = d.float()
    dims = (1, 2, 3, 4) if per == "clip" else (2, 3, 4)
    low, high = d.amin(dim=dims, keepdim=True), d.amax(dim=dims, keepdim=True)
    span = high - low
    near = torch.where(span > 0, (d - low) / span.clamp_min(torch.finfo(d.dtype).tiny), 0.0)
    return 1 - near


def random_frame(video: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One frame of each clip (b, 3, H, W), drawn uniformly (Gen-1 embeds "one of the frames"
    of the training clip; at inference the user's image instead)."""
    _check_images(video, "video", 5)
    b, f = video.shape[:2]
    index = torch.randint(f, (b,), generator=generator, device="cpu").to(video.device)
    return video[torch.arange(b, device=video.device), index]


# ---- the networks ------------------------------------------------------------------------------


def _require_transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "Gen-1's CLIP image encoder and MiDaS depth run through Hugging Face transformers, "
            "an optional extra: `pip install transformers` (the tiny chapter uses the content "
            "code and the exact depth and needs nothing more)"
        ) from None
    return transformers


def _local_folder(folder: str | Path, what: str) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a folder; expected a local copy of {what} (config.json, the weights "
            "and preprocessor_config.json, e.g. saved by save_pretrained or a hub snapshot); "
            "esser_lab never downloads it"
        )
    return root


def _check_hub(scale: Any, revision: str | None, model: str) -> str:
    """Refuse a download outside small/full with published weights, or without a pinned commit."""
    name = getattr(scale, "name", None)
    if name not in ("small", "full"):
        raise RuntimeError(
            f"{model} is fetched at small or full scale only, got scale {name!r}: at tiny, in "
            "tests and in CI the chapter uses its stand-ins and nothing downloads"
        )
    if getattr(scale, "pretrained", "published") != "published":
        raise RuntimeError(
            f"ESSER_LAB_PRETRAINED={scale.pretrained}: stand-ins were asked for, so {model} "
            "is not fetched"
        )
    if not isinstance(revision, str) or not _COMMIT.fullmatch(revision):
        raise ValueError(
            f"{model} is fetched at a pinned revision: pass revision= a 40-hex commit of the "
            f"hub repository (got {revision!r}); a branch name such as 'main' is not pinned"
        )
    return revision


def _processor_constants(processor: Any, size: Any, mean: Any, std: Any) -> tuple:
    """``size`` (an int side), ``mean``, ``std`` from a transformers image processor, falling back
    to the given defaults for what it lacks."""
    if processor is None:
        return size, mean, std
    got = getattr(processor, "crop_size", None) or getattr(processor, "size", None)
    if isinstance(got, dict):
        got = got.get("height") or got.get("shortest_edge") or size
    side = int(got) if isinstance(got, (int, float)) else size
    m = tuple(getattr(processor, "image_mean", None) or mean)
    s = tuple(getattr(processor, "image_std", None) or std)
    return side, m, s


class CLIPImageContent:
    """c(x) = CLIP's projected image embedding ``(b, content_dim)`` of frames in [−1, 1].

    ``model``: a ``transformers.CLIPVisionModelWithProjection`` (or any module called as
    ``model(pixel_values=...)`` returning ``image_embeds``), frozen on ``device``. ``processor``
    (optional): its ``CLIPImageProcessor``, whose size, mean and std replace the defaults.
    """

    def __init__(
        self,
        model: nn.Module,
        processor: Any = None,
        device: str | torch.device = "cpu",
        chunk: int = 32,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        width = getattr(getattr(model, "config", None), "projection_dim", None)
        if not isinstance(width, int):
            raise TypeError(
                "model must be a CLIPVisionModelWithProjection (its config.projection_dim is "
                f"the embedding's width), got {type(model).__name__}"
            )
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.content_dim, self.chunk = width, chunk
        self.size, self.mean, self.std = _processor_constants(
            processor, CLIP_SIZE, CLIP_MEAN, CLIP_STD
        )

    @classmethod
    def from_folder(
        cls, folder: str | Path, device: str | torch.device = "cpu", dtype=torch.float32
    ) -> CLIPImageContent:
        """From a local copy of a CLIP model (``CLIPVisionModelWithProjection`` can read a full
        ``CLIPModel`` folder too); never downloads."""
        transformers = _require_transformers()
        root = _local_folder(folder, f"a CLIP model such as {CLIP_IMAGE_MODEL}")
        model = transformers.CLIPVisionModelWithProjection.from_pretrained(
            root, torch_dtype=dtype, local_files_only=True
        )
        processor = None
        if (root / "preprocessor_config.json").is_file():
            processor = transformers.CLIPImageProcessor.from_pretrained(root, local_files_only=True)
        return cls(model, processor, device)

    @classmethod
    def from_hub(
        cls,
        scale: Any,
        revision: str | None = CLIP_REVISION,
        device: str | torch.device = "cpu",
        dtype=torch.float32,
        repository: str = CLIP_IMAGE_MODEL,
    ) -> CLIPImageContent:
        """Fetched by ``transformers`` (``huggingface_hub``'s cache, checksummed) at a pinned
        ``revision``, only at ``scale`` small or full with published weights."""
        revision = _check_hub(scale, revision, repository)
        transformers = _require_transformers()
        model = transformers.CLIPVisionModelWithProjection.from_pretrained(
            repository, revision=revision, torch_dtype=dtype
        )
        processor = transformers.CLIPImageProcessor.from_pretrained(repository, revision=revision)
        return cls(model, processor, device)

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """Frames (b, 3, H, W) in [−1, 1] → embeddings (b, content_dim), float32, on the
        frames' device."""
        _check_images(frames, "frames", 4)
        dtype = next(self.model.parameters()).dtype
        out = []
        for part in frames.split(self.chunk):
            x = clip_preprocess(part.to(self.device), self.size, self.mean, self.std)
            out.append(self.model(pixel_values=x.to(dtype)).image_embeds.float())
        embeds = torch.cat(out) if out else frames.new_zeros(0, self.content_dim)
        return embeds.to(frames.device)

    def encode_video(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """c(x) of clips (b, f, 3, H, W): the embedding of one random frame of each."""
        return self.encode(random_frame(video, generator))


class MiDaSDepth:
    """s(x) before the blur: MiDaS DPT-Large's depth of every frame, as a distance in [0, 1]
    (1 = far) at the frames' resolution ``(b, f, 1, H, W)`` (module docstring).

    ``model``: a ``transformers.DPTForDepthEstimation`` (or any module called as
    ``model(pixel_values=...)`` returning ``predicted_depth`` (n, h, w)), frozen on ``device``;
    ``processor`` (optional): its ``DPTImageProcessor``. ``chunk`` frames run at a time;
    ``per``: the normalisation's extent, ``"clip"`` or ``"frame"``.
    """

    def __init__(
        self,
        model: nn.Module,
        processor: Any = None,
        device: str | torch.device = "cpu",
        chunk: int = 16,
        per: Literal["clip", "frame"] = "clip",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        if per not in ("clip", "frame"):
            raise ValueError(f"per must be 'clip' or 'frame', got {per!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.chunk, self.per = chunk, per
        self.size, self.mean, self.std = _processor_constants(
            processor, MIDAS_SIZE, MIDAS_MEAN, MIDAS_STD
        )

    @classmethod
    def from_folder(
        cls, folder: str | Path, device: str | torch.device = "cpu", dtype=torch.float32
    ) -> MiDaSDepth:
        """From a local copy of ``Intel/dpt-large`` (or another DPT depth model); never
        downloads."""
        transformers = _require_transformers()
        root = _local_folder(folder, f"a DPT depth model such as {MIDAS_MODEL}")
        model = transformers.DPTForDepthEstimation.from_pretrained(
            root, torch_dtype=dtype, local_files_only=True
        )
        processor = None
        if (root / "preprocessor_config.json").is_file():
            processor = transformers.DPTImageProcessor.from_pretrained(root, local_files_only=True)
        return cls(model, processor, device)

    @classmethod
    def from_hub(
        cls,
        scale: Any,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype=torch.float32,
        repository: str = MIDAS_MODEL,
    ) -> MiDaSDepth:
        """Fetched by ``transformers`` at the pinned ``revision`` (a commit of the hub
        repository, which the caller must give: none was checked from here), only at ``scale``
        small or full with published weights."""
        revision = _check_hub(scale, revision, repository)
        transformers = _require_transformers()
        model = transformers.DPTForDepthEstimation.from_pretrained(
            repository, revision=revision, torch_dtype=dtype
        )
        processor = transformers.DPTImageProcessor.from_pretrained(repository, revision=revision)
        return cls(model, processor, device)

    @torch.no_grad()
    def inverse_depth(self, video: Tensor) -> Tensor:
        """MiDaS's raw relative inverse depth (b, f, H, W), resized back to the frames
        (bicubic, as transformers' post-processing)."""
        _check_images(video, "video", 5)
        b, f, _, h, w = video.shape
        frames = rearrange(video, "b f c h w -> (b f) c h w")
        dtype = next(self.model.parameters()).dtype
        out = []
        for part in frames.split(self.chunk):
            x = midas_preprocess(part.to(self.device), self.size, self.mean, self.std)
            d = self.model(pixel_values=x.to(dtype)).predicted_depth.float()  # (n, h', w')
            if d.dim() != 3:
                raise ValueError(f"predicted_depth must be (n, h, w), got {tuple(d.shape)}")
            d = F.interpolate(d[:, None], size=(h, w), mode="bicubic", align_corners=False)
            out.append(d[:, 0])
        depth = torch.cat(out) if out else frames.new_zeros(0, h, w)
        return rearrange(depth, "(b f) h w -> b f h w", b=b).to(video.device)

    def depth(self, video: Tensor) -> Tensor:
        """Videos (b, f, 3, H, W) in [−1, 1] → distance (b, f, 1, H, W) in [0, 1], 1 = far."""
        return inverse_depth_to_distance(self.inverse_depth(video), self.per)
