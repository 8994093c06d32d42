"""Captioned sprites (esser_lab.sd3.data) and the caption-adherence classifier (sd3.adherence)."""

import pytest
import torch

from esser_lab.data import sprites
from esser_lab.sd3.adherence import (
    attribute_accuracy,
    caption_accuracy,
    fit_attribute_classifier,
)
from esser_lab.sd3.data import (
    ABSENT,
    CONTEXT_LENGTH,
    LABEL_CLASSES,
    RELATIONS,
    VOCAB,
    captioned_batch,
    detokenize,
    tokenize,
)


def batch(n=256, size=16, seed=0, **kwargs):
    return captioned_batch(n, size, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_deterministic_and_shapes():
    a, b, c = batch(seed=3), batch(seed=3), batch(seed=4)
    assert torch.equal(a.image, b.image) and torch.equal(a.tokens, b.tokens)
    assert a.caption == b.caption and a.caption != c.caption
    assert a.image.shape == (256, 3, 16, 16) and a.image.dtype == torch.float32
    assert a.image.min() >= -1 and a.image.max() <= 1
    assert a.tokens.shape == (256, CONTEXT_LENGTH) and a.tokens.dtype == torch.int64
    assert set(a.labels) == set(LABEL_CLASSES)
    assert all(v.shape == (256,) and v.dtype == torch.int64 for v in a.labels.values())
    assert set(a.num_objects.tolist()) == {1, 2}
    assert batch(32, 32).image.shape == (32, 3, 32, 32)


def test_tokens_decode_to_the_caption_and_pad_with_zero():
    data = batch()
    assert detokenize(data.tokens) == data.caption
    lengths = torch.tensor([len(text.split()) for text in data.caption])
    position = torch.arange(CONTEXT_LENGTH)
    assert torch.equal(data.tokens != 0, position[None] < lengths[:, None])
    assert VOCAB[0] == "<pad>" and len(set(VOCAB)) == len(VOCAB)
    assert torch.equal(tokenize(["a red circle"]), torch.tensor([[1, 3, 14] + [0] * 9]))


def test_labels_match_the_rendered_factors():
    data = batch(textures=True, rotate=True)
    colours, shapes = list(sprites.COLOURS), sprites.SHAPES
    for i, text in enumerate(data.caption):
        labels = {name: value[i].item() for name, value in data.labels.items()}
        words = text.split()
        assert colours[labels["colour_0"]] in words[1] and shapes[labels["shape_0"]] in words
        if labels["num_objects"] == 1:
            assert labels["colour_1"] == labels["shape_1"] == labels["relation"] == ABSENT
            assert len(words) <= 4
        else:
            relation = RELATIONS[labels["relation"]]
            assert f" {relation} " in text
            second = text.split(f" {relation} ")[1].split()
            assert colours[labels["colour_1"]] == second[1]
            assert shapes[labels["shape_1"]] == second[-1]
    # a one-object image is exactly its colour on a black background, plain texture
    one = batch(64, num_objects=1)
    palette = torch.tensor(list(sprites.COLOURS.values()))[one.colour[:, 0]]  # (b, 3)
    pixels = one.image.flatten(2)  # (b, 3, hw)
    lit = (pixels != -1).any(1)  # (b, hw)
    assert lit.any(1).all()
    assert torch.equal(pixels.transpose(1, 2)[lit], palette[:, None].expand(-1, 256, -1)[lit])


def test_canonical_order_first_object_left_or_above():
    data = batch(256, 32, num_objects=2)
    assert (data.relation == 0).any() and (data.relation == 1).any()
    palette = torch.tensor(list(sprites.COLOURS.values()))
    checked = 0
    for i in range(len(data)):
        first, second = data.colour[i].tolist()
        if first == second:
            continue
        centroids = []
        for colour in (first, second):
            mask = (data.image[i] == palette[colour][:, None, None]).all(0)  # (h, w)
            y, x = mask.nonzero().float().mean(0)
            centroids.append((x, y))
        axis = data.relation[i].item()  # 0: left of → x, 1: above → y
        assert centroids[0][axis] < centroids[1][axis]
        checked += 1
    assert checked > 200


def test_bad_inputs_are_named():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="num_objects"):
        captioned_batch(4, 16, generator=g, num_objects=3)
    with pytest.raises(ValueError, match="shapes"):
        captioned_batch(4, 16, generator=g, shapes=("blob",))
    with pytest.raises(ValueError, match="generator"):
        captioned_batch(4, 16, generator=0)
    with pytest.raises(ValueError, match="outside VOCAB"):
        tokenize(["a purple circle"])
    with pytest.raises(ValueError, match="more than length"):
        tokenize(["a red circle"], length=2)
    with pytest.raises(ValueError, match="integer tensor"):
        detokenize(torch.zeros(2, 3))


def test_attribute_classifier_is_far_above_chance_on_real_images():
    torch.manual_seed(0)
    train, test = batch(2048, seed=0), batch(512, seed=1)
    classifier = fit_attribute_classifier(
        train.image, train.labels, 250, torch.Generator().manual_seed(0)
    )
    per_label = attribute_accuracy(classifier, test.image, test.labels)
    assert per_label["num_objects"] > 0.9 and per_label["colour_0"] > 0.6
    assert per_label["shape_0"] > 2 / len(sprites.SHAPES)
    accuracy = caption_accuracy(classifier, test.image, test.labels)
    # chance for a caption is below 1/(8·6) for one object; the classifier is far above it
    # labels of the first object are present in every image: a caption needs all of them right
    assert 0.1 < accuracy <= min(per_label[k] for k in ("num_objects", "colour_0", "shape_0"))
    # deterministic given the generator
    again = fit_attribute_classifier(
        train.image, train.labels, 250, torch.Generator().manual_seed(0)
    )
    assert caption_accuracy(again, test.image, test.labels) == accuracy
    with pytest.raises(ValueError, match="labels lack"):
        caption_accuracy(classifier, test.image, {"colour_0": test.labels["colour_0"]})
