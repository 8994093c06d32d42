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

Pre-processing is done on tensors (videos in [−1, 1], as the whole book) by
:class:`ImagePreprocessing`, which follows the models' image processors field by field (read from
the processor when one is loaded, else ViT-L/14's and DPT-Large's): resize (the shorter side for
CLIP, height × width for DPT, DPT's ``keep_aspect_ratio`` / ``ensure_multiple_of`` rule), bicubic
or bilinear with antialiasing, centre crop, rescale factor, mean and std. A processor field it
does not implement (padding, another resampling filter, a longest-edge size, ...) is refused by
name rather than ignored. It equals ``transformers``' torchvision-backed processors (the default
from transformers 5) to float precision on the same frames given as float pixels (0–255). Given
8-bit images, the processors resample in two passes rounded and clamped to whole grey levels
between them: about one grey level apart, more where bicubic overshoots (at sharp edges). The
PIL-backed processors (transformers 4.x's default) resample with PIL's own bicubic filter, which
is not compared here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from esser_lab.gen1.preprocessing import ImagePreprocessing, check_images
from esser_lab.pretrained import TransformersSource, require_transformers

__all__ = [
    "CLIP_IMAGE_MODEL",
    "CLIP_IMAGE_WIDTH",
    "CLIP_MEAN",
    "CLIP_PREPROCESSING",
    "CLIP_REVISION",
    "CLIP_SIZE",
    "CLIPImageContent",
    "ContentEncoder",
    "DepthEstimator",
    "ImagePreprocessing",
    "MIDAS_MODEL",
    "MIDAS_PREPROCESSING",
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


#: CLIP ViT-L/14's processor: shorter side 224 (bicubic), centre crop 224, CLIP's mean and std
CLIP_PREPROCESSING = ImagePreprocessing(
    CLIP_SIZE, "bicubic", (CLIP_SIZE, CLIP_SIZE), 1 / 255, CLIP_MEAN, CLIP_STD
)
#: DPT-Large's processor: 384 × 384 (bicubic, aspect not kept), mean = std = 0.5
MIDAS_PREPROCESSING = ImagePreprocessing(
    (MIDAS_SIZE, MIDAS_SIZE), "bicubic", None, 1 / 255, MIDAS_MEAN, MIDAS_STD
)


def clip_preprocess(
    frames: Tensor,
    size: int = CLIP_SIZE,
    mean: tuple[float, ...] = CLIP_MEAN,
    std: tuple[float, ...] = CLIP_STD,
) -> Tensor:
    """Frames (b, 3, H, W) in [−1, 1] → CLIP's ``pixel_values`` (b, 3, size, size): the shorter
    side resized to ``size`` (bicubic, antialiased), centre-cropped, then
    normalised with ``mean`` and ``std`` (:class:`ImagePreprocessing`)."""
    return ImagePreprocessing(size, "bicubic", (size, size), 1 / 255, tuple(mean), tuple(std))(
        frames
    )


def midas_preprocess(
    frames: Tensor,
    size: int | tuple[int, int] = MIDAS_SIZE,
    mean: tuple[float, ...] = MIDAS_MEAN,
    std: tuple[float, ...] = MIDAS_STD,
) -> Tensor:
    """Frames (n, 3, H, W) in [−1, 1] → DPT's ``pixel_values`` (n, 3, size, size): resized
    (bicubic, antialiased, aspect not kept, as ``Intel/dpt-large``'s
    processor) and normalised (mean = std = 0.5 maps [0, 1] back to [−1, 1])."""
    target = (size, size) if isinstance(size, int) else tuple(size)
    return ImagePreprocessing(target, "bicubic", None, 1 / 255, tuple(mean), tuple(std))(frames)


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
    check_images(video, "video", 5)
    b, f = video.shape[:2]
    index = torch.randint(f, (b,), generator=generator, device="cpu").to(video.device)
    return video[torch.arange(b, device=video.device), index]


# ---- the networks ------------------------------------------------------------------------------


def _require_transformers():
    return require_transformers(
        "Gen-1's CLIP image encoder and MiDaS depth run",
        "the tiny chapter uses the content code and the exact depth and needs nothing more",
    )


#: what a local folder holds, said when it is not a folder
_FOLDER = (
    "{} (config.json, the weights and preprocessor_config.json, e.g. saved by save_pretrained "
    "or a hub snapshot)"
)


_Wrapper = TypeVar("_Wrapper", bound="_Loaders")


class _Loaders:
    """``from_folder`` and ``from_hub`` of the two wrappers: a ``transformers`` model and its
    image processor, named by the class attributes."""

    _classes: tuple[str, str]  # the model's and the processor's transformers class names
    _holds: str  # what a local folder holds
    _repository: str  # the hub repository
    _revision: str | None  # its pinned commit (None: the caller must give one)

    @classmethod
    def _load(cls: type[_Wrapper], source: TransformersSource, device, dtype) -> _Wrapper:
        transformers = _require_transformers()
        model = source.load(getattr(transformers, cls._classes[0]), dtype=dtype)
        # the processor: always from a hub repository (from_pretrained fails if it has none);
        # from a local folder only when it holds preprocessor_config.json, else the defaults
        processor = None
        if source.has("preprocessor_config.json"):
            processor = source.load(getattr(transformers, cls._classes[1]))
        return cls(model, processor, device)

    @classmethod
    def from_folder(
        cls: type[_Wrapper],
        folder: str | Path,
        device: str | torch.device = "cpu",
        dtype=torch.float32,
    ) -> _Wrapper:
        """From a local copy of the model (with its ``preprocessor_config.json`` when there is
        one); never downloads."""
        _require_transformers()  # first: say what to install before looking at the folder
        source = TransformersSource.folder(folder, _FOLDER.format(cls._holds))
        return cls._load(source, device, dtype)

    @classmethod
    def from_hub(
        cls: type[_Wrapper],
        scale: Any,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype=torch.float32,
        repository: str | None = None,
    ) -> _Wrapper:
        """Fetched by ``transformers`` (``huggingface_hub``'s cache, checksummed) at a pinned
        ``revision`` (None: the class's pinned commit, where it has one), only at ``scale``
        small or full with published weights; ``repository`` None: the class's."""
        repository = repository or cls._repository
        revision = cls._revision if revision is None else revision
        return cls._load(TransformersSource.hub(scale, repository, revision), device, dtype)


class CLIPImageContent(_Loaders):
    """c(x) = CLIP's projected image embedding ``(b, content_dim)`` of frames in [−1, 1].

    ``model``: a ``transformers.CLIPVisionModelWithProjection`` (or any module called as
    ``model(pixel_values=...)`` returning ``image_embeds``), frozen on ``device``. ``processor``
    (optional): its ``CLIPImageProcessor``, whose steps replace ViT-L/14's
    (:class:`ImagePreprocessing`; a field it does not implement is refused by name).

    :meth:`from_folder` reads a local copy (``CLIPVisionModelWithProjection`` reads a full
    ``CLIPModel`` folder too); :meth:`from_hub` fetches :data:`CLIP_IMAGE_MODEL` at
    :data:`CLIP_REVISION` unless told otherwise.
    """

    _classes = ("CLIPVisionModelWithProjection", "CLIPImageProcessor")
    _holds = f"a CLIP model such as {CLIP_IMAGE_MODEL}"
    _repository, _revision = CLIP_IMAGE_MODEL, CLIP_REVISION

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
        self.preprocessing = ImagePreprocessing.from_processor(processor, CLIP_PREPROCESSING)
        self.size = self.preprocessing.side
        self.mean, self.std = self.preprocessing.mean, self.preprocessing.std

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """Frames (b, 3, H, W) in [−1, 1] → embeddings (b, content_dim), float32, on the
        frames' device."""
        check_images(frames, "frames", 4)
        dtype = next(self.model.parameters()).dtype
        out = []
        for part in frames.split(self.chunk):
            x = self.preprocessing(part.to(self.device))
            out.append(self.model(pixel_values=x.to(dtype)).image_embeds.float())
        embeds = torch.cat(out) if out else frames.new_zeros(0, self.content_dim)
        return embeds.to(frames.device)

    def encode_video(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """c(x) of clips (b, f, 3, H, W): the embedding of one random frame of each."""
        return self.encode(random_frame(video, generator))


class MiDaSDepth(_Loaders):
    """s(x) before the blur: MiDaS DPT-Large's depth of every frame, as a distance in [0, 1]
    (1 = far) at the frames' resolution ``(b, f, 1, H, W)`` (module docstring).

    ``model``: a ``transformers.DPTForDepthEstimation`` (or any module called as
    ``model(pixel_values=...)`` returning ``predicted_depth`` (n, h, w)), frozen on ``device``;
    ``processor`` (optional): its ``DPTImageProcessor``, whose steps replace DPT-Large's
    (:class:`ImagePreprocessing`; a field it does not implement is refused by name).
    ``chunk`` frames run at a time;
    ``per``: the normalisation's extent, ``"clip"`` or ``"frame"``.

    :meth:`from_folder` reads a local copy of :data:`MIDAS_MODEL` (or another DPT depth model);
    :meth:`from_hub` fetches it at the ``revision`` the caller gives (a commit of the hub
    repository: none was checked from here).
    """

    _classes = ("DPTForDepthEstimation", "DPTImageProcessor")
    _holds = f"a DPT depth model such as {MIDAS_MODEL}"
    _repository, _revision = MIDAS_MODEL, None

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
        self.preprocessing = ImagePreprocessing.from_processor(processor, MIDAS_PREPROCESSING)
        self.size = self.preprocessing.side
        self.mean, self.std = self.preprocessing.mean, self.preprocessing.std

    @torch.no_grad()
    def inverse_depth(self, video: Tensor) -> Tensor:
        """MiDaS's raw relative inverse depth (b, f, H, W), resized back to the frames
        (bicubic, as transformers' post-processing)."""
        check_images(video, "video", 5)
        b, f, _, h, w = video.shape
        frames = rearrange(video, "b f c h w -> (b f) c h w")
        dtype = next(self.model.parameters()).dtype
        out = []
        for part in frames.split(self.chunk):
            x = self.preprocessing(part.to(self.device))
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
