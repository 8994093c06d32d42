"""Procedural video: textured objects moving over a panned, textured background, all factors known.

The data of the video chapters (15: keyframe propagation, 16: Gen-1). A clip has ``frames``
frames of ``size x size`` pixels; ``objects`` discs and squares move at constant velocity, each at
its own constant depth, over a high-frequency background that pans at a constant velocity of its
own (the "camera"). Everything moves by pure translation and is rendered analytically at the
pixel centres (sub-pixel motion, no wrap seams), so the per-frame depth, the visible masks and the
optical flow between any two frames are exact, and so is which pixels are occluded in the other.

Conventions a reader could get wrong:

* images are float32 in ``[-1, 1]``; object colours come from :data:`esser_lab.data.sprites.COLOURS`
  and alternate with their half (``0.5 * colour``) where the texture is "off", as in ``sprites``;
  the background is a grey level with a faint tint, textured by two oriented sinusoids, so the
  saturated object colours stand out from it;
* ``position`` is the (x, y) centre in ``[0, 1]``, x to the right, **y down**; ``velocity`` and
  ``camera`` are in image sides per frame;
* ``depth`` is a *distance* in ``[0, 1]`` (1 = the background, far; objects 0.2 to 0.7), not the
  inverse depth MiDaS predicts; nearer objects are drawn on top;
* :func:`flow_between` gives *backward* flow: the pixel ``p`` of the target frame shows the point
  that sits at ``p + flow[:, :, p]`` in the key frame, so ``warp(key_frame, flow)`` rebuilds the
  target wherever ``valid`` says that point is visible in the key frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from esser_lab.data._batching import Indexable
from esser_lab.data._raster import check_generator, check_positive_int, pixel_centres, uniform
from esser_lab.data.sprites import COLOURS, TEXTURES

__all__ = ["SHAPES", "Clips", "flow_between", "sample_clips", "warp"]

SHAPES = ("circle", "square")
_RADIUS = (0.14, 0.22)  # object half-extent, as a fraction of the side
_DEPTH = (0.2, 0.7)
_FREQUENCY = (0.12, 0.3)  # background cycles per pixel (Nyquist is 0.5)
_TEXTURE_CYCLES = 1.5  # texture periods across an object's half-extent
_SQUARE = (
    0.85  # a square's half-side relative to a disc's radius of the same "radius" (similar area)
)


@dataclass(frozen=True)
class Clips(Indexable):
    """A batch of clips with every factor (``n`` clips, ``T`` frames, ``K`` objects).

    Attributes:
        video: ``(n, T, 3, H, W)`` float32 in ``[-1, 1]``.
        depth: ``(n, T, 1, H, W)`` float32 distance in ``[0, 1]``, 1 on the background.
        mask: ``(n, T, K, H, W)`` bool, the visible pixels of each object.
        position: ``(n, T, K, 2)`` centres (x, y) in ``[0, 1]``; velocity: ``(n, K, 2)`` per frame.
        camera: ``(n, 2)`` the background's velocity per frame (image sides).
        radius: ``(n, K)`` half-extent as a fraction of the side; object_depth: ``(n, K)``.
        shape, colour, texture: ``(n, K)`` long indices into :data:`SHAPES`, ``sprites.COLOURS``,
            ``sprites.TEXTURES``.
        content: ``(n, K * (len(COLOURS) + len(TEXTURES)))`` one-hot colour and texture of each
            object: the clip's content code (constant over its frames).
    """

    video: Tensor
    depth: Tensor
    mask: Tensor
    position: Tensor
    velocity: Tensor
    camera: Tensor
    radius: Tensor
    object_depth: Tensor
    shape: Tensor
    colour: Tensor
    texture: Tensor
    content: Tensor

    @property
    def frames(self) -> int:
        return self.video.shape[1]

    @property
    def size(self) -> int:
        return self.video.shape[-1]

    def label(self) -> Tensor:
        """``(n, T, H, W)`` long: the layer each pixel shows (0 = background, k + 1 = object k)."""
        n, t, k, h, w = self.mask.shape
        ids = torch.arange(1, k + 1, device=self.mask.device).view(1, 1, k, 1, 1)
        return (self.mask.long() * ids).amax(dim=2) if k else self.mask.new_zeros(n, t, h, w).long()


def _texture_on(texture: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Where the texture shows the full colour; ``u, v`` object-frame coordinates in [-1, 1]."""
    su, sv = torch.sin(math.pi * _TEXTURE_CYCLES * u), torch.sin(math.pi * _TEXTURE_CYCLES * v)
    cu, cv = torch.cos(math.pi * _TEXTURE_CYCLES * u), torch.cos(math.pi * _TEXTURE_CYCLES * v)
    on = torch.ones_like(u, dtype=torch.bool)
    stripes, checker, dots = su > 0, su * sv > 0, cu * cv > 0.3
    t = texture.view(-1, *([1] * (u.dim() - 1)))
    on = torch.where(t == TEXTURES.index("stripes"), stripes, on)
    on = torch.where(t == TEXTURES.index("checker"), checker, on)
    return torch.where(t == TEXTURES.index("dots"), dots, on)


def sample_clips(
    n: int,
    frames: int = 8,
    size: int = 16,
    objects: int = 2,
    *,
    generator: torch.Generator,
    max_camera: float = 0.04,
) -> Clips:
    """Draw ``n`` clips of ``frames`` frames of ``size x size`` pixels with ``objects`` objects.

    Each object gets a start and an end position inside the frame (so it stays in view, at a speed
    of up to ~0.1 of the side per frame), a radius, a depth, a shape, a distinct colour and a
    texture; the background gets a tint, two sinusoids and a pan velocity in
    ``[-max_camera, max_camera]²``.
    Deterministic given the generator's state; vectorised over clips and frames.
    """
    check_positive_int(n, "n")
    check_positive_int(frames, "frames")
    check_positive_int(size, "size")
    generator = check_generator(generator)
    if isinstance(objects, bool) or not isinstance(objects, int) or not 0 <= objects <= 4:
        raise ValueError(f"objects must be an int from 0 to 4, got {objects!r}")
    if not 0.0 <= max_camera <= 0.25:
        raise ValueError(f"max_camera must be in [0, 0.25] image sides per frame, got {max_camera}")
    dev, k = generator.device, objects

    # --- factors, always drawn in this order ------------------------------------------------
    radius = uniform((n, k), *_RADIUS, generator)
    start = radius[..., None] + uniform((n, k, 2), 0, 1, generator) * (1 - 2 * radius[..., None])
    end = radius[..., None] + uniform((n, k, 2), 0, 1, generator) * (1 - 2 * radius[..., None])
    velocity = (end - start) / max(frames - 1, 1)
    depth_k = uniform((n, k), *_DEPTH, generator)
    shape = torch.randint(len(SHAPES), (n, k), generator=generator, device=dev)
    colour = torch.rand((n, len(COLOURS)), generator=generator, device=dev).argsort(-1)[:, :k]
    texture = torch.randint(len(TEXTURES), (n, k), generator=generator, device=dev)
    camera = uniform((n, 2), -max_camera, max_camera, generator)
    grey = uniform((n, 1), -0.55, 0.05, generator)
    tint = uniform((n, 3), -0.1, 0.1, generator)
    angle = uniform((n, 2), 0, math.pi, generator)
    freq = uniform((n, 2), *_FREQUENCY, generator)
    phase = uniform((n, 2), 0, 2 * math.pi, generator)

    # --- background: texture coordinates q = p - camera * size * t ----------------------------
    c = pixel_centres(size, dev)
    t = torch.arange(frames, device=dev, dtype=torch.float32)
    shift = camera[:, None, :] * size * t[None, :, None]  # (n, T, 2) pixels
    qx = c.view(1, 1, 1, size) - shift[..., 0, None, None]  # (n, T, 1, W)
    qy = c.view(1, 1, size, 1) - shift[..., 1, None, None]  # (n, T, H, 1)
    pattern = 0
    for i in range(2):
        kx = (freq[:, i] * torch.cos(angle[:, i])).view(n, 1, 1, 1)
        ky = (freq[:, i] * torch.sin(angle[:, i])).view(n, 1, 1, 1)
        pattern = pattern + torch.sin(
            2 * math.pi * (kx * qx + ky * qy) + phase[:, i].view(n, 1, 1, 1)
        )
    level = grey.view(n, 1, 1, 1) + 0.2 * pattern  # (n, T, H, W)
    video = (level[:, :, None] + tint.view(n, 1, 3, 1, 1)).clamp(-1, 1)
    depth = torch.ones(n, frames, 1, size, size, device=dev)

    # --- objects, far to near -----------------------------------------------------------------
    position = start[:, None] + velocity[:, None] * t.view(1, frames, 1, 1)  # (n, T, K, 2)
    palette = torch.tensor(list(COLOURS.values()), device=dev)  # (8, 3)
    masks = torch.zeros(n, frames, k, size, size, dtype=torch.bool, device=dev)
    for j in depth_k.argsort(dim=1, descending=True).T:  # j: (n,) the next-farthest object
        rows = torch.arange(n, device=dev)
        centre = position[rows, :, j] * size  # (n, T, 2) pixels
        r = (radius[rows, j] * size).view(n, 1, 1, 1)
        dx = c.view(1, 1, 1, size) - centre[..., 0, None, None]  # (n, T, 1, W)
        dy = c.view(1, 1, size, 1) - centre[..., 1, None, None]  # (n, T, H, 1)
        disc = dx * dx + dy * dy < r * r
        square = torch.maximum(dx.abs(), dy.abs()) < _SQUARE * r
        inside = torch.where((shape[rows, j] == 0).view(n, 1, 1, 1), disc, square)
        on = _texture_on(texture[rows, j], dx / r, dy / r)  # (n, T, H, W)
        rgb = palette[colour[rows, j]].view(n, 1, 3, 1, 1)
        pixel = torch.where(on[:, :, None], rgb, 0.5 * rgb)
        video = torch.where(inside[:, :, None], pixel, video)
        depth = torch.where(inside[:, :, None], depth_k[rows, j].view(n, 1, 1, 1, 1), depth)
        masks[rows, :, j] = inside
        masks &= ~(
            inside[:, :, None]
            & (torch.arange(k, device=dev).view(1, 1, k, 1, 1) != j.view(n, 1, 1, 1, 1))
        )
    eye_c, eye_t = torch.eye(len(COLOURS), device=dev), torch.eye(len(TEXTURES), device=dev)
    content = torch.cat([eye_c[colour], eye_t[texture]], dim=-1).reshape(n, -1)
    return Clips(
        video=video.float(),
        depth=depth,
        mask=masks,
        position=position,
        velocity=velocity,
        camera=camera,
        radius=radius,
        object_depth=depth_k,
        shape=shape,
        colour=colour,
        texture=texture,
        content=content,
    )


def _frame_index(
    frame: int | Tensor, n: int, frames: int, name: str, device: torch.device
) -> Tensor:
    if isinstance(frame, bool):
        raise TypeError(f"{name} must be an int or a (n,) long tensor, got a bool")
    if isinstance(frame, int):
        frame = torch.full((n,), frame, dtype=torch.long, device=device)
    if not isinstance(frame, Tensor) or frame.shape != (n,) or frame.is_floating_point():
        raise ValueError(f"{name} must be an int or a ({n},) long tensor of frame indices")
    if bool(((frame < 0) | (frame >= frames)).any()):
        raise ValueError(f"{name} must index frames 0..{frames - 1}, got {frame.tolist()}")
    return frame.to(device)


def flow_between(clips: Clips, target: int | Tensor, key: int | Tensor) -> tuple[Tensor, Tensor]:
    """Exact backward flow from the ``target`` frame to the ``key`` frame, and where it is valid.

    Returns:
        ``flow`` ``(n, 2, H, W)`` in pixels (dx, dy): target pixel ``p`` shows the point that is at
        ``p + flow`` in the key frame (the visible layer's velocity times ``key - target``);
        ``valid`` ``(n, 1, H, W)`` bool: that point lies inside the key frame and the same layer is
        visible there (not occluded by a nearer object, not a revealed background point).
    """
    n, frames, size = clips.video.shape[0], clips.frames, clips.size
    dev = clips.video.device
    target = _frame_index(target, n, frames, "target", dev)
    key = _frame_index(key, n, frames, "key", dev)
    rows = torch.arange(n, device=dev)
    label = clips.label()  # (n, T, H, W)
    here = label[rows, target]  # (n, H, W)
    layers = torch.cat([clips.camera[:, None], clips.velocity], dim=1)  # (n, 1 + K, 2)
    velocity = layers.gather(1, here.flatten(1)[..., None].expand(-1, -1, 2))  # (n, H*W, 2)
    steps = (key - target).float().view(n, 1, 1) * size
    flow = (velocity * steps).view(n, size, size, 2).permute(0, 3, 1, 2).contiguous()
    c = pixel_centres(size, dev)
    x = c.view(1, 1, size) + flow[:, 0]  # where the point sits in the key frame (pixel units)
    y = c.view(1, size, 1) + flow[:, 1]
    inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    col = x.floor().long().clamp(0, size - 1)
    row = y.floor().long().clamp(0, size - 1)
    there = label[rows, key].flatten(1).gather(1, (row * size + col).flatten(1)).view(n, size, size)
    return flow, (inside & (there == here))[:, None]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` ``(n, C, H, W)`` at ``p + flow`` (bilinear, border padding)."""
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"warp expects image (n, C, H, W) and flow (n, 2, H, W), got {tuple(image.shape)} "
            f"and {tuple(flow.shape)}"
        )
    if flow.shape[0] != image.shape[0] or flow.shape[2:] != image.shape[2:]:
        raise ValueError(
            f"flow {tuple(flow.shape)} must match the image's batch and grid {tuple(image.shape)}"
        )
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=flow.dtype) + 0.5,
        torch.arange(w, device=image.device, dtype=flow.dtype) + 0.5,
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) / w * 2 - 1  # align_corners=False: pixel centres at (i + 0.5) / w
    gy = (ys + flow[:, 1]) / h * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
