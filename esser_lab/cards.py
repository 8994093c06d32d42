"""Reproduction cards: one JSON file per chapter, one object per measured claim.

A card records the paper's claim, the paper's number, our number from this run, the baseline's
number, the criterion that decides ``holds`` and the scale it was measured at. Cards go to
``$ESSER_LAB_CARDS`` or, by default, ``_build/cards/`` under the repository root (never relative to
a notebook's working directory). ``bench/`` and the book's summary page collect them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

ENV_VAR = "ESSER_LAB_CARDS"
PaperSource = str  # "Table 2", "README", "unverified", ...


def repository_root() -> Path | None:
    """The checkout this package lives in (the folder with ``pyproject.toml`` and ``_toc.yml``)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "esser_lab").is_dir():
        return here
    return None


def cards_dir() -> Path:
    """Where cards are written: ``$ESSER_LAB_CARDS``, else ``<repo>/_build/cards``.

    Installed outside a checkout (e.g. ``pip install`` on Colab), the default is
    ``~/esser_lab/cards``.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    root = repository_root()
    if root is not None:
        return root / "_build" / "cards"
    return Path.home() / "esser_lab" / "cards"


@dataclass(frozen=True)
class Claim:
    """One measured claim of a paper, as a reproduction card records it."""

    chapter: str
    claim: str
    metric: str
    paper_value: float | str | None
    paper_source: PaperSource
    our_value: float
    baseline_value: float | None
    criterion: Literal["our < baseline", "our > baseline", "our < paper", "our > paper"] | str
    scale: str
    seed: int
    seconds: float

    @property
    def holds(self) -> bool:
        """Decide the criterion from the measured numbers (never typed in by hand)."""
        ref = {"baseline": self.baseline_value, "paper": self.paper_value}
        for name, value in ref.items():
            for op in ("<", ">"):
                if self.criterion == f"our {op} {name}":
                    if not isinstance(value, (int, float)) or math.isnan(float(value)):
                        raise ValueError(f"criterion {self.criterion!r} needs a numeric {name}")
                    return self.our_value < value if op == "<" else self.our_value > value
        raise ValueError(
            f"unknown criterion {self.criterion!r}: expected 'our < baseline', 'our > baseline', "
            "'our < paper' or 'our > paper'"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "holds": self.holds}

    def summary(self) -> str:
        """One line for a chapter's output: verdict, metric, ours, baseline, paper, source."""
        verdict = "holds" if self.holds else "does NOT hold"
        base = "–" if self.baseline_value is None else f"{self.baseline_value:.4g}"
        return (
            f"{verdict}: {self.metric}: ours {self.our_value:.4g} vs baseline {base} "
            f"(paper {self.paper_value}, {self.paper_source})"
        )


def write_card(chapter: str, claims: list[Claim], directory: Path | None = None) -> Path:
    """Write ``<cards_dir>/<chapter>.json`` (a list of claim objects) and return its path."""
    if not claims:
        raise ValueError("a reproduction card needs at least one claim")
    for claim in claims:
        if claim.chapter != chapter:
            raise ValueError(f"claim for chapter {claim.chapter!r} in the card of {chapter!r}")
    directory = directory or cards_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{chapter}.json"
    path.write_text(json.dumps([c.to_dict() for c in claims], indent=2) + "\n")
    return path


def read_cards(directory: Path | None = None) -> list[dict]:
    """Every claim of every card in ``directory``, in chapter order."""
    directory = directory or cards_dir()
    claims: list[dict] = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise ValueError(
                f"{path}: a card must be a JSON list of claims, got {type(data).__name__}"
            )
        claims.extend(data)
    return claims
