"""Exercises that check themselves: a verdict (right / not yet, and why) without the answer.

Each paper's package keeps the checkers of its chapter's exercises (``esser_lab.<paper>.exercises``)
built from the helpers here. A checker recomputes what the exercise asks for from the package (or
knows it exactly, for a derivation) and compares the student's answer with it; its message says
which way the answer is off and gives a hint, never the expected value. The folded solution in the
full chapter calls the same checker on its own answer, so every build of the book proves that the
checker accepts the solution; the student edition keeps the call (``book/_ext/student_edition.py``).

    >>> from esser_lab.exercises import check_close
    >>> print(check_close(0.52, 0.5, what="the fraction", rtol=0.1))
    right: the fraction agrees (within 10%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Verdict", "check_close", "check_choice", "check_all_close", "no_answer"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``right`` and a message that never contains the expected value."""

    right: bool
    message: str

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        return f"{'right' if self.right else 'not yet'}: {self.message}"


def no_answer(value: object) -> Verdict | None:
    """The verdict for an exercise cell the student has not filled in yet (``None`` / ``...``)."""
    if value is None or value is Ellipsis:
        return Verdict(False, "no answer yet: replace the None in the cell with your result.")
    return None


def _number(value: object, what: str) -> float | Verdict:
    try:
        number = float(value)  # a Python number, a 0-d tensor or array
    except (TypeError, ValueError):
        return Verdict(False, f"{what} should be a number, got {type(value).__name__}.")
    if not math.isfinite(number):
        return Verdict(False, f"{what} is {number}: a finite number is expected.")
    return number


def check_close(
    answer: object,
    expected: float,
    *,
    what: str,
    rtol: float = 0.05,
    atol: float = 0.0,
    too_low: str = "",
    too_high: str = "",
) -> Verdict:
    """Right when ``|answer - expected| <= atol + rtol * |expected|``; else which way it is off.

    ``too_low`` / ``too_high`` are hints for the two ways of missing (what is often forgotten).
    """
    missing = no_answer(answer)
    if missing is not None:
        return missing
    number = _number(answer, what)
    if isinstance(number, Verdict):
        return number
    tolerance = atol + rtol * abs(expected)
    if abs(number - expected) <= tolerance:
        if not rtol and not atol:
            return Verdict(True, f"{what} is exact.")
        within = f"within {rtol:.0%}" if rtol else f"within {atol:g}"
        return Verdict(True, f"{what} agrees ({within}).")
    low = number < expected
    hint = too_low if low else too_high
    return Verdict(
        False, f"{what} is too {'low' if low else 'high'}." + (f" {hint}" if hint else "")
    )


def check_all_close(
    answers: Sequence[object], expected: Sequence[float], *, what: str, atol: float
) -> Verdict:
    """Right when every answer is within ``atol`` of its expected value (same length)."""
    missing = no_answer(answers)
    if missing is not None:
        return missing
    try:
        values = [float(a) for a in answers]
    except (TypeError, ValueError):
        return Verdict(False, f"{what} should be a sequence of numbers.")
    if len(values) != len(expected):
        return Verdict(False, f"{what}: {len(expected)} values expected, got {len(values)}.")
    wrong = [i for i, (a, e) in enumerate(zip(values, expected, strict=True)) if abs(a - e) > atol]
    if not wrong:
        return Verdict(True, f"all {len(values)} values of {what} agree (within {atol:g}).")
    return Verdict(False, f"{what}: entries {wrong} are off by more than {atol:g}.")


def check_choice(answer: object, expected: str, options: Sequence[str], *, what: str) -> Verdict:
    """A multiple-choice answer: one of ``options`` (case-insensitive)."""
    missing = no_answer(answer)
    if missing is not None:
        return missing
    if not isinstance(answer, str) or answer.strip().lower() not in [o.lower() for o in options]:
        return Verdict(False, f"{what} should be one of {list(options)}, got {answer!r}.")
    if answer.strip().lower() == expected.lower():
        return Verdict(True, f"{what}: yes.")
    return Verdict(False, f"{what}: not this one; look again at what the measurement compares.")
