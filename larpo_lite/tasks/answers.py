"""Answer extraction and the verifier: the reranker of the math tasks.

Introduced in notebooks/01_ir_analogy. The contract (DESIGN.md): the number after
the last ``####`` if present, else after the last "answer is", else the last
number in the text; commas removed; ``-5``, ``3.5`` and ``3.0 == 3`` handled;
None when the text holds no number. Also:

- the minus sign U+2212 (``−5``) is a minus, as ``-5``;
- a decimal without its leading zero is read whole: ``.5`` is 0.5 (not 5);
- scientific notation is one number: ``1e3``, ``2.5E-2`` are 1000 and 0.025 (the
  extracted string keeps the form written, ``"1e3"``; comparisons use its value, so
  ``is_correct("#### 1e3", "1000")``). An ``e`` not followed by digits ends the number.
- Gold answers must be numbers in this sense (finite); the mini-GSM loader refuses a split
  holding one that is not.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The verifier's version: bump it whenever what extract_answer reads or what is_correct accepts
# changes (a new number form, another answer marker, a fix). Cached candidates record their
# correctness under this version (larpo_lite.cache keys on it), so a bump makes every cache
# entry written before it be sampled and checked again rather than trusted.
VERIFIER_VERSION = 1

# A number: optional minus sign, digits with optional thousands commas, optional decimals (or
# decimals alone: ".5"), optional exponent ("1e3"). A minus sign counts only when it does not
# follow a word or a bracket ("5-3" is 5 and 3); a leading dot only when it does not follow a
# word or a dot ("v1.2.3" holds no ".3").
_NUMBER = re.compile(r"(?:(?<![\w)\]])-)?"
                     r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])\.\d+)"
                     r"(?:[eE][-+]?\d+)?")
_MINUS = "\u2212"  # the typographic minus sign


def _first_number(text: str) -> str | None:
    m = _NUMBER.search(text)
    return _clean(m.group(0)) if m else None


def _last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return _clean(found[-1]) if found else None


def _clean(raw: str) -> str:
    return raw.replace(",", "").replace(_MINUS, "-")


ANSWER_RULES = ("####", "answer is", "last number", "none")


def answer_rule(text: str) -> str:
    """Which rule of :func:`extract_answer` reads the response's answer: ``"####"``,
    ``"answer is"``, ``"last number"`` (the fallback) or ``"none"`` (no number at all)."""
    if not isinstance(text, str):
        raise TypeError(f"answer_rule expects a str, got {type(text).__name__}")
    text = text.replace(_MINUS, "-")
    idx = text.rfind("####")
    if idx >= 0 and _first_number(text[idx + 4 :]) is not None:
        return "####"
    idx = text.lower().rfind("answer is")
    if idx >= 0 and _first_number(text[idx + len("answer is") :]) is not None:
        return "answer is"
    return "last number" if _last_number(text) is not None else "none"


def extract_answer(text: str, strict: bool = False) -> str | None:
    """The final answer of a response, as a string without commas, or None.

    ``strict``: only the number after the last ``####`` counts (the format the prompt asks
    for); a response without one has no answer. The lenient default also reads "answer is"
    and, failing both, the last number in the text: a response that ends on any number, even
    one that restates the question, can then be marked right (notebook 05 measures how often)."""
    if not isinstance(text, str):
        raise TypeError(f"extract_answer expects a str, got {type(text).__name__}")
    text = text.replace(_MINUS, "-")
    idx = text.rfind("####")
    if idx >= 0:
        got = _first_number(text[idx + 4 :])
        if got is not None:
            return got
    if strict:
        return None
    low = text.lower()
    idx = low.rfind("answer is")
    if idx >= 0:
        got = _first_number(text[idx + len("answer is") :])
        if got is not None:
            return got
    return _last_number(text)


def normalize_number(value: str | int | float | None) -> Decimal | None:
    """A finite number as a Decimal (so ``3.0 == 3``, ``.5 == 0.5``, ``1e3 == 1000``, ``−5 ==
    -5``), or None if it is not one (also for NaN and infinities)."""
    if value is None:
        return None
    try:
        number = Decimal(_clean(str(value)))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def answers_equal(a: str | int | float | None, b: str | int | float | None) -> bool:
    """Numeric equality of two answers; False if either is missing."""
    x, y = normalize_number(a), normalize_number(b)
    return x is not None and y is not None and x == y


def is_correct(text: str, gold: str | int | float, strict: bool = False) -> bool:
    """Whether the response's extracted answer equals ``gold`` numerically (``strict``: only
    a ``####`` answer counts, see :func:`extract_answer`)."""
    return answers_equal(extract_answer(text, strict=strict), gold)
