"""Stick figures: shapes, determinism, exact colours on masks, occlusion, transfer ground truth."""

import pytest
import torch

from esser_lab.data import figures
from esser_lab.data._pose import MARGIN


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch16() -> figures.Figures:
    return figures.sample(2048, 16, generator=gen(0))


def test_constants_are_consistent() -> None:
    assert figures.PART_NAMES == ("head", "torso", "arms", "legs")
    assert 11 <= len(figures.KEYPOINT_NAMES) <= 14
    for joint_a, joint_b, part in figures.LIMBS:
        assert joint_a in figures.KEYPOINT_NAMES and joint_b in figures.KEYPOINT_NAMES
        assert 0 <= part < len(figures.PART_NAMES)


@pytest.mark.parametrize("size", [16, 32])
def test_shapes_dtypes_and_ranges(size: int) -> None:
    batch = figures.sample(32, size, generator=gen(), textured=True)
    k = len(figures.KEYPOINT_NAMES)
    assert batch.image.shape == (32, 3, size, size) and batch.image.dtype == torch.float32
    assert batch.stickman.shape == (32, 4, size, size) and batch.stickman.dtype == torch.float32
    assert batch.part_masks.shape == (32, 4, size, size) and batch.part_masks.dtype == torch.bool
    assert batch.keypoints.shape == (32, k, 2) and batch.keypoints.dtype == torch.float32
    assert batch.colours.shape == (32, 4, 3) and batch.background.shape == (32, 3)
    assert batch.texture.shape == (32, 4)
    assert batch.image.min() >= -1 and batch.image.max() <= 1
    assert batch.stickman.min() >= 0 and batch.stickman.max() <= 1
    assert batch.texture.min() >= 0 and batch.texture.max() < 1 and batch.texture.min() > 0
    assert len(batch) == 32


def test_keypoints_inside_image_with_margin(batch16: figures.Figures) -> None:
    assert batch16.keypoints.min() >= MARGIN and batch16.keypoints.max() <= 1 - MARGIN


def test_same_seed_same_tensors_and_different_seed_differs() -> None:
    first = figures.sample(16, 16, generator=gen(3), textured=True).to_dict()
    second = figures.sample(16, 16, generator=gen(3), textured=True).to_dict()
    other = figures.sample(16, 16, generator=gen(4), textured=True).to_dict()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert not torch.equal(first["image"], other["image"])
    assert not torch.equal(first["keypoints"], other["keypoints"])


def test_image_is_part_colour_on_masks_and_background_elsewhere(batch16: figures.Figures) -> None:
    image = batch16.image.permute(0, 2, 3, 1)  # (b, h, w, 3)
    for part in range(4):
        colour = batch16.colours[:, part, None, None, :].expand_as(image)
        mask = batch16.part_masks[:, part]
        assert torch.equal(image[mask], colour[mask])
    background = batch16.background[:, None, None, :].expand_as(image)
    outside = ~batch16.part_masks.any(1)
    assert torch.equal(image[outside], background[outside])


def test_part_colour_error_of_the_ground_truth_is_zero(batch16: figures.Figures) -> None:
    masks = batch16.part_masks.float()  # (b, 4, h, w)
    area = masks.sum((2, 3)).clamp_min(1)
    mean = torch.einsum("bchw,bphw->bpc", batch16.image, masks) / area[..., None]
    present = masks.sum((2, 3)) > 0
    error = (mean - batch16.colours).abs().mean(-1)[present]
    assert error.max() < 1e-5


def test_masks_are_mutually_exclusive(batch16: figures.Figures) -> None:
    assert batch16.part_masks.sum(1).max() <= 1


def test_keypoints_lie_on_the_figure_within_one_pixel(batch16: figures.Figures) -> None:
    size = batch16.image.shape[-1]
    figure = batch16.part_masks.any(1) | (batch16.stickman > 0).any(1)  # (b, h, w)
    centres = torch.arange(size) + 0.5
    kp = batch16.keypoints * size  # (b, K, 2)
    dx = centres[None, None, None, :] - kp[..., 0, None, None]  # (b, K, 1, w)
    dy = centres[None, None, :, None] - kp[..., 1, None, None]  # (b, K, h, 1)
    near = dx**2 + dy**2 <= 1.0  # (b, K, h, w)
    assert (near & figure[:, None]).any((2, 3)).all()


def test_every_part_visible_at_16px(batch16: figures.Figures) -> None:
    counts = batch16.part_masks.sum((2, 3))  # (b, 4)
    # documented guarantee: >= 99 % of samples show every part with >= 3 pixels (head: always)
    assert (counts >= 3).all(1).float().mean() >= 0.985
    assert (counts >= 1).all(1).float().mean() >= 0.995
    assert counts[:, 0].min() >= 3


def test_part_locations_vary(batch16: figures.Figures) -> None:
    frequency = batch16.part_masks.float().mean(0).amax((1, 2))  # most often covered pixel
    assert frequency.max() < 0.6
    index = {name: i for i, name in enumerate(figures.KEYPOINT_NAMES)}
    kp = batch16.keypoints
    raised = kp[:, index["left_wrist"], 1] < kp[:, index["left_shoulder"], 1]
    assert 0.2 < raised.float().mean() < 0.8


def test_stickman_depends_on_keypoints_only() -> None:
    keypoints = figures.sample_pose(64, generator=gen(1))
    plain = figures.sample_appearance(64, generator=gen(2))
    textured = figures.sample_appearance(64, generator=gen(3), textured=True)
    first = figures.render(keypoints, plain, 16)
    second = figures.render(keypoints, textured, 16)
    assert torch.equal(first.stickman, second.stickman)
    assert torch.equal(first.part_masks, second.part_masks)
    assert not torch.equal(first.image, second.image)
    assert (first.stickman > 0.5).any((2, 3)).all()


def test_transfer_ground_truth_has_donor_colours_on_target_masks() -> None:
    x = figures.sample(64, 16, generator=gen(5))
    y = figures.sample(64, 16, generator=gen(6))
    transfer = figures.render(y.keypoints, x.appearance, 16)
    assert torch.equal(transfer.part_masks, y.part_masks)
    assert torch.equal(transfer.stickman, y.stickman)
    image = transfer.image.permute(0, 2, 3, 1)
    for part in range(4):
        colour = x.colours[:, part, None, None, :].expand_as(image)
        assert torch.equal(image[y.part_masks[:, part]], colour[y.part_masks[:, part]])


def test_appearance_colours_are_distinct() -> None:
    appearance = figures.sample_appearance(4096, generator=gen(7))
    colours = appearance.colours
    assert colours.min() >= -1 and colours.max() <= 1
    pairwise = (colours[:, :, None] - colours[:, None, :]).abs().amax(-1) + 10 * torch.eye(4)
    assert pairwise.min() > 0.3
    to_background = (colours - appearance.background[:, None]).abs().amax(-1)
    assert to_background.min() > 0.75
    assert torch.equal(appearance.texture, torch.zeros(4096, 4))


def test_texture_changes_pixels_but_not_masks() -> None:
    keypoints = figures.sample_pose(16, generator=gen(8))
    appearance = figures.sample_appearance(16, generator=gen(9), textured=True)
    plain = figures.Appearance(appearance.colours, appearance.background, appearance.texture * 0)
    textured = figures.render(keypoints, appearance, 32)
    flat = figures.render(keypoints, plain, 32)
    assert torch.equal(textured.part_masks, flat.part_masks)
    outside = ~flat.part_masks.any(1, keepdim=True).expand_as(flat.image)
    assert torch.equal(textured.image[outside], flat.image[outside])
    assert (textured.image - flat.image).abs().amax() > 0.2


def test_pairs_share_what_they_should() -> None:
    first, second = figures.same_appearance_pairs(32, 16, generator=gen(10))
    assert torch.equal(first.colours, second.colours)
    assert torch.equal(first.background, second.background)
    assert not torch.equal(first.keypoints, second.keypoints)
    first, second = figures.same_pose_pairs(32, 16, generator=gen(11), textured=True)
    assert torch.equal(first.keypoints, second.keypoints)
    assert torch.equal(first.stickman, second.stickman)
    assert not torch.equal(first.colours, second.colours)


def test_sub_batches_and_dict() -> None:
    batch = figures.sample(10, 16, generator=gen(12))
    assert len(batch[2:5]) == 3
    picked = batch[torch.tensor([7, 1])]
    assert torch.equal(picked.image[0], batch.image[7]) and len(picked) == 2
    assert torch.equal(batch[3].keypoints, batch.keypoints[3:4])
    assert len(batch[batch.colours[:, 0, 0] > 2]) == 0
    assert set(batch.to_dict()) == {
        "image", "stickman", "part_masks", "keypoints", "colours", "background", "texture"
    }  # fmt: skip


def test_clear_errors_for_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be a positive int"):
        figures.sample(0, 16, generator=gen())
    with pytest.raises(ValueError, match="size must be a positive int"):
        figures.sample(4, 16.0, generator=gen())
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        figures.sample_pose(4, generator=0)
    appearance = figures.sample_appearance(4, generator=gen())
    with pytest.raises(ValueError, match=r"keypoints must have shape \(b, 14, 2\)"):
        figures.render(torch.zeros(4, 11, 2), appearance, 16)
    with pytest.raises(ValueError, match="keypoints must be finite"):
        figures.render(torch.full((4, 14, 2), float("nan")), appearance, 16)
    with pytest.raises(ValueError, match="same batch size"):
        figures.render(figures.sample_pose(3, generator=gen()), appearance, 16)
    with pytest.raises(ValueError, match=r"colours must lie in \[-1, 1\]"):
        figures.Appearance(appearance.colours * 3, appearance.background, appearance.texture)
    with pytest.raises(ValueError, match=r"background must have shape \(4, 3\)"):
        figures.Appearance(appearance.colours, appearance.background[:2], appearance.texture)
    with pytest.raises(ValueError, match="colours must be a tensor, got list"):
        figures.Appearance([0.0], appearance.background, appearance.texture)
    with pytest.raises(ValueError, match=r"texture must lie in \[0, 1\)"):
        figures.Appearance(appearance.colours, appearance.background, appearance.texture + 1)


def test_to_moves_every_tensor_field(batch16: figures.Figures) -> None:
    """``Figures.to(device)`` (evaluation on the training device): every field moves, values and
    types kept; the meta device stands in for a GPU."""
    moved = batch16.to("meta")
    assert isinstance(moved, figures.Figures)
    for name, value in batch16.to_dict().items():
        assert getattr(moved, name).device.type == "meta", name
        assert (
            getattr(moved, name).shape == value.shape and getattr(moved, name).dtype == value.dtype
        )
    back = batch16.to("cpu")
    assert all(torch.equal(getattr(back, k), v) for k, v in batch16.to_dict().items())
