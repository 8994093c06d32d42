"""Gen-1's objective, structure, content and guided sampler as plain functions (chapter 16).

Esser et al., *Structure and Content-Guided Video Synthesis with Diffusion Models* (ICCV 2023;
arXiv 2302.03011). With a fixed per-frame encoder E (z₀ = E(x)), the structure s(x) (depth,
blurred by t_s iterations, on the latent grid) and the content c(x) (an embedding of one frame)
computed from the *same* clip, the model is trained with the ε-prediction loss (Eq. 6)

    L = E_{x, t, ε, t_s} ‖ε − ε_θ(z_t, t, s(x; t_s), c(x))‖²,

the content replaced by the null content ∅ (zeros) with probability ``p_drop`` (classifier-free
guidance), and with probability ``p_image`` a batch of *images* instead of clips: every frame a
one-frame video, the temporal layers off (joint image/video training, Sec. 3.4).

Sampling (Sec. 3.4) runs DDIM (:func:`esser_lab.diffusion.ddim_sample`) on two guidances. The
content guidance (CFG) G(·) = ε(∅) + ω_c (ε(c) − ε(∅)) is applied to the video model ε_θ and to
the per-frame model ε_π (the same weights, temporal layers off); the temporal guidance
extrapolates from the per-frame towards the video prediction,

    ε̃ = G_π + ω_t (G_θ − G_π)                               (Eq. 8 [recall: number from our notes])

[choice] the paper writes the temporal guidance on μ; μ is affine in ε at a fixed step, so the
rule is the same on ε. It combines it with content guidance without a combined formula in the
text we had; ours nests the two, so ω_t = 0 is exactly the per-frame model with content
guidance and ω_t = 1 the video model with it (ω_c = 1: no content guidance).

Stand-ins at tiny size (CHAPTER.md's rule for pretrained parts):

* E: :class:`PixelFold`, pixel space folded 2×2 into channels (lossless, nothing learned);
  Gen-1 uses SD's KL-f8 autoencoder (chapter 14), whose encoder would dominate a CPU minute.
* c(x): the clip's content code (one-hot colour and texture of each object) instead of CLIP's
  image embedding of a random frame. The objects' colours and textures are the same in every
  frame, so the code *is* what any frame shows; like CLIP's embedding it is frozen, carries
  appearance and no geometry (positions and shapes are not in it).
* s(x): the data's exact depth instead of MiDaS's estimate.

The real parts for small/full scale sit behind the same interfaces: SD's autoencoder for videos
(:class:`esser_lab.gen1.checkpoint.VideoFirstStage`), CLIP's image embedding and MiDaS's depth
(:mod:`esser_lab.gen1.pretrained`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from esser_lab.checks import in_range
from esser_lab.diffusion import (
    DiscreteSchedule,
    classifier_free_guidance,
    ddim_sample,
    q_sample,
    simple_loss,
    time_to_index,
    to_eps_and_x0,
    training_target,
    x0_to_eps,
)
from esser_lab.diffusion.protocol import Denoiser
from esser_lab.gen1.model import Gen1UNet
from esser_lab.nn.placement import rand, randint, randn

__all__ = [
    "Gen1Loss",
    "PixelFold",
    "blur_depth",
    "clip_denoised",
    "gen1_loss",
    "null_content",
    "sample_video",
    "structure",
    "temporal_guidance",
    "video_denoiser",
]

#: the 5-tap binomial kernel (1, 4, 6, 4, 1)/16: one blur step adds variance 1 px²
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


class PixelFold(nn.Module):
    """The tiny first stage: E folds each ``factor`` × ``factor`` patch of a frame into channels,
    ``(b, f, c, h·p, w·p) -> (b, f, c·p·p, h, w)``; D unfolds it (exact inverse; no parameters)."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an int ≥ 1, got {factor!r}")
        self.factor = factor

    def encode(self, video: Tensor) -> Tensor:
        p = self.factor
        if video.dim() != 5 or video.shape[-1] % p or video.shape[-2] % p:
            raise ValueError(
                f"video must be (b, f, c, h, w) with h and w divisible by {p}, "
                f"got {tuple(video.shape)}"
            )
        return rearrange(video, "b f c (h p) (w q) -> b f (c p q) h w", p=p, q=p)

    def decode(self, z: Tensor) -> Tensor:
        p = self.factor
        return rearrange(z, "b f (c p q) h w -> b f c (h p) (w q)", p=p, q=p)


def _blur_once(x: Tensor) -> Tensor:
    """One separable binomial blur of ``x`` (n, 1, h, w), replicate padding."""
    k = _BINOMIAL.to(x)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1))


def blur_depth(depth: Tensor, t_s: int | Tensor, max_level: int | None = None) -> Tensor:
    """``depth`` (b, f, 1, h, w) after t_s iterations of the blur operator (Sec. 3.3).

    ``t_s`` is an int or a (b,) long tensor (one level per clip, as training draws them). One
    iteration is a 5-tap binomial blur (variance 1 px², replicate padding), so t_s steps are a
    Gaussian-like blur of standard deviation √t_s px and t_s = 0 is the identity. [recall] the
    paper's operator blurs and downsamples; its exact kernel is not in the text we had.
    ``max_level``: an upper bound of a tensor ``t_s`` (training: the config's ``max_t_s``), so
    that the number of iterations is known without reading the levels back from the device
    (clips past their level are left as they are: the same result).
    """
    if not isinstance(depth, Tensor) or depth.dim() != 5 or depth.shape[2] != 1:
        got = tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__
        raise ValueError(f"depth must be (b, f, 1, h, w), got {got}")
    b, f = depth.shape[:2]
    if isinstance(t_s, Tensor):
        levels = t_s.to(depth.device).long().expand(b)
        high = 2**62 if max_level is None else max_level + 1
        if not in_range(levels, 0, high):  # read outside training steps only
            bound = "≥ 0" if max_level is None else f"in 0..{max_level}"
            raise ValueError(f"t_s must be {bound}, got {t_s.tolist()}")
        if max_level is None:
            max_level = int(levels.max()) if levels.numel() else 0
    else:
        try:
            level = operator.index(t_s)  # an int (numpy's too), not a float or a bool
        except TypeError:
            level = -1
        if isinstance(t_s, bool) or level < 0:
            raise ValueError(f"t_s must be ≥ 0 (an int, or a (b,) tensor), got {t_s!r}")
        levels, max_level = torch.full((b,), level, device=depth.device), level
    x = rearrange(depth, "b f 1 h w -> (b f) 1 h w")
    per_image = repeat(levels, "b -> (b f) 1 1 1", f=f)
    for step in range(max_level):
        x = torch.where(per_image > step, _blur_once(x), x)
    return rearrange(x, "(b f) 1 h w -> b f 1 h w", b=b)


def structure(
    depth: Tensor, t_s: int | Tensor, factor: int = 1, max_level: int | None = None
) -> Tensor:
    """s(x): :func:`blur_depth`, then area-downsampled by ``factor`` to the latent grid."""
    blurred = blur_depth(depth, t_s, max_level)
    if factor == 1:
        return blurred
    b = blurred.shape[0]
    pooled = F.avg_pool2d(rearrange(blurred, "b f c h w -> (b f) c h w"), factor)
    return rearrange(pooled, "(b f) c h w -> b f c h w", b=b)


def null_content(content: Tensor) -> Tensor:
    """The null content ∅ for ``content`` (b, d): zeros (what the dropout trains with)."""
    return torch.zeros_like(content)


@dataclass
class Gen1Loss:
    loss: Tensor  # Eq. 6
    timesteps: Tensor  # the DDPM indices drawn, one per clip (or image)
    images: bool  # whether this batch was trained as images (temporal layers off)


def _host_uniform(generator: torch.Generator | None) -> Tensor:
    """One uniform draw on the host, for a decision the step takes in Python (images or video):
    no host sync when ``generator`` lives on the CPU (the systems' own generators do); drawn
    where a CUDA generator lives and read back (a sync) otherwise."""
    if generator is None or generator.device.type == "cpu":
        return torch.rand((), generator=generator)
    return rand((), generator=generator, device="cpu")


def gen1_loss(
    model: Gen1UNet,
    z0: Tensor,
    s: Tensor,
    c: Tensor,
    schedule: DiscreteSchedule,
    *,
    p_image: float = 0.0,
    p_drop: float = 0.0,
    generator: torch.Generator | None = None,
) -> Gen1Loss:
    """Eq. 6 on latents ``z0`` (b, f, c, h, w) with structure ``s`` (b, f, 1, h, w) and content
    ``c`` (b, d) of the same clips. With probability ``p_image`` the batch becomes b·f one-frame
    videos (images, temporal layers off); each content is replaced by ∅ with probability
    ``p_drop``. Draws come from ``generator`` (moved to the latents' device)."""
    for name, p in (("p_image", p_image), ("p_drop", p_drop)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    images = p_image > 0 and bool(_host_uniform(generator) < p_image)
    if images:  # every frame its own one-frame video, with its clip's content
        f = z0.shape[1]
        z0 = rearrange(z0, "b f c h w -> (b f) 1 c h w")
        s = rearrange(s, "b f c h w -> (b f) 1 c h w")
        c = repeat(c, "b d -> (b f) d", f=f)
    b = z0.shape[0]
    if p_drop > 0:
        keep = rand((b, 1), generator=generator, device=c.device) >= p_drop
        c = torch.where(keep, c, null_content(c))
    n = randint(schedule.T, (b,), generator=generator, device=z0.device)
    noise = randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    alpha_bar = schedule.alphas_cumprod.to(z0.device, torch.float32)[n].to(z0.dtype)
    z_t = q_sample(z0, alpha_bar, noise)
    pred = model(z_t, n, s, c)
    target = training_target(z0, noise, alpha_bar, model.config.parameterization)
    return Gen1Loss(simple_loss(pred, target), n, images)


def video_denoiser(model: Gen1UNet, T: int, temporal: bool = True) -> Denoiser:
    """The :data:`~esser_lab.diffusion.Denoiser` of the video model (``temporal``) or of the
    per-frame model μ_π (``temporal=False``); ``cond`` = ``{"structure", "content"}``."""

    def denoise(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        if not isinstance(cond, dict) or set(cond) != {"structure", "content"}:
            raise ValueError("cond must be a dict with 'structure' and 'content'")
        n = time_to_index(t, T)
        return model(x_t, n, cond["structure"], cond["content"], temporal=temporal)

    return denoise


def temporal_guidance(video: Denoiser, frame: Denoiser, temporal_scale: float) -> Denoiser:
    """ε̃ = ε_π + ω_t (ε_θ − ε_π) (Eq. 8 [recall]): ω_t = 0 the per-frame model ``frame``, 1
    the video model ``video``, > 1 extrapolates towards temporal consistency. ω_t = 1 calls only
    ``video``, ω_t = 0 only ``frame``."""
    if isinstance(temporal_scale, bool) or not isinstance(temporal_scale, (int, float)):
        raise TypeError(f"temporal_scale must be a number, got {type(temporal_scale).__name__}")

    def guided(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        if temporal_scale == 1:
            return video(x_t, t, cond)
        if temporal_scale == 0:
            return frame(x_t, t, cond)
        eps_pi = frame(x_t, t, cond)
        return eps_pi + temporal_scale * (video(x_t, t, cond) - eps_pi)

    return guided


def clip_denoised(
    model: Denoiser, schedule: DiscreteSchedule, parameterization: str = "eps"
) -> Denoiser:
    """An ε-denoiser whose ε̂ is re-derived from x̂₀ clipped to [−1, 1]: the official
    pixel-space DDPM sampler's ``clip_denoised`` (Ho et al. 2020), valid only where the latents
    are pixels (:class:`PixelFold`); an SD latent has no such range. ``model`` predicts
    ``parameterization`` (ε or v)."""

    def clipped(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        alpha_bar = schedule.alpha_bar(t).to(x_t)
        _, x0 = to_eps_and_x0(model(x_t, t, cond), x_t, alpha_bar, parameterization)
        return x0_to_eps(x0.clamp(-1, 1), x_t, alpha_bar)

    return clipped


@torch.no_grad()
def sample_video(
    model: Gen1UNet,
    schedule: DiscreteSchedule,
    s: Tensor,
    c: Tensor,
    *,
    steps: int = 20,
    content_scale: float = 1.0,
    temporal_scale: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    clip: bool = False,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (η = ``eta``, ``steps`` steps) latents (b, f, latent, h, w) for structure ``s`` and
    content ``c``, guided by ω_c = ``content_scale`` and ω_t = ``temporal_scale`` (module
    docstring). The noise is drawn from ``generator`` unless ``noise`` is given; ``clip``
    clips x̂₀ to [−1, 1] after the guidance (:func:`clip_denoised`, pixel latents only)."""
    b, f, _, h, w = s.shape
    shape = (b, f, model.config.latent_channels, h, w)
    device = next(model.parameters()).device
    if noise is None:
        noise = randn(shape, generator=generator, device=device)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")

    def content_guided(temporal: bool) -> Denoiser:
        base = video_denoiser(model, schedule.T, temporal)
        if content_scale == 1:
            return base
        null = {"structure": s, "content": null_content(c)}
        return classifier_free_guidance(base, content_scale, null)

    guided = temporal_guidance(content_guided(True), content_guided(False), temporal_scale)
    kind = model.config.parameterization
    if clip:
        guided, kind = clip_denoised(guided, schedule, kind), "eps"
    cond = {"structure": s, "content": c}
    return ddim_sample(
        guided, noise, schedule, steps=steps, eta=eta, cond=cond, generator=generator,
        parameterization=kind,
    )  # fmt: skip
