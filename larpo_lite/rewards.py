"""Rerankers: the task verifier and majority vote; best-of-N selection.

Introduced in notebooks/01_ir_analogy: the LLM is the retriever, the reward model
the reranker. Greedy decoding is the retriever alone; best-of-N with a reranker is
retriever + reranker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from .tasks.answers import extract_answer, is_correct, normalize_number


class Reranker(Protocol):
    """Scores the candidates of one prompt (higher is better)."""

    name: str

    def score(self, texts: Sequence[str], gold: str | None = None) -> list[float]: ...


class VerifierReranker:
    """The task's rule-based verifier: 1.0 if the final answer equals the gold one, else 0.0."""

    name = "verifier"

    def score(self, texts: Sequence[str], gold: str | None = None) -> list[float]:
        if gold is None:
            raise ValueError("the verifier needs the gold answer")
        return [1.0 if is_correct(t, gold) else 0.0 for t in texts]


class MajorityVoteReranker:
    """Label-free reranker: 1.0 for responses whose answer is the most common answer among
    the candidates (ties between answers: the one seen first), 0.0 otherwise or when a
    response has no answer."""

    name = "majority"

    def score(self, texts: Sequence[str], gold: str | None = None) -> list[float]:
        answers = [normalize_number(extract_answer(t)) for t in texts]
        counts = Counter(a for a in answers if a is not None)
        if not counts:
            return [0.0] * len(texts)
        top = max(counts.values())
        winner = next(a for a in answers if a is not None and counts[a] == top)
        return [1.0 if a == winner else 0.0 for a in answers]


RERANKERS = {"verifier": VerifierReranker, "majority": MajorityVoteReranker}


def get_reranker(name: str) -> Reranker:
    """A reranker by name; unknown names raise ValueError listing the valid ones."""
    if name not in RERANKERS:
        raise ValueError(f"unknown reranker {name!r}; valid: {', '.join(RERANKERS)}")
    return RERANKERS[name]()


def best_of_n(scores: Sequence[float]) -> int:
    """Index of the best candidate; ties go to the earliest (sampling order), so best-of-1
    is the first sample."""
    if len(scores) == 0:
        raise ValueError("best_of_n of an empty list")
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s == best)
