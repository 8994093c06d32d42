"""Sprites: factors, exact colours, mask geometry, captions, re-rendering changed factors."""

import math

import pytest
import torch

from esser_lab.data import sprites


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def centroids(mask: torch.Tensor) -> torch.Tensor:
    """(b, h, w) bool -> (b, 2) mask centroids (x, y) in [0, 1]."""
    size = mask.shape[-1]
    coords = (torch.arange(size) + 0.5) / size
    weight = mask.float()
    area = weight.sum((1, 2))
    x = (weight * coords[None, None, :]).sum((1, 2)) / area
    y = (weight * coords[None, :, None]).sum((1, 2)) / area
    return torch.stack([x, y], -1)


def factors(batch: sprites.Sprites) -> dict[str, torch.Tensor]:
    names = ("shape", "colour", "texture", "position", "scale", "rotation")
    return {name: getattr(batch, name).clone() for name in names}


@pytest.mark.parametrize("num_objects", [1, 2])
def test_shapes_dtypes_and_ranges(num_objects: int) -> None:
    batch = sprites.sample(64, 16, generator=gen(), num_objects=num_objects)
    k = num_objects
    assert batch.image.shape == (64, 3, 16, 16) and batch.image.dtype == torch.float32
    assert batch.image.min() >= -1 and batch.image.max() <= 1
    assert batch.mask.shape == (64, k, 16, 16) and batch.mask.dtype == torch.bool
    for name, table in (("shape", sprites.SHAPES), ("colour", sprites.COLOURS),
                        ("texture", sprites.TEXTURES)):  # fmt: skip
        value = getattr(batch, name)
        assert value.shape == (64, k) and value.dtype == torch.long
        assert value.min() >= 0 and value.max() < len(table)
    assert batch.position.shape == (64, k, 2) and batch.scale.shape == (64, k)
    assert batch.rotation.shape == (64, k) and batch.background.shape == (64, 3)
    assert (batch.position - batch.scale[..., None] >= 0).all()
    assert (batch.position + batch.scale[..., None] <= 1).all()
    assert len(batch.caption) == 64 and all(isinstance(text, str) for text in batch.caption)
    assert len(batch) == 64


def test_same_seed_same_tensors_and_different_seed_differs() -> None:
    first = sprites.sample(32, 16, generator=gen(1), num_objects=2)
    second = sprites.sample(32, 16, generator=gen(1), num_objects=2)
    other = sprites.sample(32, 16, generator=gen(2), num_objects=2)
    for name, value in first.to_dict().items():
        assert (
            (value == second.to_dict()[name])
            if isinstance(value, list)
            else torch.equal(value, second.to_dict()[name])
        ), name
    assert not torch.equal(first.image, other.image)


def test_mask_centroid_is_the_position_and_mask_fits_the_scale() -> None:
    batch = sprites.sample(256, 64, generator=gen(3))
    error = (centroids(batch.mask[:, 0]) - batch.position[:, 0]).abs().amax(-1) * 64
    assert error.max() < 0.75  # pixels
    assert batch.mask[:, 0].sum((1, 2)).min() > 50
    coords = (torch.arange(64) + 0.5) / 64
    dx = coords[None, None, :] - batch.position[:, 0, 0, None, None]
    dy = coords[None, :, None] - batch.position[:, 0, 1, None, None]
    outside = dx**2 + dy**2 > batch.scale[:, 0, None, None] ** 2
    assert not (batch.mask[:, 0] & outside).any()


def test_plain_objects_have_exactly_the_named_colour() -> None:
    batch = sprites.sample(128, 32, generator=gen(4), num_objects=2)
    f = factors(batch)
    f["texture"].zero_()
    plain = sprites.render(**f, size=32)
    palette = torch.tensor(list(sprites.COLOURS.values()))
    image = plain.image.permute(0, 2, 3, 1)
    for obj in range(2):
        expected = palette[plain.colour[:, obj]][:, None, None, :].expand_as(image)
        mask = plain.mask[:, obj]
        assert torch.equal(image[mask], expected[mask])
    background = plain.background[:, None, None, :].expand_as(image)
    outside = ~plain.mask.any(1)
    assert torch.equal(image[outside], background[outside])


def test_textured_pixels_are_the_colour_or_its_half() -> None:
    batch = sprites.sample(128, 32, generator=gen(5))
    palette = torch.tensor(list(sprites.COLOURS.values()))
    colour = palette[batch.colour[:, 0]][:, :, None, None].expand_as(batch.image)
    mask = batch.mask[:, 0, None].expand_as(batch.image)
    full = batch.image == colour
    half = batch.image == 0.5 * colour
    assert (full | half)[mask].all()
    striped = batch.texture[:, 0] != 0  # textured objects show both shades
    assert (half & mask).any((1, 2, 3))[striped].float().mean() > 0.9


def test_two_objects_never_overlap() -> None:
    batch = sprites.sample(512, 32, generator=gen(6), num_objects=2)
    distance = (batch.position[:, 0] - batch.position[:, 1]).norm(dim=-1)
    assert (distance >= batch.scale.sum(-1) - 1e-6).all()
    f = factors(batch)
    alone = sprites.render(**{name: value[:, :1] for name, value in f.items()}, size=32)
    assert torch.equal(alone.mask[:, 0], batch.mask[:, 0])  # nothing of it was occluded


def test_captions_name_colour_shape_texture_and_relation() -> None:
    batch = sprites.sample(64, 16, generator=gen(7), num_objects=2)
    colour_names, adjectives = list(sprites.COLOURS), ["", "striped", "checkered", "dotted"]
    for i, text in enumerate(batch.caption):
        first, second = [
            " ".join(
                word
                for word in (
                    colour_names[batch.colour[i, obj]],
                    adjectives[batch.texture[i, obj]],
                    sprites.SHAPES[batch.shape[i, obj]],
                )
                if word
            )
            for obj in range(2)
        ]
        dx, dy = (batch.position[i, 0] - batch.position[i, 1]).tolist()
        if abs(dx) >= abs(dy):
            relation = "left of" if dx < 0 else "right of"
        else:
            relation = "above" if dy < 0 else "below"
        assert text.endswith(f"{first} {relation} a{'n' if second[0] in 'aeiou' else ''} {second}")
    single = sprites.sample(8, 16, generator=gen(8))
    assert all(" of " not in text and text.startswith(("a ", "an ")) for text in single.caption)


def test_changing_one_factor_changes_only_what_it_should() -> None:
    base_batch = sprites.sample(64, 32, generator=gen(9))
    base = factors(base_batch)
    f = {name: value.clone() for name, value in base.items()}
    f["colour"] = (f["colour"] + 1) % len(sprites.COLOURS)
    recoloured = sprites.render(**f, size=32)
    assert torch.equal(recoloured.mask, base_batch.mask)
    outside = ~base_batch.mask.any(1, keepdim=True).expand_as(base_batch.image)
    assert torch.equal(recoloured.image[outside], base_batch.image[outside])
    assert not torch.equal(recoloured.image, base_batch.image)

    f = {name: value.clone() for name, value in base.items()}
    f["texture"] = (f["texture"] + 1) % len(sprites.TEXTURES)
    assert torch.equal(sprites.render(**f, size=32).mask, base_batch.mask)

    f = {name: value.clone() for name, value in base.items()}
    f["scale"] = f["scale"] * 0.5
    f["position"] = torch.full_like(f["position"], 0.5)
    moved = sprites.render(**f, size=32)
    assert (centroids(moved.mask[:, 0]) - 0.5).abs().max() < 1.0 / 32
    ratio = moved.mask.sum((1, 2, 3)).float() / base_batch.mask.sum((1, 2, 3)).float()
    assert ((ratio - 0.25).abs() < 0.12).all()  # area scales with the square

    f = {name: value.clone() for name, value in base.items()}
    f["shape"].zero_()
    f["texture"].zero_()
    circles = sprites.render(**f, size=32)
    f["rotation"] = f["rotation"] + 1.0
    assert torch.equal(sprites.render(**f, size=32).image, circles.image)  # circles are round


def test_rotation_turns_the_shape() -> None:
    shape = torch.tensor([[sprites.SHAPES.index("triangle")]])
    args = dict(shape=shape, colour=torch.tensor([[0]]), texture=torch.tensor([[0]]),
                position=torch.tensor([[[0.5, 0.5]]]), scale=torch.tensor([[0.4]]))  # fmt: skip
    up = sprites.render(**args, rotation=torch.tensor([[0.0]]), size=64)
    left = sprites.render(**args, rotation=torch.tensor([[math.pi / 2]]), size=64)
    rows, cols = up.mask[0, 0].nonzero().T
    assert rows.min() < 64 * 0.15  # the apex points up
    rows, cols = left.mask[0, 0].nonzero().T
    assert cols.min() < 64 * 0.15  # turned counter-clockwise: the apex points left


def test_sub_batches_and_dict() -> None:
    batch = sprites.sample(10, 16, generator=gen(10), num_objects=2)
    picked = batch[torch.tensor([4, 0])]
    assert picked.caption == (batch.caption[4], batch.caption[0])
    assert torch.equal(picked.image[0], batch.image[4])
    assert batch[2:4].caption == batch.caption[2:4] and batch[-1].caption == batch.caption[-1:]
    as_dict = batch.to_dict()
    assert isinstance(as_dict["caption"], list) and as_dict["image"] is batch.image


def test_clear_errors_for_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_objects must be 1 or 2"):
        sprites.sample(4, 16, generator=gen(), num_objects=3)
    with pytest.raises(ValueError, match="size must be a positive int"):
        sprites.sample(4, -2, generator=gen())
    f = factors(sprites.sample(4, 16, generator=gen()))
    with pytest.raises(ValueError, match=r"colour indices must lie in \[0, 8\)"):
        sprites.render(**{**f, "colour": f["colour"] + 8}, size=16)
    with pytest.raises(ValueError, match="scale must be positive"):
        sprites.render(**{**f, "scale": -f["scale"]}, size=16)
    with pytest.raises(ValueError, match=r"position must have shape \(4, 1, 2\)"):
        sprites.render(**{**f, "position": f["position"][..., 0]}, size=16)
    with pytest.raises(ValueError, match="shape must be an integer tensor"):
        sprites.render(**{**f, "shape": f["shape"].float()}, size=16)
    with pytest.raises(ValueError, match=r"background must lie in \[-1, 1\]"):
        sprites.render(**f, size=16, background=torch.full((3,), 2.0))
    with pytest.raises(ValueError, match=r"background must have shape \(4, 3\)"):
        sprites.render(**f, size=16, background=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="non-empty shape"):
        sprites.render(**{name: value[:, :0] for name, value in f.items()}, size=16)
