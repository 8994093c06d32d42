"""Chapter 3 networks at tiny size: shapes, unit style vectors, the style-conditioned norm."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from esser_lab.style_transfer import (
    CURRICULUM,
    LocalGroupNorm,
    StyleTransferConfig,
    StyleTransferModel,
)


def images(b: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_paper_configuration() -> None:
    c = StyleTransferConfig.paper()
    assert (c.style_dim, c.ngf, c.num_residual_blocks, c.num_downsamplings, c.group_size) == (
        16,
        32,
        9,
        4,
        32,
    )
    weights = (c.adversarial_weight, c.image_weight, c.content_fixpoint_weight, c.fpt_weight)
    assert weights == (20, 400, 2, 50)
    assert (c.fpd_weight, c.content_class_weight, c.style_class_weight) == (50, 10, 20)
    assert (c.learning_rate, c.beta1, c.discriminator_success_rate, c.margin) == (
        2e-4,
        0.8,
        0.5,
        0.2,
    )
    last = StyleTransferConfig.paper_stage(len(CURRICULUM) - 1)
    assert (last.image_size, last.margin, last.batch_size) == (768, 0.5, 1)
    with pytest.raises(ValueError, match="stage"):
        StyleTransferConfig.paper_stage(6)


def test_tiny_shapes_and_unit_style() -> None:
    config = StyleTransferConfig.tiny()
    model = StyleTransferModel(config).eval()
    x = images()
    code = model.encode_content(x)
    assert code.shape == (3, config.ngf * 2 ** (config.num_downsamplings - 1), 4, 4)
    s = model.encode_style(x)
    assert s.shape == (3, config.style_dim)
    assert torch.allclose(s.norm(dim=1), torch.ones(3), atol=1e-5)
    out = model(x, s)
    assert out.shape == x.shape and out.abs().max() < 1
    judged = model.discriminate(x)
    assert judged.real.shape == (3, 1, 8, 8)
    assert judged.style.shape == (3, config.num_styles, 8, 8)
    assert judged.content.shape == (3, config.num_content_classes)


def test_paper_model_runs_at_128() -> None:
    model = StyleTransferModel(StyleTransferConfig.paper()).eval()
    with torch.no_grad():
        out = model(images(1, 128), model.encode_style(images(1, 128)))
    assert out.shape == (1, 3, 128, 128)


def test_style_changes_the_output() -> None:
    model = StyleTransferModel(StyleTransferConfig.tiny()).eval()
    x = images(4)
    s = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    with torch.no_grad():
        a, b = model(x, s), model(x, s.roll(1, 0))
    assert (a - b).abs().mean() > 1e-4


def test_local_group_norm_is_group_norm_over_a_whole_map() -> None:
    torch.manual_seed(0)
    norm = LocalGroupNorm(8, group_size=4, window=64)
    with torch.no_grad():
        norm.scale.fill_(1.0)
    x = torch.randn(2, 8, 6, 6) * 3 + 1
    expected = F.group_norm(x, num_groups=2, eps=1e-5)
    assert torch.allclose(norm(x), expected, atol=1e-4)


def test_style_conditioned_norm_is_identity_like_for_unit_scale() -> None:
    """With a style that predicts scale 1 and offset 0 it equals the plain normalisation."""
    torch.manual_seed(0)
    plain = LocalGroupNorm(8, 4, window=2)
    styled = LocalGroupNorm(8, 4, window=2, style_dim=3)
    with torch.no_grad():
        plain.scale.fill_(1.0)
        styled.to_scale.weight.zero_()
        styled.to_scale.bias.fill_(1.0)
        styled.to_offset.weight.zero_()
        styled.to_offset.bias.zero_()
    x = torch.randn(2, 8, 8, 8)
    assert torch.allclose(styled(x, torch.randn(2, 3)), plain(x), atol=1e-6)
    # local statistics: the window mean is removed, so a constant per-window shift disappears
    with torch.no_grad():
        styled.to_scale.weight.normal_()
    s = torch.randn(2, 3)
    assert not torch.allclose(styled(x, s), styled(x, s.flip(0)))
    with pytest.raises(ValueError, match="style must have shape"):
        styled(x)
    with pytest.raises(ValueError, match="not style-conditioned"):
        plain(x, s)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(2, 3, 32, 32), r"\(b, 3, 16, 16\)"),
        (torch.rand(2, 1, 16, 16), "photo must have shape"),
        (torch.rand(3, 16, 16), "photo must have shape"),
    ],
)
def test_bad_inputs_are_named(x, match) -> None:
    model = StyleTransferModel(StyleTransferConfig.tiny())
    with pytest.raises(ValueError, match=match):
        model.encode_content(x)


def test_bad_style_and_dtype() -> None:
    model = StyleTransferModel(StyleTransferConfig.tiny())
    with pytest.raises(TypeError, match="floating-point"):
        model.encode_style(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"style must have shape \(b, 16\)"):
        model(images(2), torch.zeros(2, 8))
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(images(2), torch.zeros(3, 16))


def test_config_validation_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown StyleTransferConfig field"):
        StyleTransferConfig.from_dict({"style_dimension": 8})
    with pytest.raises(ValueError, match="multiple of 2"):
        StyleTransferConfig(image_size=72)
    with pytest.raises(ValueError, match="num_downsamplings"):
        replace(StyleTransferConfig.tiny(), num_downsamplings=4)
    with pytest.raises(ValueError, match="num_styles"):
        replace(StyleTransferConfig.tiny(), num_styles=1)
    assert StyleTransferConfig.from_dict(StyleTransferConfig.tiny().__dict__) == (
        StyleTransferConfig.tiny()
    )
    ablation = StyleTransferConfig.tiny().without_fixpoint()
    assert ablation.fpt_weight == ablation.fpd_weight == 0
    assert replace(ablation, fpt_weight=50.0, fpd_weight=50.0) == StyleTransferConfig.tiny()


def test_model_modules_do_not_import_lightning() -> None:
    code = (
        "import sys, esser_lab.style_transfer.model, esser_lab.style_transfer.method, "
        "esser_lab.style_transfer, esser_lab.data.art, esser_lab.metrics.classifiers; "
        "print('lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_changes_only_the_stated_training_settings() -> None:
    """``tiny`` keeps the paper's objective except the stated artist-classification weight."""
    tiny, paper = StyleTransferConfig.tiny(), StyleTransferConfig.paper()
    for name in ("adversarial_weight", "image_weight", "content_fixpoint_weight", "fpt_weight"):
        assert getattr(tiny, name) == getattr(paper, name)
    assert (tiny.fpd_weight, tiny.content_class_weight, tiny.margin) == (50, 10, 0.2)
    assert tiny.style_class_weight == 100  # stated in tiny(): 20 leaves the style code collapsed
    assert StyleTransferConfig.small().style_class_weight == paper.style_class_weight == 20
    ablation = tiny.without_fixpoint()
    assert (ablation.fpt_weight, ablation.fpd_weight, ablation.style_class_weight) == (0, 0, 100)
