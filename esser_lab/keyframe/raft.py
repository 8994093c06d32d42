"""RAFT flow and its forward–backward error for real video (chapter 15 at ``full``).

The paper computes the flow from the target to each keyframe with a frozen RAFT (Teed & Deng
2020; ``raft-things.pth``) at 256×256, and the generator's error channel with a
forward–backward check (``gi/modules/warp/raft.py``): with f the flow target → keyframe and b the
flow keyframe → target, both in pixels, e(p) the mean over the two components of
|f(p) + b(p + f(p))|, zero where the two agree.
:class:`RaftFlow` wraps torchvision's RAFT to give exactly the chapter's convention
(:func:`esser_lab.data.video.flow_between`: a backward flow from the target to the keyframe, in
pixels (dx, dy) of the frames given: target pixel p shows the point at p + f(p) of the
keyframe) and that error; :func:`raft_flow` builds it with torchvision's ``raft_large`` and the
``Raft_Large_Weights.C_T_V1`` weights (trained on FlyingChairs + FlyingThings, the weights of
the original ``raft-things.pth`` ported by torchvision; fetched by torchvision's weights API with
their checksum when missing).

Never at ``tiny``, in the tests or in CI: there the stand-in for RAFT is the data's own flow,
exact plus a smooth error (:func:`esser_lab.keyframe.method.keyframe_samples`), whose error
channel is that error's Euclidean norm (not the official reduction). Pieces tested alone:
:func:`resize_flow`, :func:`consistency_error`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esser_lab.keyframe.layers import warp_features
from esser_lab.keyframe.method import inpaint_flows

__all__ = ["RaftFlow", "consistency_error", "keyframe_flows", "raft_flow", "resize_flow"]


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """``flow`` (n, 2, h, w) in pixels of an h×w grid, as a flow in pixels of a ``size`` =
    (H, W) grid: resized bilinearly (``align_corners=True``) and its (dx, dy) scaled by W/w
    and H/h (official ``resize_flows``)."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    resized = F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device)
    return resized * scale.view(1, 2, 1, 1)


def consistency_error(forward: Tensor, backward: Tensor, *, official: bool = True) -> Tensor:
    """The forward–backward error (n, 1, H, W) of ``forward`` f (target → key) and
    ``backward`` b (key → target), both (n, 2, H, W) in pixels, with r(p) = f(p) + b(p + f(p)),
    b read at p + f(p) bilinearly with zeros outside the frame (so a point that leaves the
    keyframe gets r = f(p)). ``official`` (default): the official reduction
    (``gi/modules/warp/raft.py``), the mean of the two components' absolute values,
    (|r_x| + |r_y|)/2, on which the released generator was trained (at the official 256×256
    with RAFT at 256×256 its extra rescaling is 1); ``official=False``: the Euclidean norm
    ‖r‖₂ instead."""
    if forward.shape != backward.shape or forward.dim() != 4 or forward.shape[1] != 2:
        raise ValueError(
            f"forward and backward flows must both be (n, 2, H, W), got {tuple(forward.shape)} "
            f"and {tuple(backward.shape)}"
        )
    residual = forward + warp_features(backward, forward)
    if official:
        return residual.abs().mean(dim=1, keepdim=True)
    return residual.norm(dim=1, keepdim=True)


class RaftFlow(nn.Module):
    """Flow target → keyframe and its forward–backward error from an optical-flow network.

    ``raft``: a torchvision RAFT (or any callable ``(image1, image2, num_flow_updates) →``
    list of flows, the last the final estimate in pixels of its input, image1 → image2, images
    in [−1, 1]); ``resolution`` (H, W): where it runs, multiples of 8 (the paper: 256×256);
    ``iterations``: its refinement steps (the official 20); ``official_error`` (default): the
    error's official reduction, the mean of |f + b∘(id + f)| over the two components
    (:func:`consistency_error`; False: its Euclidean norm). Frozen and always in eval mode.

    :meth:`forward` takes the target and the keyframe (n, 3, H, W) in [0, 1] and returns
    ``flow`` (n, 2, H, W) in the frames' pixels and ``error`` (n, 1, H, W). With ``mask``
    (n, 1, H, W), 1 in the target's hole, the official order (``gi/modules/warp/raft.py``):
    the forward flow *and* the backward flow are filled first
    (:func:`~esser_lab.keyframe.method.inpaint_flows`: 20 points of the hole's inner edge,
    weights 1/d⁶; the backward flow with the target's mask too, as the official), then the
    error is the forward–backward check of the filled flows (inside the hole, the consistency
    of two interpolations; the error itself is not filled).
    """

    def __init__(
        self,
        raft: nn.Module | Callable[..., list[Tensor]],
        resolution: tuple[int, int] = (256, 256),
        iterations: int = 20,
        *,
        official_error: bool = True,
    ) -> None:
        super().__init__()
        if len(resolution) != 2 or any(r % 8 or r < 8 for r in resolution):
            raise ValueError(f"resolution must be two multiples of 8, got {resolution}")
        if iterations < 1:
            raise ValueError(f"iterations must be ≥ 1, got {iterations}")
        self.raft = raft
        if isinstance(raft, nn.Module):
            raft.requires_grad_(False).eval()
        self.resolution = tuple(resolution)
        self.iterations = int(iterations)
        self.official_error = official_error

    def train(self, mode: bool = True) -> RaftFlow:
        """Always eval (the official ``disabled_train``): RAFT is frozen."""
        return super().train(False)

    def _flow(self, a: Tensor, b: Tensor, size: tuple[int, int]) -> Tensor:
        flows = self.raft(a, b, num_flow_updates=self.iterations)
        return resize_flow(flows[-1].float(), size)

    @torch.no_grad()
    def forward(
        self, target: Tensor, key: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if target.dim() != 4 or target.shape[1] != 3 or key.shape != target.shape:
            raise ValueError(
                f"target and key must both be (n, 3, H, W) in [0, 1], got {tuple(target.shape)} "
                f"and {tuple(key.shape)}"
            )
        size = tuple(target.shape[-2:])

        def prepare(x: Tensor) -> Tensor:
            x = F.interpolate(x * 2 - 1, size=self.resolution, mode="bilinear", align_corners=True)
            return x.contiguous()

        a, b = prepare(target), prepare(key)
        flow = self._flow(a, b, size)
        backward = self._flow(b, a, size)
        if mask is not None:  # filled before the check, as the official
            flow, backward = inpaint_flows(flow, mask), inpaint_flows(backward, mask)
        return flow, consistency_error(flow, backward, official=self.official_error)


def keyframe_flows(
    flow: RaftFlow, image: Tensor, keys: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The generator's ``flows`` (n, f, 2, H, W) and ``flow_errors`` (n, f, 1, H, W): ``flow``
    from the target ``image`` (n, 3, H, W) to each keyframe of ``keys`` (n, f, 3, H, W), the
    hole ``mask`` filled from its inner edge (the official pipeline runs RAFT on the unmasked
    target and fills the hole's flows afterwards, before the forward–backward check)."""
    pairs = [flow(image, keys[:, i], mask) for i in range(keys.shape[1])]
    return torch.stack([p[0] for p in pairs], 1), torch.stack([p[1] for p in pairs], 1)


def raft_flow(
    pretrained: str,
    *,
    resolution: tuple[int, int] = (256, 256),
    iterations: int = 20,
    official_error: bool = True,
) -> RaftFlow:
    """:class:`RaftFlow` around torchvision's ``raft_large`` with ``Raft_Large_Weights.C_T_V1``
    (the paper's ``raft-things.pth``), fetched by torchvision's weights API (checksum checked)
    when not in torch's cache. Only for ``pretrained == "published"`` (small/full): RAFT has no
    stand-in of its own; at tiny, in tests and CI the flow is the data's
    (:func:`~esser_lab.keyframe.method.keyframe_samples`)."""
    if pretrained != "published":
        raise ValueError(
            f"RAFT is used with its published weights only (got pretrained={pretrained!r}): "
            "at tiny, in the tests and in CI the flow is the data's exact flow plus noise "
            "(keyframe_samples), the stand-in for RAFT"
        )
    from torchvision.models.optical_flow import Raft_Large_Weights, raft_large

    weights = Raft_Large_Weights.C_T_V1
    model = raft_large(weights=None)  # built empty: torchvision's own load would unpickle fully
    # fetched (checksum checked) and read as tensors only
    state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    model.load_state_dict(state)
    return RaftFlow(model, resolution, iterations, official_error=official_error)
