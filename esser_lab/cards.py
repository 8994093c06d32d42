"""Reproduction cards, claim verdicts and the verdict text a chapter prints.

A **claim** compares our method with the baseline the paper compares it with (its ablation or
competitor, trained the same way) in one metric, in a stated direction (``better="lower"`` or
``"higher"``). It records both of our numbers, the paper's comparable pair where the paper has
one (``paper_value`` for the method, ``paper_baseline_value`` for its baseline, in the paper's
metric ``paper_metric``), and the *margin*: ours − baseline, signed so that a positive margin
means the claim holds. A constant, chance level or closed-form reference may appear only as a
``kind="sanity"`` row, never as the claim.

A **card** is a chapter's claims from one run: ``<cards_dir>/<chapter>.json``, one object per
claim. Cards go to ``$ESSER_LAB_CARDS`` or, by default, ``_build/cards/`` under the repository
root. ``bench/run_chapters.py`` collects them into ``bench/results/claims.csv`` and, per training
seed, into ``claims_seeds.csv``; the book's summary page reads both.

A **verdict across seeds** comes from ``claims_seeds.csv``: a claim that holds in at least 4 of 5
seeds (80 %) is *reproduced*, in at most 1 of 5 (20 %) *not reproduced*, otherwise *not settled*;
with fewer than 5 seeds recorded there is no verdict yet. :class:`Card` writes the card and the
Markdown a chapter displays, so that nothing a run measures is typed into the prose.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

ENV_VAR = "ESSER_LAB_CARDS"
SEEDS_FILE = Path("bench") / "results" / "claims_seeds.csv"
LONG_FILE = Path("bench") / "results" / "claims_long.csv"
MIN_SEEDS = 5  # seeds a verdict needs at the book's budget
MIN_LONG_SEEDS = 3  # and for the longer bench runs (claims_long.csv), at up to 10 minutes each
SEED_COLUMNS = ["chapter", "key", "seed", "margin", "holds", "scale", "commit"]
Better = Literal["lower", "higher"]
Kind = Literal["claim", "sanity"]
Label = Literal["reproduced", "not settled", "not reproduced", "too few seeds"]


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


# --------------------------------------------------------------------------------------------
# One claim


@dataclass(frozen=True)
class PaperPair:
    """The paper's own comparison: its number for the method and for the baseline, one metric.

    ``baseline`` may be ``None`` where the paper gives one number only, and ``metric`` says when
    the paper's metric differs from ours (``"rFID on ImageNet val"`` beside our PSNR).
    ``source`` is where the numbers are printed ("Table 2", "README"); ``"unverified"`` marks a
    number we could not check against the paper's text.
    """

    value: float | None
    baseline: float | None
    metric: str
    source: str
    better: Better | None = None

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("a paper number needs its source ('Table 2', 'README', 'unverified')")
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', got {self.better!r}")

    def describe(self) -> str:
        """``"rFID on ImageNet val: 4.98 vs 7.94 (README)"``."""
        numbers = _fmt(self.value) if self.baseline is None else (
            f"{_fmt(self.value)} vs {_fmt(self.baseline)}"
        )  # fmt: skip
        return f"{self.metric}: {numbers} ({self.source})"


@dataclass(frozen=True)
class Claim:
    """One measured comparison, as a reproduction card records it."""

    chapter: str
    key: str  # a short stable id ("codebook-psnr"): seeds and pages find the claim by it
    claim: str  # one sentence, what the paper says
    metric: str  # our metric, with its unit and test set
    our_value: float
    baseline: str  # what the baseline is ("the same VQGAN with K = 8, trained the same way")
    baseline_value: float
    why: str  # why this baseline: the paper's ablation, competitor, or what it isolates
    better: Better
    scale: str
    seed: int
    seconds: float
    paper: PaperPair | None = None
    kind: Kind = "claim"

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', got {self.better!r}")
        if self.kind not in ("claim", "sanity"):
            raise ValueError(f"kind must be 'claim' or 'sanity', got {self.kind!r}")
        if not self.key or any(c.isspace() for c in self.key):
            raise ValueError(f"a claim key is a short id without spaces, got {self.key!r}")
        for name in ("our_value", "baseline_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not self.baseline.strip() or not self.why.strip():
            raise ValueError(f"claim {self.key!r}: name the baseline and say why it is the one")

    @property
    def margin(self) -> float:
        """ours − baseline in the claimed direction: positive when the claim holds."""
        difference = float(self.our_value) - float(self.baseline_value)
        return difference if self.better == "higher" else -difference

    @property
    def holds(self) -> bool:
        """Decided by the measured numbers (never typed in by hand); NaN never holds."""
        return math.isfinite(self.margin) and self.margin > 0

    @property
    def criterion(self) -> str:
        return "our > baseline" if self.better == "higher" else "our < baseline"

    def to_dict(self) -> dict:
        values = asdict(self)
        paper = values.pop("paper") or {}
        return {
            **values,
            "paper_value": paper.get("value"),
            "paper_baseline_value": paper.get("baseline"),
            "paper_metric": paper.get("metric"),
            "paper_source": paper.get("source"),
            "criterion": self.criterion,
            "margin": self.margin,
            "holds": self.holds,
        }

    def summary(self) -> str:
        """One line for a chapter's output: verdict, metric, ours, baseline, paper."""
        verdict = "holds" if self.holds else "does NOT hold"
        paper = f"; paper {self.paper.describe()}" if self.paper else ""
        return (
            f"{verdict}: {self.metric}: ours {_fmt(self.our_value)} vs "
            f"{_fmt(self.baseline_value)} ({self.baseline}){paper}"
        )


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def write_card(chapter: str, claims: list[Claim], directory: Path | None = None) -> Path:
    """Write ``<cards_dir>/<chapter>.json`` (a list of claim objects) and return its path."""
    if not claims:
        raise ValueError("a reproduction card needs at least one claim")
    keys = [c.key for c in claims]
    if len(set(keys)) != len(keys):
        raise ValueError(f"claim keys repeat in the card of {chapter!r}: {keys}")
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


# --------------------------------------------------------------------------------------------
# Verdicts across seeds


@dataclass(frozen=True)
class SeedVerdict:
    """How one claim fared over the recorded training seeds."""

    held: int
    seeds: int
    margin_mean: float
    margin_sd: float
    commits: tuple[str, ...] = ()
    minimum: int = MIN_SEEDS

    @property
    def label(self) -> Label:
        return verdict_label(self.held, self.seeds, self.minimum)

    def describe(self) -> str:
        """``"reproduced: held in 5 of 5 seeds, margin 0.031 ± 0.012"``."""
        if self.seeds > 1 and self.margin_sd > 0 and math.isfinite(self.margin_sd):
            decimals = max(0, 1 - math.floor(math.log10(self.margin_sd)))  # 2 digits of the sd
            margin = f"{self.margin_mean:.{decimals}f} ± {self.margin_sd:.{decimals}f}"
        else:
            margin = _fmt(self.margin_mean, 2)
        return f"{self.label}: held in {self.held} of {self.seeds} seeds, margin {margin}"


def verdict_label(held: int, seeds: int, minimum: int = MIN_SEEDS) -> Label:
    """4–5 of 5 → reproduced, 2–3 → not settled, 0–1 → not reproduced (as fractions: ≥ 80 %,
    ≤ 20 %); fewer than ``minimum`` seeds → too few seeds."""
    if not 0 <= held <= seeds:
        raise ValueError(f"held must lie in 0..{seeds}, got {held}")
    if seeds < minimum:
        return "too few seeds"
    if held >= 0.8 * seeds:
        return "reproduced"
    if held <= 0.2 * seeds:
        return "not reproduced"
    return "not settled"


SeedKey = tuple[str, str, str]  # (chapter, claim key, scale)


def recorded_numbers(row: dict) -> tuple[float, float]:
    """(ours, baseline) of a seeds-file row, to compare with a run's claim for the same seed."""
    return float(row["our_value"]), float(row["baseline_value"])


def read_seed_rows(path: Path | None = None) -> list[dict]:
    """The rows of ``claims_seeds.csv`` or ``claims_long.csv`` (none where the file is absent)."""
    if path is None:
        root = repository_root()
        if root is None:
            return []
        path = root / SEEDS_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(SEED_COLUMNS) - set(reader.fieldnames or []))
        if missing:
            raise ValueError(
                f"{path}: columns {missing} are missing; expected {SEED_COLUMNS} "
                "(re-record it with bench/run_chapters.py --seed N)"
            )
        return list(reader)


def seed_verdicts(rows: list[dict], minimum: int = MIN_SEEDS) -> dict[SeedKey, SeedVerdict]:
    """Group ``claims_seeds.csv`` (or ``claims_long.csv``) rows by (chapter, key, scale)."""
    grouped: dict[SeedKey, list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["chapter"], row["key"], row["scale"]), []).append(row)
    verdicts = {}
    for key, runs in grouped.items():
        margins = [float(r["margin"]) for r in runs]
        finite = [m for m in margins if math.isfinite(m)]
        verdicts[key] = SeedVerdict(
            held=sum(r["holds"] == "true" for r in runs),
            seeds=len(runs),
            margin_mean=statistics.fmean(finite) if finite else math.nan,
            margin_sd=statistics.stdev(finite) if len(finite) > 1 else 0.0,
            commits=tuple(sorted({r.get("commit", "") for r in runs} - {""})),
            minimum=minimum,
        )
    return verdicts


# --------------------------------------------------------------------------------------------
# A chapter's card and its generated text


@dataclass
class Card:
    """A chapter's claims from one run, with the Markdown that reports them.

    ``card.add(...)`` measures nothing: it files one comparison that the chapter (through its
    paper's ``claims.py``) has measured. ``card.write()`` writes the JSON card;
    ``card.markdown()`` is the table a chapter displays; ``card.text(key, ...)`` picks the
    sentence that matches this run's outcome and the recorded seeds, so prose never contradicts
    the numbers above it.
    """

    chapter: str
    scale: str
    seed: int
    started: float  # time.perf_counter() when the chapter started
    seeds_file: Path | None = None  # default: bench/results/claims_seeds.csv of the checkout
    long_file: Path | None = None  # default: bench/results/claims_long.csv of the checkout
    claims: list[Claim] = field(default_factory=list)
    # claims measured in wall time: another machine gives other numbers, so the record is not
    # called stale when this run's numbers differ from it (the verdict still comes from the run)
    timed: set[str] = field(default_factory=set)

    def add(
        self,
        key: str,
        claim: str,
        *,
        metric: str,
        ours: float,
        baseline: str,
        baseline_value: float,
        why: str,
        better: Better,
        paper: PaperPair | None = None,
        kind: Kind = "claim",
        digits: int = 4,
        timed: bool = False,
    ) -> Claim:
        """File one measured comparison (numbers rounded to ``digits`` significant digits).

        ``timed``: the numbers are wall times, which differ from machine to machine."""
        import time

        if any(c.key == key for c in self.claims):
            raise ValueError(f"claim key {key!r} is already on the card of {self.chapter}")
        new = Claim(
            chapter=self.chapter,
            key=key,
            claim=claim,
            metric=metric,
            our_value=_round(ours, digits),
            baseline=baseline,
            baseline_value=_round(baseline_value, digits),
            why=why,
            better=better,
            scale=self.scale,
            seed=self.seed,
            seconds=round(time.perf_counter() - self.started, 1),
            paper=paper,
            kind=kind,
        )
        self.claims.append(new)
        if timed:
            self.timed.add(key)
        return new

    def __getitem__(self, key: str) -> Claim:
        for claim in self.claims:
            if claim.key == key:
                return claim
        known = ", ".join(c.key for c in self.claims) or "none"
        raise KeyError(f"no claim {key!r} on the card of {self.chapter} (claims: {known})")

    def write(self, directory: Path | None = None) -> Path:
        return write_card(self.chapter, self.claims, directory)

    # ---- the seeds record ------------------------------------------------------------------

    def across_seeds(self, key: str) -> SeedVerdict | None:
        """The recorded verdict of claim ``key`` at this scale, or ``None`` where none is."""
        self[key]  # a typo in the key fails here, not silently
        verdicts = seed_verdicts(read_seed_rows(self.seeds_file))
        return verdicts.get((self.chapter, key, self.scale))

    def seeds_phrase(self, key: str) -> str:
        verdict = self.across_seeds(key)
        if verdict is None:
            return f"no seeds recorded at scale {self.scale} (bench/results/claims_seeds.csv)"
        return verdict.describe() + self._stale_note(key)

    def _stale_note(self, key: str) -> str:
        """A warning when the record holds this run's seed with other numbers than this run's."""
        claim = self[key]
        if key in self.timed:
            return ""
        for row in read_seed_rows(self.seeds_file):
            if (row["chapter"], row["key"], row["scale"], row["seed"]) == (
                self.chapter,
                key,
                self.scale,
                str(self.seed),
            ):
                recorded = recorded_numbers(row)
                if recorded != (claim.our_value, claim.baseline_value):
                    return (
                        f" (recorded when seed {self.seed} gave {_fmt(recorded[0])} vs "
                        f"{_fmt(recorded[1])}: the record predates this run's numbers)"
                    )
        return ""

    def long_run(self, key: str, *, long_only: bool = False) -> SeedVerdict | None:
        """The verdict of claim ``key`` in the longer bench runs (``claims_long.csv``), if any.

        ``key`` must be on this card (a typo raises), unless ``long_only``: a claim that only
        the long budget measures (quoted by the minute's page from the file)."""
        if not long_only:
            self[key]
        path = self.long_file
        if path is None:
            root = repository_root()
            path = None if root is None else root / LONG_FILE
        if path is None:
            return None
        verdicts = seed_verdicts(read_seed_rows(path), MIN_LONG_SEEDS)
        return verdicts.get((self.chapter, key, self.scale))

    def long_phrase(self, key: str, *, long_only: bool = False) -> str:
        verdict = self.long_run(key, long_only=long_only)
        if verdict is None:
            return "no longer run recorded (bench/results/claims_long.csv)"
        return f"at the long budget, {verdict.describe()}"

    # ---- generated Markdown ----------------------------------------------------------------

    def markdown(self) -> str:
        """A table: each claim, ours vs baseline, this run's verdict, the seeds', the paper's."""
        rows = [
            "| claim | metric | ours | baseline | this run | across seeds | paper |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.claims:
            run = "✓ holds" if c.holds else "✗ does not hold"
            tag = " *(sanity check)*" if c.kind == "sanity" else ""
            paper = c.paper.describe() if c.paper else "–"
            seeds = self.seeds_phrase(c.key)
            if self.long_run(c.key) is not None:
                seeds += f"; {self.long_phrase(c.key)}"
            rows.append(
                f"| {c.claim}{tag} | {c.metric} | {_fmt(c.our_value)} | "
                f"{_fmt(c.baseline_value)} ({c.baseline}) | {run} | {seeds} | {paper} |"
            )
        return "\n".join(rows)

    def text(self, key: str, holds: str, fails: str, **values: object) -> str:
        """``holds`` or ``fails`` (by this run's outcome), formatted with the claim's numbers.

        Fields available: ``{ours}``, ``{baseline}``, ``{margin}``, ``{seeds}`` (the recorded
        verdict), ``{verdict}`` (its label), ``{long}`` (the longer bench runs' verdict), plus
        any ``values`` the caller passes.
        """
        claim = self[key]
        recorded = self.across_seeds(key)
        fields = {
            "ours": _fmt(claim.our_value),
            "baseline": _fmt(claim.baseline_value),
            "margin": _fmt(claim.margin, 2),
            "seeds": self.seeds_phrase(key),
            "verdict": recorded.label if recorded else "no seeds recorded",
            "long": self.long_phrase(key),
            **values,
        }
        return (holds if claim.holds else fails).format(**fields)


def _round(value: float, digits: int) -> float:
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))
