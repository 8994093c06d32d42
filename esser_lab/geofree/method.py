"""The geometry-free method as plain functions: scale normalisation, loss, sampling (chapter 12).

Rombach, Esser & Ommer, *Geometry-Free View Synthesis: Transformers and no 3D Priors*, ICCV 2021
(arXiv 2104.07652). Equations as numbered in the chapter:

* (G1) p(z_t | z_s, T) = ∏ᵢ p(z_t,i | z_t,<i, z_s, T): target codes z_t given the source codes z_s
  and the camera T = (R, t, K, K⁻¹), one code at a time;
* (G2) the loss E[−log p(z_t | z_s, T)], the next-code cross-entropy (no pixel loss);
* (G3) scale normalisation: SfM translations are known only up to scale, so the official code
  aligns the source's inverse depth, takes α = max inverse depth and uses t·α (and depth/α).
  In ``impl_nodepth`` this is the *only* use of depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from esser_lab.checks import values_check_enabled
from esser_lab.diffusion.autoregressive import top_k_top_p_filtering
from esser_lab.geofree.model import GeoTransformer
from esser_lab.nn import placement

__all__ = ["estimate_depth", "geofree_loss", "normalize_scale", "sample_codes", "sample_views"]


def estimate_depth(image: Tensor, estimator=None) -> Tensor:  # noqa: ANN001
    """Depth (b, 1, H, W) of real images for (G3), from a user-provided monocular estimator.

    The official code runs MiDaS (``torch.hub``) and aligns it to sparse COLMAP points. esser_lab
    does not ship or download MiDaS: pass ``estimator``, any callable image → positive depth
    (e.g. MiDaS loaded by the user, inverted and aligned). The toy world has exact depth.
    """
    if estimator is None:
        raise RuntimeError(
            "real images need a depth estimator for the scale normalisation (G3): load MiDaS "
            "yourself (torch.hub 'intel-isl/MiDaS') and pass estimator=..., a callable "
            "image (b, 3, H, W) -> depth (b, 1, H, W) > 0; esser_lab never downloads it"
        )
    depth = estimator(image)
    if not isinstance(depth, Tensor) or depth.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(
            f"the estimator must return depth (b, 1, H, W) = ({image.shape[0]}, 1, "
            f"{image.shape[2]}, {image.shape[3]}), got {getattr(depth, 'shape', type(depth))}"
        )
    return depth


def normalize_scale(camera: dict[str, Tensor], source_depth: Tensor) -> dict[str, Tensor]:
    """(G3): the camera with t multiplied by α = max(1 / depth) of each source view.

    ``source_depth`` (b, 1, H, W) > 0. # official code: α from MiDaS inverse depth scaled to the
    sparse COLMAP points; here the toy's metric depth plays that part.
    """
    if source_depth.dim() != 4 or source_depth.shape[1] != 1:
        raise ValueError(f"source_depth must be (b, 1, H, W), got {tuple(source_depth.shape)}")
    # read where it costs no host sync (esser_lab.checks: not inside a training step on a GPU)
    if values_check_enabled(source_depth, None) and not bool((source_depth > 0).all()):
        raise ValueError("source_depth must be positive everywhere")
    alpha = source_depth.reciprocal().amax(dim=(1, 2, 3))  # (b,)
    return {**camera, "t": camera["t"] * alpha[:, None]}


def geofree_loss(
    model: GeoTransformer, source_codes: Tensor, target_codes: Tensor, camera: dict
) -> Tensor:
    """(G2): mean cross-entropy of the target's codes (b, N) (nats per code).

    Codes from ``model.encode_to_z``; the first stage is frozen, so they can be computed once.
    """
    logits = model(source_codes, target_codes, camera)  # (b, N, vocab)
    return F.cross_entropy(rearrange(logits, "b l k -> (b l) k"), target_codes.reshape(-1))


@torch.no_grad()
def sample_codes(
    model: GeoTransformer,
    source_codes: Tensor,
    camera: dict[str, Tensor],
    temperature: float | None = None,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Target codes (b, N) drawn by (G1), one at a time, with a key/value cache.

    The conditioning block (30 camera tokens and N source codes) runs in one call, so its
    bidirectional attention is exact; then each step feeds the newest code. ``temperature`` and
    ``top_k`` default to the config's (paper: 1.0 and top-k 100).
    """
    config = model.config
    temperature = config.temperature if temperature is None else temperature
    top_k = config.top_k if top_k is None else top_k
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    gpt = model.transformer
    was_training = model.training
    model.eval()
    try:
        embeddings = model.emb_stage_model(**camera)
        logits, past = gpt.forward_with_past(source_codes, embeddings=embeddings)
        codes = []
        for i in range(config.num_codes):
            last = logits[:, -1] / temperature
            if top_k is not None:
                last = top_k_top_p_filtering(last, top_k=top_k)
            code = placement.multinomial(F.softmax(last.float(), -1), 1, generator=generator)
            codes.append(code)
            if i + 1 < config.num_codes:
                logits, past = gpt.forward_with_past(code, past)
    finally:
        model.train(was_training)
    return torch.cat(codes, 1)  # (b, N)


@torch.no_grad()
def sample_views(
    model: GeoTransformer,
    source: Tensor,
    camera: dict[str, Tensor],
    temperature: float | None = None,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Target views (b, 3, H, W) sampled from source views (b, 3, H, W) and the camera."""
    codes = sample_codes(model, model.encode_to_z(source), camera, temperature, top_k, generator)
    return model.decode_to_img(codes).clamp(-1, 1)
