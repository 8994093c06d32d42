"""Chapter 10 helpers: the code swap decodes exactly the edited grid, and bad input fails."""

import pytest
import torch

from esser_lab.taming import VQGANConfig, VQModel
from esser_lab.taming.chapter import swap_code


def _model() -> VQModel:
    torch.manual_seed(0)
    config = VQGANConfig.tiny()
    return VQModel(config).eval()


def test_swap_code_decodes_the_edited_grid():
    model = _model()
    indices = torch.randint(model.config.n_embed, (8, 8))
    codes = torch.tensor([0, 5])
    out = swap_code(model, indices, 2, 3, codes)
    assert out.shape == (2, 3, 16, 16)
    edited = indices.clone()
    edited[2, 3] = 5
    with torch.no_grad():
        expected = model.decode_code(edited[None])[0]
    torch.testing.assert_close(out[1], expected)


def test_swap_code_rejects_bad_positions_and_shapes():
    model = _model()
    indices = torch.zeros(8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="grid"):
        swap_code(model, indices, 8, 0, torch.tensor([1]))
    with pytest.raises(ValueError, match="code grid"):
        swap_code(model, indices[None], 0, 0, torch.tensor([1]))
