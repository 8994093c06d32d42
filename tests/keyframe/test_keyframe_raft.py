"""The RAFT wrapper: the chapter's flow convention (target → keyframe, pixels), the
forward–backward error, resizing; with an exact translation estimator and with an untrained
torchvision RAFT (shapes only)."""

import pytest
import torch
import torch.nn.functional as F

from esser_lab.data.video import flow_between, sample_clips, warp
from esser_lab.keyframe.layers import warp_features
from esser_lab.keyframe.method import inpaint_flows
from esser_lab.keyframe.raft import (
    RaftFlow,
    consistency_error,
    keyframe_flows,
    raft_flow,
    resize_flow,
)


def _constant(n: int, dx: float, dy: float, size: int) -> torch.Tensor:
    return torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(n, 2, size, size).clone()


def test_resize_flow_scales_the_components():
    flow = _constant(2, 1.0, -2.0, 8)
    up = resize_flow(flow, (16, 32))
    assert up.shape == (2, 2, 16, 32)
    assert torch.allclose(up[:, 0], torch.full((2, 16, 32), 4.0))  # x: 32 / 8
    assert torch.allclose(up[:, 1], torch.full((2, 16, 32), -4.0))  # y: 16 / 8
    assert resize_flow(flow, (8, 8)) is flow


def test_consistency_error_of_a_translation():
    forward, backward = _constant(1, 2.0, -1.0, 12), _constant(1, -2.0, 1.0, 12)
    error = consistency_error(forward, backward, official=False)
    assert error.shape == (1, 1, 12, 12)
    # where p + f lies inside the frame the two flows cancel; where it leaves, b reads 0
    assert torch.allclose(error[0, 0, 1:, :10], torch.zeros(11, 10), atol=1e-6)
    assert error[0, 0, 0, 11] == pytest.approx(5**0.5)  # ‖f‖ = √(2² + 1²)
    official = consistency_error(forward, backward)  # the default: the official reduction
    assert official[0, 0, 0, 11] == pytest.approx(1.5)  # (|2| + |−1|) / 2
    wrong = consistency_error(forward, _constant(1, 1.0, 1.0, 12), official=False)  # b ≠ −f
    assert torch.allclose(wrong[0, 0, 5, 5], torch.tensor(3.0))  # ‖(2 + 1, −1 + 1)‖
    with pytest.raises(ValueError, match="forward and backward"):
        consistency_error(forward, backward[:, :1])


class _Translation(torch.nn.Module):
    """An exact flow estimator for translated images: the integer shift d minimising
    mean |image1(p) − image2(p + d)| over the interior, returned as a constant flow in the
    pixels of its input (RAFT's interface: a list of estimates, image1 → image2)."""

    def forward(self, image1, image2, num_flow_updates=12):
        n, _, h, w = image1.shape
        best = []
        for i in range(n):
            scores = {}
            for dy in range(-6, 7):
                for dx in range(-6, 7):
                    moved = torch.roll(image2[i], shifts=(-dy, -dx), dims=(1, 2))  # image2(p + d)
                    scores[(dx, dy)] = float((image1[i] - moved)[:, 8:-8, 8:-8].abs().mean())
            best.append(min(scores, key=scores.get))
        flows = torch.tensor(best, dtype=torch.float32).view(n, 2, 1, 1).expand(n, 2, h, w)
        return [flows * 0, flows.contiguous()]


def test_wrapper_gives_the_chapter_convention_on_a_translated_pair():
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=32, mode="bilinear")
    d = (2, -1)  # (dx, dy) in the 32-pixel frames
    target = base
    key = torch.roll(base, shifts=(d[1], d[0]), dims=(2, 3))  # key(p + d) = target(p)
    flow, error = RaftFlow(_Translation(), resolution=(64, 64), iterations=3)(target, key)
    assert flow.shape == (2, 2, 32, 32) and error.shape == (2, 1, 32, 32)
    # RAFT ran at 64×64 (a shift of 2·d there); the flow is in the frames' pixels
    assert torch.allclose(flow[:, 0], torch.full((2, 32, 32), 2.0))
    assert torch.allclose(flow[:, 1], torch.full((2, 32, 32), -1.0))
    # the convention of esser_lab.data.video: sampling the key at p + flow gives the target
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(warp(key, flow)[inner], target[inner], atol=1e-5)
    assert torch.allclose(warp_features(key, flow)[inner], target[inner], atol=1e-5)
    assert float(error[inner].abs().max()) < 1e-5  # forward and backward agree
    # a hole: a translation's flow is its own fill, and the filled flows agree
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 10:20, 12:22] = 1
    filled, filled_error = RaftFlow(_Translation(), resolution=(64, 64))(target, key, mask)
    assert torch.allclose(filled, inpaint_flows(flow, mask))
    assert float(filled_error[inner].abs().max()) < 1e-5
    flows, errors = keyframe_flows(
        RaftFlow(_Translation(), (64, 64)), target, key[:, None].repeat(1, 2, 1, 1, 1), mask
    )
    assert flows.shape == (2, 2, 2, 32, 32) and errors.shape == (2, 2, 1, 32, 32)
    assert torch.allclose(flows[:, 1], filled)


class _Fields:
    """A fake RAFT returning fixed smooth fields: the forward flow on its first call of each
    pair, the backward on its second (RaftFlow asks target → key, then key → target)."""

    def __init__(self, forward, backward) -> None:
        self.fields, self.calls = (forward, backward), 0

    def __call__(self, image1, image2, num_flow_updates):
        field = self.fields[self.calls % 2]
        self.calls += 1
        return [field]


def test_the_error_is_checked_after_the_flows_are_filled():
    """The official order (gi/modules/warp/raft.py): fill the forward and the backward flow
    (both with the target's mask), then the forward–backward check; the error is not filled.
    Filling the error of the raw flows instead gives another error in the hole."""
    g = torch.Generator().manual_seed(0)
    size = (16, 24)  # RAFT runs at the frames' size: no resize
    forward = F.interpolate(torch.randn(2, 2, 3, 4, generator=g) * 3, size=size, mode="bilinear")
    backward = -forward + F.interpolate(
        torch.randn(2, 2, 3, 4, generator=g), size=size, mode="bilinear"
    )
    mask = torch.zeros(2, 1, *size)
    mask[..., 4:12, 6:18] = 1
    target, key = torch.rand(2, 3, *size, generator=g), torch.rand(2, 3, *size, generator=g)
    flow, error = RaftFlow(_Fields(forward, backward), resolution=size)(target, key, mask)
    f, b = inpaint_flows(forward, mask), inpaint_flows(backward, mask)
    assert torch.allclose(flow, f)
    assert torch.allclose(error, consistency_error(f, b), atol=1e-6)
    # the default reduction is the official one: the mean of the components' absolute values
    residual = f + warp_features(b, f)
    assert torch.allclose(error, residual.abs().mean(1, keepdim=True), atol=1e-6)
    assert not torch.allclose(error, residual.norm(dim=1, keepdim=True), atol=1e-3)
    norm = RaftFlow(_Fields(forward, backward), resolution=size, official_error=False)
    assert torch.allclose(norm(target, key, mask)[1], residual.norm(dim=1, keepdim=True), atol=1e-6)
    before = inpaint_flows(consistency_error(forward, backward), mask)  # the old order
    hole = mask > 0.5
    assert float((error - before)[hole].abs().max()) > 0.1


def test_the_data_flow_has_the_same_convention():
    """The stand-in for RAFT (the data's exact flow) samples the keyframe the same way."""
    clips = sample_clips(4, 8, 16, generator=torch.Generator().manual_seed(0))
    flow, valid = flow_between(clips, 3, 0)
    video = (clips.video + 1) / 2
    moved = warp(video[:, 0], flow)
    close = ((moved - video[:, 3]).abs().amax(1, keepdim=True) < 0.05) | ~valid
    assert float(close.float().mean()) > 0.9


def test_untrained_torchvision_raft_shapes():
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    flow = RaftFlow(raft_small(weights=None), resolution=(128, 128), iterations=2)
    flow.train()
    assert not flow.training and not flow.raft.training
    target, key = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    f, e = flow(target, key)
    assert f.shape == (2, 2, 16, 16) and e.shape == (2, 1, 16, 16)
    assert bool(torch.isfinite(f).all())

    # the error is the forward-backward check of the network's own two flows
    def prepare(x):
        return F.interpolate(x * 2 - 1, size=(128, 128), mode="bilinear", align_corners=True)

    b = resize_flow(flow.raft(prepare(key), prepare(target), num_flow_updates=2)[-1], (16, 16))
    assert torch.allclose(e, consistency_error(f, b), atol=1e-5)
    assert not any(p.requires_grad for p in flow.parameters())
    with pytest.raises(ValueError, match="multiples of 8"):
        RaftFlow(raft_small(weights=None), resolution=(60, 64))
    with pytest.raises(ValueError, match="target and key"):
        flow(target, key[:, :, :8])


def test_raft_is_never_a_stand_in():
    with pytest.raises(ValueError, match="exact flow"):
        raft_flow("stand-in")


def test_published_raft_weights_are_read_as_tensors_only(monkeypatch):
    from torchvision.models._api import WeightsEnum

    from esser_lab.keyframe import raft

    seen = {}

    def fake(self, *args, **kwargs):  # noqa: ANN001, ANN202
        seen.update(kwargs)
        from torchvision.models.optical_flow import raft_large

        torch.manual_seed(99)  # weights the model built empty inside raft_flow cannot have
        seen["state"] = raft_large(weights=None).state_dict()
        return seen["state"]

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake)
    flow = raft.raft_flow("published")
    assert seen.get("weights_only") is True and seen.get("check_hash") is True
    loaded = flow.raft.state_dict()  # the fetched tensors are the ones in the model
    assert loaded.keys() == seen["state"].keys()
    assert all(torch.equal(loaded[k], seen["state"][k]) for k in loaded)
