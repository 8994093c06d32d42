"""Does the geometry-free transformer use what it is given? A likelihood diagnostic (chapter 12).

The chapter's transformer models p(z_t | z_s, T) ((G1) of :mod:`esser_lab.geofree.method`). If
it reads its conditioning, the held-out negative log-likelihood (NLL, (G2)) of the *true* target
codes must rise when the conditioning is swapped for another pair's:

* **source use**: NLL given the pair's own source codes z_s against NLL given another scene's
  source codes (the batch rolled by one pair), the camera kept;
* **camera use**: NLL given the pair's own camera T against another pair's camera (rolled by
  one), the source kept.

Each gap is in nats per target code; 0 means the model ignores that input. log(vocab) is the NLL
of a uniform guess. The paper conditions on both (Sec. 3 of Rombach, Esser & Ommer, ICCV 2021);
a model that reads the source but not the camera cannot tell *where* the source's content lands
in the target view, so it can only spread it over every motion it has seen.

:func:`file_source_use` puts the two gaps on the chapter's card as sanity rows (mechanism checks
the bench records across seeds, not claims of the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from esser_lab.cards import Card
from esser_lab.geofree.model import CAMERA_KEYS, GeoTransformer

__all__ = ["SourceUse", "conditional_nll", "file_source_use", "shared_codes", "source_use_nll"]


@dataclass(frozen=True)
class SourceUse:
    """Held-out NLL of the true target codes (nats per code) under three conditionings."""

    true: float  # the pair's own source and camera
    other_source: float  # another scene's source codes, the pair's own camera
    other_camera: float  # the pair's own source, another pair's camera
    vocab_size: int

    @property
    def source_gain(self) -> float:
        """Nats per code the true source saves over another scene's source."""
        return self.other_source - self.true

    @property
    def camera_gain(self) -> float:
        """Nats per code the true camera saves over another pair's camera."""
        return self.other_camera - self.true

    @property
    def uniform(self) -> float:
        """The NLL of a uniform guess over the codebook, log(vocab)."""
        return math.log(self.vocab_size)

    @property
    def perplexity(self) -> float:
        """exp(NLL): how many codes a sample effectively chooses among at each position."""
        return math.exp(self.true)

    def describe(self) -> str:
        """One generated sentence: the three NLLs and what they say about the inputs' use."""
        source = (
            "it reads its source"
            if self.source_gain > 0
            else "it does not read its source (another scene's is as good)"
        )
        if self.camera_gain <= 0.1 * max(self.source_gain, 0.0):
            camera = (
                f"but barely the camera ({self.camera_gain:.4f} nats per code, less than a tenth "
                "of what the source gives): without the camera it cannot know where the source's "
                "content lands in the target view, so a sample can only place that content as "
                "if for any of the camera motions seen in training"
            )
        else:
            camera = f"and the camera ({self.camera_gain:.4f} nats per code)"
        return (
            f"The held-out negative log-likelihood of the true target codes is {self.true:.4f} "
            f"nats per code given the pair's own source and camera, {self.other_source:.4f} "
            f"given another scene's source and {self.other_camera:.4f} given another pair's "
            f"camera (a uniform guess over the {self.vocab_size} codes: {self.uniform:.4f}); "
            f"{source} ({self.source_gain:.4f} nats per code) {camera}. A sample drawn from "
            f"these conditionals chooses among about {self.perplexity:.0f} codes at every "
            "position (the perplexity)."
        )


def _check(model: GeoTransformer, source_codes: Tensor, target_codes: Tensor, camera: dict) -> None:
    if not isinstance(model, GeoTransformer):
        raise TypeError(f"model must be a GeoTransformer, got {type(model).__name__}")
    if source_codes.shape != target_codes.shape or source_codes.dim() != 2:
        raise ValueError(
            "source_codes and target_codes must be code indices of one shape (b, N), got "
            f"{tuple(source_codes.shape)} and {tuple(target_codes.shape)}"
        )
    if not isinstance(camera, dict) or set(camera) != set(CAMERA_KEYS):
        got = sorted(camera) if isinstance(camera, dict) else type(camera).__name__
        raise ValueError(f"camera must be a dict with the keys {CAMERA_KEYS}, got {got}")
    for key, value in camera.items():
        if value.shape[0] != source_codes.shape[0]:
            raise ValueError(
                f"camera[{key!r}] has {value.shape[0]} rows, the codes {source_codes.shape[0]}"
            )


@torch.no_grad()
def conditional_nll(
    model: GeoTransformer,
    source_codes: Tensor,
    target_codes: Tensor,
    camera: dict[str, Tensor],
    batch_size: int = 512,
) -> float:
    """Mean NLL (G2) of ``target_codes`` (b, N) given ``source_codes`` (b, N) and ``camera``,
    in nats per target code, in eval mode and in chunks of ``batch_size`` pairs."""
    _check(model, source_codes, target_codes, camera)
    was_training = model.training
    model.eval()
    device = model.transformer.pos_emb.device
    total, count = 0.0, 0
    try:
        for start in range(0, len(source_codes), batch_size):
            part = slice(start, start + batch_size)
            source, target = source_codes[part].to(device), target_codes[part].to(device)
            chunk = {k: v[part].to(device) for k, v in camera.items()}
            logits = model(source, target, chunk)  # (b, N, vocab)
            total += float(
                F.cross_entropy(
                    rearrange(logits, "b l k -> (b l) k").float(),
                    target.reshape(-1),
                    reduction="sum",
                )
            )
            count += target.numel()
    finally:
        model.train(was_training)
    return total / count


def source_use_nll(
    model: GeoTransformer,
    source_codes: Tensor,
    target_codes: Tensor,
    camera: dict[str, Tensor],
    batch_size: int = 512,
) -> SourceUse:
    """The three NLLs of :class:`SourceUse` on held-out pairs (module doc).

    "Another" is the batch rolled by one pair, so pair i gets pair i − 1's source (or camera):
    with independently drawn pairs, another scene's. Needs at least 2 pairs.
    """
    _check(model, source_codes, target_codes, camera)
    if len(source_codes) < 2:
        raise ValueError(f"need ≥ 2 pairs to swap conditionings, got {len(source_codes)}")
    other_camera = {k: v.roll(1, 0) for k, v in camera.items()}
    return SourceUse(
        true=conditional_nll(model, source_codes, target_codes, camera, batch_size),
        other_source=conditional_nll(
            model, source_codes.roll(1, 0), target_codes, camera, batch_size
        ),
        other_camera=conditional_nll(model, source_codes, target_codes, other_camera, batch_size),
        vocab_size=model.config.vocab_size,
    )


def shared_codes(source_codes: Tensor, target_codes: Tensor) -> float:
    """The fraction of target codes (b, N) that occur anywhere among the same pair's source codes.

    What a transformer could copy from its source, wherever it lands: a code absent from the
    source must be synthesised (a disoccluded region, or content shifted by a fraction of a
    code's patch, which a VQGAN encodes with other codes).
    """
    if source_codes.shape != target_codes.shape or source_codes.dim() != 2:
        raise ValueError(
            "source_codes and target_codes must be code indices of one shape (b, N), got "
            f"{tuple(source_codes.shape)} and {tuple(target_codes.shape)}"
        )
    if not source_codes.numel():
        raise ValueError("no codes: need at least one pair")
    # (b, N target, N source): does target code i equal any source code j of the same pair
    hits = (target_codes[:, :, None] == source_codes[:, None, :]).any(-1)
    return float(hits.float().mean())


#: the least gain in nats per target code that counts as reading the camera (a 1 % change of
#: the code's probability; the chapter's 300-step models gain 0.0001-0.001, 4,000 steps 0.08)
CAMERA_USE_MARGIN = 0.01


def file_source_use(card: Card, use: SourceUse) -> None:
    """Files the two gaps of ``use`` as sanity rows ``source-use`` and ``camera-use``."""
    if not isinstance(use, SourceUse):
        raise TypeError(f"use must be a SourceUse, got {type(use).__name__}")
    metric = "held-out NLL of the true target codes (nats per code)"
    why = (
        "a mechanism check: the transformer can only place the source's content in the target "
        "view if it reads both inputs"
    )
    card.add(
        "source-use",
        "the transformer reads its source: the true target codes are likelier given the pair's "
        "own source than given another scene's (a check of the mechanism)",
        metric=metric, ours=use.true,
        baseline="the same NLL given another scene's source codes, the pair's own camera",
        baseline_value=use.other_source, why=why, better="lower", kind="sanity", digits=6,
    )  # fmt: skip
    card.add(
        "camera-use",
        "the transformer reads the camera: the true target codes are likelier given the pair's "
        f"own camera than given another pair's, by at least {CAMERA_USE_MARGIN} nats per code "
        "(a check of the mechanism)",
        metric=metric, ours=use.true,
        baseline=(
            f"the same NLL given another pair's camera, the pair's own source, less "
            f"{CAMERA_USE_MARGIN} nats (a smaller gap is no use of the camera to speak of)"
        ),
        baseline_value=use.other_camera - CAMERA_USE_MARGIN, why=why, better="lower",
        kind="sanity", digits=6,
    )  # fmt: skip
