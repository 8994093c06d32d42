"""Tiny GeoFree models and view pairs shared by chapter 12's tests."""

import pytest
import torch

from esser_lab.data import scenes
from esser_lab.geofree.model import GeoFreeConfig, GeoTransformer, first_stage_config
from esser_lab.taming.model import VQModel


def tiny_model(seed: int = 0) -> GeoTransformer:
    torch.manual_seed(seed)
    return GeoTransformer(GeoFreeConfig.tiny(), VQModel(first_stage_config("tiny")))


@pytest.fixture
def make_model():
    """``make_model(seed)``: a fresh tiny GeoTransformer."""
    return tiny_model


@pytest.fixture
def model() -> GeoTransformer:
    return tiny_model()


@pytest.fixture
def pairs() -> scenes.ViewPairs:
    return scenes.sample_pairs(8, 16, generator=torch.Generator().manual_seed(0))
