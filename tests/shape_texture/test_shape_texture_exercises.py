"""Chapter 11's exercise 2 checker: the dimensions from a quarter and three quarters."""

import torch

from esser_lab.data import cue_conflict as cc
from esser_lab.shape_texture import ShapeTextureConfig, ShapeTextureNet, shape_texture_dims
from esser_lab.shape_texture.exercises import check_split_dims, split_dims
from esser_lab.shape_texture.method import pooled_features


def features():
    torch.manual_seed(0)
    model = ShapeTextureNet(ShapeTextureConfig.tiny())
    pairs = cc.factor_pairs(128, 16, generator=torch.Generator().manual_seed(0))
    z_a = pooled_features(model, pairs.a.image)[-1]
    z_b = pooled_features(model, pairs.b.image)[-1]
    return z_a, z_b, pairs.factor


def test_the_solution_is_accepted_and_each_triple_sums_to_the_width():
    z_a, z_b, factor = features()
    solution = [shape_texture_dims(z_a[p], z_b[p], factor[p]).dims
                for p in (slice(0, 32), slice(32, None))]  # fmt: skip
    assert [tuple(d) for d in solution] == split_dims(z_a, z_b, factor)
    assert all(sum(d) == z_a.shape[1] for d in solution)
    assert check_split_dims(z_a, z_b, factor, solution)


def test_a_wrong_split_is_refused_without_the_counts():
    z_a, z_b, factor = features()
    expected = split_dims(z_a, z_b, factor)
    halves = [shape_texture_dims(z_a[p], z_b[p], factor[p]).dims
              for p in (slice(0, 64), slice(64, None))]  # fmt: skip
    assert [tuple(h) for h in halves] != expected  # the split matters on 128 pairs
    wrong = check_split_dims(z_a, z_b, factor, halves)
    assert not wrong and "n // 4" in str(wrong) and str(expected[0]) not in str(wrong)
    assert not check_split_dims(z_a, z_b, factor, [(1, 1, 1), (1, 1, 1)])  # do not sum up
    assert not check_split_dims(z_a, z_b, factor, expected[:1])
    assert "no answer yet" in str(check_split_dims(z_a, z_b, factor, None))
