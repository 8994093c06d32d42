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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

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


#: PIL's resampling ids, as image processors store them → ``torch``'s interpolation modes
_RESAMPLE = {2: "bilinear", 3: "bicubic"}
#: processor fields that change nothing here: the inputs are RGB tensors already, the output
#: format, device and batching are the wrapper's (``do_reduce_labels`` acts on labels only), and
#: the rest name the processor
_NO_EFFECT = frozenset(
    {
        "do_convert_rgb", "data_format", "input_data_format", "device",
        "return_tensors", "disable_grouping", "image_seq_length", "do_reduce_labels", "images",
        "segmentation_maps", "image_processor_type", "feature_extractor_type", "processor_class",
        "auto_map",
    }
)  # fmt: skip
#: processor fields :meth:`ImagePreprocessing.from_processor` reads (``pad_size`` and
#: ``size_divisor`` act only with ``do_pad``, which is refused)
_READ = frozenset(
    {
        "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale",
        "rescale_factor", "do_normalize", "image_mean", "image_std", "keep_aspect_ratio",
        "ensure_multiple_of", "do_pad", "pad_size", "size_divisor", "default_to_square",
    }
)  # fmt: skip
_ABSENT = object()


def _size_dict(value: Any, name: str) -> dict[str, int]:
    """A processor's size (a dict, transformers 5's ``SizeDict`` or an int) → its set keys."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"int": value}
    keys = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width",
            "min_pixels", "max_pixels")  # fmt: skip
    if isinstance(value, dict):
        got = {k: v for k, v in value.items() if v is not None}
    else:
        got = {k: getattr(value, k) for k in keys if getattr(value, k, None) is not None}
    if not got:
        raise ValueError(f"the image processor's {name}={value!r} is not a size")
    return got


def _refuse(name: str, value: Any, why: str) -> ValueError:
    return ValueError(
        f"the image processor's {name}={value!r} is not implemented by ImagePreprocessing "
        f"({why}); pre-process the frames yourself or use a processor without it"
    )


def _constrain(value: float, multiple: int) -> int:
    """DPT's rounding of a side to the nearest multiple (half to even, as ``transformers``'
    ``constrain_to_multiple_of``, whose lower bound is 0: a side may round to 0)."""
    return round(value / multiple) * multiple


@dataclass(frozen=True)
class ImagePreprocessing:
    """An image processor's steps on tensors: frames (n, 3, H, W) in [−1, 1] → ``pixel_values``.

    ``size``: an int = the shorter side (the longer one scaled and truncated, as CLIP's
    processor), or (height, width); with ``keep_aspect_ratio`` both sides are scaled by the one
    of the two factors nearer to 1, and each side is rounded to a multiple of ``multiple`` (DPT's
    rule). ``resample``: ``"bicubic"`` or ``"bilinear"``, antialiased, on floats (not clamped:
    the processors' float path). ``crop``: the centre crop (height,
    width), zero-padded where the image is smaller, or None. ``rescale``: the factor applied to
    0–255 pixels (None: not rescaled, pixels stay 0–255). ``mean``/``std``: the normalisation
    (both None: none). ``resize`` False keeps the frames' size.
    """

    size: int | tuple[int, int]
    resample: str = "bicubic"
    crop: tuple[int, int] | None = None
    rescale: float | None = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    keep_aspect_ratio: bool = False
    multiple: int = 1
    resize: bool = True

    def __post_init__(self) -> None:
        sides = (self.size,) if isinstance(self.size, int) else tuple(self.size)
        if len(sides) not in (1, 2) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sides
        ):
            raise ValueError(f"size must be a positive int or (height, width), got {self.size!r}")
        if self.resample not in _RESAMPLE.values():
            raise ValueError(f"resample must be 'bicubic' or 'bilinear', got {self.resample!r}")
        if isinstance(self.size, int) and (self.keep_aspect_ratio or self.multiple != 1):
            raise ValueError(
                "keep_aspect_ratio and multiple go with a (height, width) size (DPT's rule), "
                f"not with a shorter-side size {self.size}"
            )
        if (
            isinstance(self.multiple, bool)
            or not isinstance(self.multiple, int)
            or self.multiple < 1
        ):
            raise ValueError(f"multiple must be a positive int, got {self.multiple!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together (both None: no normalisation)")
        if self.std is not None and (len(self.std) != 3 or min(self.std) <= 0):
            raise ValueError(f"std must be three positive values, got {self.std!r}")
        if self.mean is not None and len(self.mean) != 3:
            raise ValueError(f"mean must be three values, got {self.mean!r}")

    @classmethod
    def from_processor(cls, processor: Any, default: ImagePreprocessing) -> ImagePreprocessing:
        """The steps a ``transformers`` image processor takes (``default``'s for a field it
        lacks; ``default`` itself for None). A field that would act and is not implemented
        here is refused with a ValueError that names it."""
        if processor is None:
            return default
        names = (
            getattr(processor, "_valid_kwargs_names", None)  # transformers 5
            or getattr(processor, "_valid_processor_keys", None)  # transformers 4
            or list(vars(processor))
        )
        for name in names:
            value = getattr(processor, name, None)
            if name.startswith("_") or name in _READ or name in _NO_EFFECT:
                continue
            if value not in (None, False):
                raise _refuse(name, value, "a step this module does not take")
        if getattr(processor, "do_pad", None):
            raise _refuse("do_pad", processor.do_pad, "padding")
        size = default.size
        if getattr(processor, "size", None) is not None:
            got = _size_dict(processor.size, "size")
            if set(got) == {"shortest_edge"}:
                size = got["shortest_edge"]
            elif set(got) == {"height", "width"}:
                size = (got["height"], got["width"])
            elif set(got) == {"int"}:  # a bare int: a square if default_to_square says so,
                # else the shorter side; without that field, the default's kind of size
                square = getattr(processor, "default_to_square", None)
                if square is None:
                    square = not isinstance(default.size, int)
                size = (got["int"],) * 2 if square else got["int"]
            else:
                raise _refuse("size", processor.size, "only a shorter side or height × width")
        resample = default.resample
        raw = getattr(processor, "resample", None)
        if raw is not None:
            mode = getattr(raw, "value", raw)
            resample = _RESAMPLE.get(mode) if isinstance(mode, int) else mode
            if resample not in _RESAMPLE.values():
                raise _refuse("resample", raw, "bicubic or bilinear only")
        crop = default.crop
        do_crop = getattr(processor, "do_center_crop", _ABSENT)
        raw = getattr(processor, "crop_size", None)
        if do_crop is not _ABSENT and not do_crop:
            crop = None
        elif raw is not None:
            got = _size_dict(raw, "crop_size")
            if set(got) == {"int"}:
                crop = (got["int"],) * 2
            elif set(got) == {"height", "width"}:
                crop = (got["height"], got["width"])
            else:
                raise _refuse("crop_size", raw, "a crop is height × width")
        rescale = default.rescale
        if getattr(processor, "do_rescale", None) is not None:
            factor = getattr(processor, "rescale_factor", None)
            rescale = (
                (1 / 255 if factor is None else float(factor)) if processor.do_rescale else None
            )
        mean, std = default.mean, default.std
        if getattr(processor, "do_normalize", None) is False:
            mean = std = None
        else:
            mean = _triple(getattr(processor, "image_mean", None), mean)
            std = _triple(getattr(processor, "image_std", None), std)
        do_resize = getattr(processor, "do_resize", None)
        return cls(
            size=size,
            resample=resample,
            crop=crop,
            rescale=rescale,
            mean=mean,
            std=std,
            keep_aspect_ratio=bool(getattr(processor, "keep_aspect_ratio", None) or False),
            multiple=int(getattr(processor, "ensure_multiple_of", None) or 1),
            resize=default.resize if do_resize is None else bool(do_resize),
        )

    @property
    def side(self) -> int:
        """The height of the ``pixel_values`` for a square frame (the crop's, else the size's)."""
        if self.crop is not None:
            return self.crop[0]
        return self.size if isinstance(self.size, int) else self.size[0]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The resized (height, width) of a (height, width) frame, before the crop."""
        if not self.resize:
            return height, width
        if isinstance(self.size, int):
            short, long = min(height, width), max(height, width)
            new_long = int(self.size * long / short)
            return (new_long, self.size) if width <= height else (self.size, new_long)
        scale_h, scale_w = self.size[0] / height, self.size[1] / width
        if self.keep_aspect_ratio:  # the factor nearer to 1 for both sides
            if abs(1 - scale_w) < abs(1 - scale_h):
                scale_h = scale_w
            else:
                scale_w = scale_h
        new = (
            _constrain(scale_h * height, self.multiple),
            _constrain(scale_w * width, self.multiple),
        )
        if min(new) < 1:
            raise ValueError(
                f"a {height}×{width} frame resizes to {new[0]}×{new[1]} under DPT's rule (size "
                f"{self.size}, sides rounded to multiples of {self.multiple}): nothing to resize to"
            )
        return new

    def __call__(self, frames: Tensor) -> Tensor:
        """Frames (n, 3, H, W) in [−1, 1] → ``pixel_values`` (n, 3, h, w), float32."""
        _check_images(frames, "frames", 4)
        x = (frames.float() + 1) / 2
        new = self.output_size(*x.shape[-2:])
        if new != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=new, mode=self.resample, align_corners=False, antialias=True)
        if self.crop is not None:
            x = _centre_crop(x, self.crop)
        x = x * (255.0 * self.rescale if self.rescale is not None else 255.0)
        return x if self.mean is None else _normalise(x, self.mean, self.std)


def _triple(value: Any, default: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    return tuple(float(v) for v in value)


def _centre_crop(x: Tensor, crop: tuple[int, int]) -> Tensor:
    """The centre (height, width) of x, zero-padded first where x is smaller (as the
    processors: the extra row or column of an odd padding goes to the bottom or right)."""
    ch, cw = crop
    h, w = x.shape[-2:]
    if ch > h or cw > w:
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        x = F.pad(x, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2))
        h, w = x.shape[-2:]
    top, left = int((h - ch) / 2), int((w - cw) / 2)
    return x[..., top : top + ch, left : left + cw]


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
    _check_images(video, "video", 5)
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
        _check_images(frames, "frames", 4)
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
        _check_images(video, "video", 5)
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
