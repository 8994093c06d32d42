"""Chapter 13's claim code: scoring completions, the baseline's best order, the card."""

from __future__ import annotations

import time

import pytest
import torch

from esser_lab.cards import Card
from esser_lab.imagebart.claims import CompletionScores, MaskResult, file_claims, score_completion
from esser_lab.imagebart.first_stage import RemappedVQModel
from esser_lab.imagebart.method import completion_mask
from esser_lab.nn.first_stage import DDConfig
from esser_lab.taming.model import VQModelConfig


class _FirstClass(torch.nn.Module):
    """A 'classifier' that always answers class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # predict() reads the device from it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 0] = 1.0
        return logits


def test_score_completion_counts_only_completed_tokens() -> None:
    dd = DDConfig(
        double_z=False, z_channels=4, resolution=8, in_channels=1, out_ch=1, ch=32, ch_mult=(1, 1),
        num_res_blocks=0, attn_resolutions=(),
    )  # fmt: skip
    vq = RemappedVQModel(VQModelConfig(ddconfig=dd, n_embed=8, embed_dim=4), torch.arange(6))
    x_clean = torch.randint(6, (4, 16), generator=torch.Generator().manual_seed(0))
    keep = completion_mask("top", 4)
    codes = x_clean.clone()
    codes[:2, :8] = (codes[:2, :8] + 1) % 6  # two of four completions wrong everywhere
    scores = score_completion(
        codes, x_clean, keep, torch.tensor([0, 0, 1, 1]), vq, 4, _FirstClass()
    )
    assert scores == CompletionScores(accuracy=0.5, agreement=0.5)
    with pytest.raises(ValueError, match="at least one completed"):
        score_completion(codes, x_clean, torch.ones(16, dtype=torch.bool), torch.zeros(4), vq, 4,
                         _FirstClass())  # fmt: skip


def _results(ib: float, raster: float, reverse: float) -> dict[str, MaskResult]:
    s = lambda v: CompletionScores(v, v / 2)  # noqa: E731
    return {
        "top": MaskResult("top", s(ib), {"reverse": s(reverse), "raster": s(raster)}),
        "centre": MaskResult("centre", s(ib), {"raster": s(raster), "reverse": s(reverse)}),
    }


def test_best_order_and_filed_claims(tmp_path) -> None:
    results = _results(0.6, 0.7, 0.5)
    assert results["centre"].best("accuracy") == ("raster", 0.7)
    assert results["top"].best("agreement") == ("reverse", 0.25)
    with pytest.raises(ValueError, match="orders"):
        MaskResult("top", CompletionScores(0, 0), {"raster": CompletionScores(0, 0)}).best(
            "accuracy"
        )
    card = Card("13_imagebart", "tiny", 0, time.perf_counter(), seeds_file=tmp_path / "none.csv")
    file_claims(card, results, 100, 10)
    keys = [c.key for c in card.claims]
    assert keys == ["top-accuracy", "top-agreement", "centre-accuracy", "centre-agreement",
                    "top-vs-raster", "top-above-chance"]  # fmt: skip
    # the top claims use reverse raster only, even where raster scores higher (here 0.7)
    assert card["top-accuracy"].baseline_value == 0.5 and card["top-accuracy"].holds
    sanity = card["top-vs-raster"]
    assert sanity.kind == "sanity" and sanity.baseline_value == 0.7 and not sanity.holds
    assert "paper's comparison: raster GPT" in sanity.baseline
    no_raster = dict(results, top=MaskResult("top", s_top := results["top"].imagebart,
                                             {"reverse": s_top}))  # fmt: skip
    with pytest.raises(ValueError, match="raster GPT"):
        file_claims(Card("13_imagebart", "tiny", 0, 0.0), no_raster, 1, 10)
    assert card["top-accuracy"].holds and not card["centre-accuracy"].holds
    assert card["centre-accuracy"].baseline_value == 0.7
    assert "raster" in card["centre-accuracy"].baseline
    with pytest.raises(ValueError, match="centre"):
        file_claims(Card("13_imagebart", "tiny", 0, 0.0), {"top": results["top"]}, 1, 10)
