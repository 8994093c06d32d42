"""The image processors' pre-processing on tensors (chapter 16's CLIP and MiDaS wrappers).

:class:`ImagePreprocessing` does what a ``transformers`` image processor (``CLIPImageProcessor``,
``DPTImageProcessor``) does to a batch of frames, field by field — resize (shorter side, or
height × width with DPT's aspect and multiple-of rule; bicubic or bilinear, antialiased), centre
crop (zero-padded where the frame is smaller), rescale, normalise — on tensors in [−1, 1], on
any device. A processor field it does not implement is refused by name, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.checks import check_finite

__all__ = ["ImagePreprocessing", "check_images"]


def check_images(x: Tensor, name: str, dims: int) -> None:
    """A clear error unless ``x`` is a float RGB batch of ``dims`` dimensions and finite (the
    values are read where :mod:`esser_lab.checks` allows: no host sync inside a training step)."""
    shape = "(b, 3, H, W)" if dims == 4 else "(b, f, 3, H, W)"
    if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-3] != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be RGB {shape} in [-1, 1], got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got {x.dtype}")
    check_finite(x, name)  # read outside training steps only (esser_lab.checks)


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
        check_images(frames, "frames", 4)
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
