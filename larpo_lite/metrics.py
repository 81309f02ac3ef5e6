"""Metrics: unbiased pass@k (Recall@N of the LLM-as-retriever), Recall@N curves, best-of-N
reward (its analogue when a reward model scores), greedy accuracy, NDCG.

Introduced in notebooks/02_recall_at_n.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int | np.ndarray, c: int | np.ndarray, k: int | np.ndarray) -> float | np.ndarray:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021).

    ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1..n} (1 - k/i)``; 1.0 when
    ``n - c < k``. Scalars or broadcastable arrays; returns a float for scalar input.
    """
    n_a, c_a, k_a = np.broadcast_arrays(np.asarray(n), np.asarray(c), np.asarray(k))
    if np.any(n_a < 1) or np.any(c_a < 0) or np.any(c_a > n_a) or np.any(k_a < 1) or np.any(k_a > n_a):
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    out = np.empty(n_a.shape, dtype=np.float64)
    for idx in np.ndindex(n_a.shape):
        ni, ci, ki = int(n_a[idx]), int(c_a[idx]), int(k_a[idx])
        if ni - ci < ki:
            out[idx] = 1.0
        else:
            i = np.arange(ni - ci + 1, ni + 1, dtype=np.float64)
            out[idx] = 1.0 - float(np.prod(1.0 - ki / i))
    return float(out) if out.ndim == 0 else out


def recall_curve(correct: np.ndarray | Sequence[Sequence[bool]], n_grid: Sequence[int]) -> dict[int, float]:
    """Recall@N (= mean pass@N over problems) for each N in ``n_grid``.

    Args:
        correct: bool array ``[P, n]``: sample j of problem i is correct.
        n_grid: the N values, each ``<= n``.
    """
    arr = np.asarray(correct, dtype=bool)
    if arr.ndim != 2:
        raise ValueError(f"correct must be [problems, samples], got shape {arr.shape}")
    n = arr.shape[1]
    c = arr.sum(axis=1)
    bad = [k for k in n_grid if k > n or k < 1]
    if bad:
        raise ValueError(f"N values {bad} outside 1..{n} (samples per problem)")
    return {int(k): float(np.mean(pass_at_k(n, c, k))) for k in n_grid}


def best_of_n_reward(rewards: np.ndarray | Sequence[Sequence[float]], n: int) -> np.ndarray:
    """Expected best reward among ``n`` of the ``k`` samples of each problem, unbiased.

    The reward analogue of pass@N for tasks a reward model scores: over every size-``n``
    subset of the ``k`` samples, the mean of the subset's maximum. With rewards sorted
    ascending ``r_(1) <= .. <= r_(k)``, ``r_(i)`` is the maximum of ``C(i-1, n-1)`` of the
    ``C(k, n)`` subsets. On 0/1 rewards it equals :func:`pass_at_k`.

    Args:
        rewards: float array ``[P, k]``.
        n: subset size, ``1 <= n <= k``.
    Returns:
        float array ``[P]``.
    """
    from math import comb

    arr = np.asarray(rewards, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"rewards must be [problems, samples], got shape {arr.shape}")
    k = arr.shape[1]
    if not 1 <= n <= k:
        raise ValueError(f"N={n} outside 1..{k} (samples per problem)")
    weights = np.array([comb(i - 1, n - 1) for i in range(1, k + 1)], dtype=np.float64) / comb(k, n)
    return np.sort(arr, axis=1) @ weights


def reward_curve(rewards: np.ndarray | Sequence[Sequence[float]], n_grid: Sequence[int]) -> dict[int, float]:
    """Mean best-of-N reward over problems for each N in ``n_grid`` (``rewards``: ``[P, k]``)."""
    return {int(n): float(np.mean(best_of_n_reward(rewards, n))) for n in n_grid}


def greedy_accuracy(correct: Sequence[bool]) -> float:
    """Share of problems whose greedy response is correct."""
    arr = np.asarray(correct, dtype=bool)
    if arr.size == 0:
        raise ValueError("greedy_accuracy of an empty list")
    return float(arr.mean())


def ndcg_at_k(relevance_ranked: Sequence[float], k: int | None = None) -> float:
    """NDCG@k of one ranked list of graded relevances (``2^rel - 1`` gains, ``log2(1+rank)``)."""
    rel = np.asarray(relevance_ranked, dtype=np.float64)
    k = len(rel) if k is None else k
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(np.sum((2 ** rel[:k] - 1) * disc[: len(rel[:k])]))
    ideal = np.sort(rel)[::-1][:k]
    idcg = float(np.sum((2 ** ideal - 1) * disc[: len(ideal)]))
    return dcg / idcg if idcg > 0 else 0.0


def bootstrap_recall(correct: np.ndarray, n_grid: Sequence[int], n_boot: int = 1000,
                     seed: int = 0, level: float = 0.9) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap interval of Recall@N over problems (resampled with replacement).

    Args:
        correct: bool ``[P, n]``.
        n_grid: the N values.
        level: coverage of the interval (0.9: the 5th to 95th percentile).
    Returns:
        ``{N: (low, high)}``.
    """
    arr = np.asarray(correct, dtype=bool)
    n, c = arr.shape[1], arr.sum(axis=1)
    per_problem = {k: np.asarray(pass_at_k(np.full_like(c, n), c, k)) for k in n_grid}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(n_boot, arr.shape[0]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for k in n_grid:
        means = per_problem[k][idx].mean(axis=1)
        out[int(k)] = (float(np.percentile(means, lo)), float(np.percentile(means, hi)))
    return out
