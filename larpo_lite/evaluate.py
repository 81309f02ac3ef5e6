"""Evaluating a policy on problems: greedy accuracy (retriever alone), pass@N / Recall@N
(the candidate list), best-of-N with a reranker (retriever + reranker).

Introduced in notebooks/01_ir_analogy and notebooks/02_recall_at_n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import recall_curve
from .rewards import Reranker, best_of_n
from .sampling import Generation, Sampler
from .tasks import Problem, build_prompt, is_correct


def prompts_for(problems: Sequence[Problem], tokenizer: Any) -> list[str]:
    """Chat-templated prompts of the problems."""
    return [build_prompt(p.question, tokenizer) for p in problems]


@dataclass
class CandidateSet:
    """k sampled responses per problem and their correctness.

    Attributes:
        problems: the P problems.
        generations: one Generation (k texts) per problem.
        correct: bool array ``[P, k]``.
    """

    problems: list[Problem]
    generations: list[Generation]
    correct: np.ndarray

    @property
    def k(self) -> int:
        return int(self.correct.shape[1])

    def recall(self, n_grid: Sequence[int]) -> dict[int, float]:
        return recall_curve(self.correct, n_grid)

    def mean_tokens(self) -> float:
        return float(np.mean([np.mean(g.num_tokens) for g in self.generations]))


def sample_candidates(sampler: Sampler, problems: Sequence[Problem], tokenizer: Any, k: int,
                      temperature: float, max_new_tokens: int, top_p: float = 1.0,
                      seed: int = 0) -> CandidateSet:
    """Sample ``k`` responses per problem and verify each against the gold answer."""
    gens = sampler.generate(prompts_for(problems, tokenizer), k=k, temperature=temperature,
                            top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                            desc=f"{k} samples/problem, T={temperature}")
    correct = np.array([[is_correct(t, p.answer) for t in g.texts]
                        for g, p in zip(gens, problems, strict=True)], dtype=bool)
    return CandidateSet(list(problems), gens, correct)


def greedy_eval(sampler: Sampler, problems: Sequence[Problem], tokenizer: Any,
                max_new_tokens: int) -> tuple[float, list[str], np.ndarray]:
    """Greedy accuracy, the responses and a bool array ``[P]`` of correctness."""
    texts = sampler.greedy(prompts_for(problems, tokenizer), max_new_tokens=max_new_tokens)
    correct = np.array([is_correct(t, p.answer) for t, p in zip(texts, problems, strict=True)],
                       dtype=bool)
    return float(correct.mean()), texts, correct


def best_of_n_curve(cands: CandidateSet, reranker: Reranker, n_grid: Sequence[int],
                    n_draws: int = 20, seed: int = 0) -> dict[int, float]:
    """Accuracy of best-of-N selection with ``reranker`` for each N.

    For each N, ``n_draws`` random subsets of N of the k samples per problem are reranked
    and the chosen response checked against the gold answer; the mean over draws and
    problems is returned (``N = k`` uses the full list once). With the verifier as
    reranker this is pass@N; with majority vote it needs no label at all.
    """
    rng = np.random.default_rng(seed)
    k = cands.k
    out: dict[int, float] = {}
    for n in n_grid:
        if not 1 <= n <= k:
            raise ValueError(f"N={n} outside 1..{k}")
        draws = 1 if n == k else n_draws
        hits = []
        for g, p, corr in zip(cands.generations, cands.problems, cands.correct, strict=True):
            for _ in range(draws):
                idx = rng.choice(k, size=n, replace=False) if n < k else np.arange(k)
                scores = reranker.score([g.texts[i] for i in idx], gold=p.answer)
                hits.append(bool(corr[idx[best_of_n(scores)]]))
        out[int(n)] = float(np.mean(hits))
    return out
