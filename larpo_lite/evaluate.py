"""Evaluating a policy on problems: greedy accuracy (retriever alone), pass@N / Recall@N
(the candidate list), best-of-N with a reranker (retriever + reranker).

Problems with a gold answer (math tasks) are checked by the verifier. Problems without one
(UltraFeedback prompts) are scored by a reward model: greedy accuracy becomes the greedy
response's mean reward and pass@N the best-of-N reward (:func:`metrics.best_of_n_reward`).

Introduced in notebooks/01_ir_analogy and notebooks/02_recall_at_n.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import recall_curve, reward_curve
from .rewards import Reranker, best_of_n
from .sampling import Generation, Sampler
from .tasks import Problem, is_correct, problem_prompt


def prompts_for(problems: Sequence[Problem], tokenizer: Any) -> list[str]:
    """Chat-templated prompts of the problems."""
    return [problem_prompt(p, tokenizer) for p in problems]


def is_verified(problems: Sequence[Problem]) -> bool:
    """True when every problem has a gold answer (verifier), False when none has (reward
    model); a mix is an error."""
    has = [bool(p.answer) for p in problems]
    if any(has) and not all(has):
        raise ValueError("some problems have a gold answer and some do not; score them apart")
    return all(has)


def score_responses(problems: Sequence[Problem], texts: Sequence[Sequence[str]],
                    reranker: Reranker | None = None) -> np.ndarray:
    """Scores ``[P, k]`` of ``k`` responses per problem: 0/1 from the verifier when the
    problems have gold answers, else the rewards of ``reranker`` (a reward model: its
    ``score_pairs``, batched across problems)."""
    if len(problems) != len(texts):
        raise ValueError(f"{len(problems)} problems for {len(texts)} response lists")
    if is_verified(problems):
        return np.array([[float(is_correct(t, p.answer)) for t in ts]
                         for p, ts in zip(problems, texts, strict=True)], dtype=np.float64)
    if not hasattr(reranker, "score_pairs"):
        raise ValueError("these problems have no gold answer (a reward-scored task such as "
                         "ultrafeedback): pass a reward model as reranker (reward_model=...)")
    sizes = {len(ts) for ts in texts}
    if len(sizes) > 1:
        raise ValueError(f"score_responses needs as many responses for every problem, got {sorted(sizes)}")
    k = sizes.pop() if sizes else 0
    flat = reranker.score_pairs([p.question for p in problems for _ in range(k)],  # one batched pass
                                [t for ts in texts for t in ts])
    return np.asarray(flat, dtype=np.float64).reshape(len(problems), k)


@dataclass
class CandidateSet:
    """k sampled responses per problem and their correctness.

    Attributes:
        problems: the P problems.
        generations: one Generation (k texts) per problem.
        correct: bool array ``[P, k]`` (all False for problems without a gold answer).
        rewards: float array ``[P, k]`` of reward-model scores, or None (verifier tasks; set
            by :func:`score_candidates`).
    """

    problems: list[Problem]
    generations: list[Generation]
    correct: np.ndarray
    rewards: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.correct.shape[1])

    @property
    def metric(self) -> str:
        """``"pass"`` (verifier: pass@N) or ``"reward"`` (reward model: best-of-N reward)."""
        return "pass" if self.rewards is None else "reward"

    def recall(self, n_grid: Sequence[int]) -> dict[int, float]:
        return recall_curve(self.correct, n_grid)

    def curve(self, n_grid: Sequence[int]) -> dict[str, float]:
        """``{"pass@N": ...}`` (Recall@N) with a verifier, ``{"reward@N": ...}`` (mean
        best-of-N reward) with a reward model."""
        values = (self.recall(n_grid) if self.rewards is None
                  else reward_curve(self.rewards, n_grid))
        return {f"{self.metric}@{n}": v for n, v in values.items()}

    def score(self) -> float:
        """Mean over problems and samples: accuracy, or mean reward."""
        return float(self.correct.mean() if self.rewards is None else self.rewards.mean())

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


def score_candidates(cands: CandidateSet, reranker: Reranker | None = None) -> CandidateSet:
    """The candidates with ``rewards`` filled in when their problems have no gold answer
    (``reranker``: the reward model); verifier tasks come back unchanged."""
    if is_verified(cands.problems):
        return cands
    rewards = score_responses(cands.problems, [g.texts for g in cands.generations], reranker)
    return dataclasses.replace(cands, rewards=rewards)


def greedy_eval(sampler: Sampler, problems: Sequence[Problem], tokenizer: Any,
                max_new_tokens: int, reranker: Reranker | None = None
                ) -> tuple[float, list[str], np.ndarray]:
    """Greedy accuracy, the responses and a bool array ``[P]`` of correctness; for problems
    without a gold answer, the mean reward and a float array ``[P]`` of rewards (``reranker``:
    the reward model)."""
    texts = sampler.greedy(prompts_for(problems, tokenizer), max_new_tokens=max_new_tokens)
    if not is_verified(problems):
        rewards = score_responses(problems, [[t] for t in texts], reranker)[:, 0]
        return float(rewards.mean()), texts, rewards
    correct = np.array([is_correct(t, p.answer) for t, p in zip(texts, problems, strict=True)],
                       dtype=bool)
    return float(correct.mean()), texts, correct


BEST_OF_N_DRAWS = 20  # random subsets of N per problem that best-of-N reranks (N < k)


def best_of_n_hits(cands: CandidateSet, reranker: Reranker, n_grid: Sequence[int],
                   n_draws: int = BEST_OF_N_DRAWS, seed: int = 0) -> dict[int, np.ndarray]:
    """Whether best-of-N with ``reranker`` picked a correct response, draw by draw.

    For each N, ``n_draws`` random subsets of N of the k samples per problem are reranked and
    the chosen response checked against the gold answer (``N = k`` uses the full list once).

    Returns:
        ``{N: bool [P, draws]}`` (``draws`` is ``n_draws``, or 1 at ``N = k``).
    """
    rng = np.random.default_rng(seed)
    k = cands.k
    out: dict[int, np.ndarray] = {}
    for n in n_grid:
        if not 1 <= n <= k:
            raise ValueError(f"N={n} outside 1..{k}")
        draws = 1 if n == k else n_draws
        hits = []
        for g, p, corr in zip(cands.generations, cands.problems, cands.correct, strict=True):
            for _ in range(draws):
                idx = rng.choice(k, size=n, replace=False) if n < k else np.arange(k)
                scores = reranker.score([g.texts[i] for i in idx], gold=p.answer, prompt=p.question)
                hits.append(bool(corr[idx[best_of_n(scores)]]))
        out[int(n)] = np.array(hits, dtype=bool).reshape(len(cands.problems), draws)
    return out


def best_of_n_curve(cands: CandidateSet, reranker: Reranker, n_grid: Sequence[int],
                    n_draws: int = BEST_OF_N_DRAWS, seed: int = 0) -> dict[int, float]:
    """Accuracy of best-of-N selection with ``reranker`` for each N: the mean over draws and
    problems of :func:`best_of_n_hits`.

    With the verifier as reranker a draw is right exactly when its subset holds a correct
    sample, so this is a Monte Carlo estimate of pass@N over ``n_draws`` subsets per problem
    (exactly pass@N at ``N = k``; :func:`larpo_lite.metrics.draw_se` is its noise); with
    majority vote it needs no label at all.
    """
    hits = best_of_n_hits(cands, reranker, n_grid, n_draws=n_draws, seed=seed)
    return {n: float(np.mean(h)) for n, h in hits.items()}


def shared_prefix(a: Sequence[Problem], b: Sequence[Problem]) -> int:
    """How many problems two problem lists share at their start (the same ids, in order): a
    sampled subset and a greedy evaluation of the same split compare paired on these."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x.id != y.id),
                min(len(a), len(b)))


def candidates_record(cands: CandidateSet) -> dict[str, Any]:
    """A candidate set as plain data for a replay record: ``prompts`` [P], ``texts``,
    ``num_tokens`` and ``finished`` [P][k], ``correct`` bool [P, k]."""
    gens = cands.generations
    return {"prompts": [g.prompt for g in gens], "texts": [g.texts for g in gens],
            "num_tokens": [g.num_tokens for g in gens], "finished": [g.finished for g in gens],
            "correct": cands.correct}


def candidates_from_record(record: dict[str, Any], problems: Sequence[Problem], temperature: float,
                           top_p: float, model_name: str, backend: str, seed: int) -> CandidateSet:
    """The :class:`CandidateSet` of :func:`candidates_record`'s data (``correct``: bool
    ``[P, k]``), its generations labelled with how they were sampled."""
    gens = [Generation(prompt=p, texts=t, num_tokens=n, finished=f, temperature=temperature,
                       top_p=top_p, model_name=model_name, backend=backend, seed=seed)
            for p, t, n, f in zip(record["prompts"], record["texts"], record["num_tokens"],
                                  record["finished"], strict=True)]
    return CandidateSet(list(problems), gens, np.array(record["correct"], dtype=bool))
