"""The chapter's judges: the expert classifiers and the explorer widget."""

import pytest
import torch

from esser_lab.data import art
from esser_lab.metrics.classifiers import ExpertClassifier, accuracy, fit_classifier, predict


def test_artist_expert_learns_the_styles() -> None:
    torch.manual_seed(0)
    train = art.sample(1000, 16, generator=torch.Generator().manual_seed(0))
    test = art.sample(300, 16, "test", generator=torch.Generator().manual_seed(1))
    expert = fit_classifier(
        train.painting, train.style, art.NUM_STYLES, steps=60, generator=torch.Generator()
    )
    assert accuracy(expert, test.painting, test.style) > 0.9
    assert not any(p.requires_grad for p in expert.parameters()) and not expert.training
    assert predict(expert, test.painting[:5]).shape == (5,)


def test_expert_errors() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ExpertClassifier(1)
    with pytest.raises(ValueError, match="labels"):
        fit_classifier(torch.rand(4, 3, 8, 8), torch.zeros(3, dtype=torch.long), 2,
                       generator=torch.Generator())  # fmt: skip


def test_style_explorer_builds() -> None:
    pytest.importorskip("ipywidgets")
    from esser_lab.viz.style_explorer import style_explorer

    photos, paintings = torch.rand(3, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    widget = style_explorer(photos, paintings, {"a": torch.zeros(3, 2, 3, 8, 8)}, ["x", "y"])
    assert widget.children
    with pytest.raises(ValueError, match="artist names"):
        style_explorer(photos, paintings, {"a": torch.zeros(3, 2, 3, 8, 8)}, ["x"])


def test_an_expert_trains_where_its_data_is() -> None:
    """Experts train on the training device (meta stands in for a GPU), drawing batch indices
    from a CPU generator as at tiny."""
    images = torch.zeros(16, 3, 8, 8, device="meta")
    labels = torch.zeros(16, dtype=torch.long, device="meta")
    expert = fit_classifier(
        images, labels, 4, steps=2, batch_size=4, generator=torch.Generator().manual_seed(0)
    )
    assert {p.device.type for p in expert.parameters()} == {"meta"}
