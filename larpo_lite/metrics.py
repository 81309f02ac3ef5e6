"""Metrics: unbiased pass@k (Recall@N of the LLM-as-retriever), Recall@N curves, best-of-N
reward (its analogue when a reward model scores), greedy accuracy, NDCG, and paired
comparisons of two policies on the same problems (difference, paired SE, 2-SE verdict).

Introduced in notebooks/02_recall_at_n.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


# --------------------------------------------------------------------------- paired comparisons
# For the comparisons of notebooks 03-07 against their baselines: two policies evaluated on the
# same problems differ on far fewer problems than two independent samples would, so their
# difference is judged on the per-problem differences (a paired test), never on two separate
# accuracies; reproduction.py reads the same per-problem scores.
BETTER, WORSE, INCONCLUSIVE = "better", "worse", "inconclusive"


@dataclass(frozen=True)
class PairedStats:
    """Treatment minus baseline on the same ``n`` problems (see :func:`paired_stats`).

    Attributes:
        diff: mean of the per-problem differences ``d_i = treatment_i - baseline_i``.
        se: paired standard error of ``diff``.
        mde: minimum detectable effect, ``2 * se``.
        gained: problems with ``d_i > 0`` (for 0/1 scores: wrong before, right after).
        lost: problems with ``d_i < 0``.
        n: problems.
        verdict: ``"better"`` (``diff > mde``), ``"worse"`` (``diff < -mde``) or
            ``"inconclusive"``.
    """

    diff: float
    se: float
    mde: float
    gained: int
    lost: int
    n: int
    verdict: str

    def row(self, a: str, b: str) -> dict[str, Any]:
        """A ``metrics.comparisons`` row: ``a`` (the treatment) minus ``b`` (the baseline)."""
        return {"a": a, "b": b, "diff": self.diff, "se": self.se, "n": self.n, "mde": self.mde,
                "gained": self.gained, "lost": self.lost, "verdict": self.verdict}


MDE_Z = 2.8  # standard errors: 80% power at two-sided alpha 0.05 (1.96 + 0.84)


def paired_verdict(diff: float, se: float) -> str:
    """The 2-SE rule: ``"better"`` if ``diff > 2 se``, ``"worse"`` if ``diff < -2 se``, else
    ``"inconclusive"`` (so a zero difference is inconclusive even when ``se`` is 0)."""
    if diff > 2 * se:
        return BETTER
    if diff < -2 * se:
        return WORSE
    return INCONCLUSIVE


def paired_stats(baseline: Sequence[float] | np.ndarray,
                 treatment: Sequence[float] | np.ndarray) -> PairedStats:
    """Paired difference of two per-problem score vectors on the same problems.

    With ``d_i = treatment_i - baseline_i`` over ``n`` problems::

        diff = mean(d)
        se   = sqrt( sum_i (d_i - diff)^2 / (n - 1) / n )      # sample variance of d, over n

    For 0/1 scores (correct or not) with ``g`` problems gained and ``l`` lost, ``d_i`` is
    +1, -1 or 0, so only the flipped problems carry variance::

        diff = (g - l) / n,    se = sqrt( (g + l - (g - l)^2 / n) / (n - 1) / n )

    ``mde = 2.8 se`` (the minimum detectable effect at 80% power, two-sided alpha 0.05:
    1.96 + 0.84 standard errors) and the verdict follows :func:`paired_verdict`. When ``se`` is 0 every
    problem has the same difference: for 0/1 scores either nothing changed (``diff = 0``,
    "inconclusive", ``mde = 0``) or every problem flipped the same way (``|diff| = 1``, "better"
    or "worse"); a nonzero ``diff`` with ``se = 0`` occurs only in that second case.

    Args:
        baseline: ``[n]`` scores (0/1 correctness or real-valued rewards) of the baseline.
        treatment: ``[n]`` scores of the treatment, problem ``i`` the same in both.
    Raises:
        ValueError: the vectors differ in length, are not 1-D, hold NaN, or ``n < 2``.
    """
    b = np.asarray(baseline, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)
    if b.ndim != 1 or t.shape != b.shape:
        raise ValueError(f"paired scores must be two 1-D vectors of one length, got shapes "
                         f"{b.shape} and {t.shape}")
    n = b.size
    if n < 2:
        raise ValueError(f"a paired standard error needs at least 2 problems, got {n}")
    if not (np.isfinite(b).all() and np.isfinite(t).all()):
        raise ValueError("paired scores must be finite")
    d = t - b
    diff = float(d.mean())
    se = float(np.sqrt(np.sum((d - diff) ** 2) / (n - 1) / n))
    return PairedStats(diff=diff, se=se, mde=MDE_Z * se, gained=int(np.sum(d > 0)),
                       lost=int(np.sum(d < 0)), n=n, verdict=paired_verdict(diff, se))


@dataclass(frozen=True)
class SeedStats:
    """A treatment run with several seeds against a baseline (see :func:`paired_over_seeds`).

    Attributes:
        means: ``[S]`` the treatment's mean score for each seed.
        mean: mean of ``means``.
        sd: standard deviation of ``means`` over seeds (``ddof=1``; 0.0 for one seed).
        spread: ``(min, max)`` of ``means``.
        paired: :class:`PairedStats` of the per-problem mean over seeds against the baseline
            (its per-problem mean over seeds when it has seeds too).
    """

    means: list[float]
    mean: float
    sd: float
    spread: tuple[float, float]
    paired: PairedStats


def paired_over_seeds(baseline: Sequence[Any] | np.ndarray,
                      treatment: Sequence[Sequence[float]] | np.ndarray) -> SeedStats:
    """Mean and spread over seeds, and the paired statistics of the seeds' mean.

    Each problem's score is first averaged over seeds (a real number in ``[0, 1]`` for 0/1
    scores); :func:`paired_stats` then compares those per-problem means, so seed noise and
    problem noise enter the standard error together.

    Args:
        baseline: ``[P]`` scores (a policy evaluated once, e.g. the initial one) or ``[S', P]``
            (a baseline with seeds of its own, e.g. pairwise against a listwise objective).
        treatment: ``[S, P]`` scores, one row per seed, problems in the same order.
    """
    t = np.asarray(treatment, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(f"treatment must be [seeds, problems], got shape {t.shape}")
    if b.ndim == 2:
        b = b.mean(axis=0)
    means = t.mean(axis=1)
    sd = float(means.std(ddof=1)) if means.size > 1 else 0.0
    return SeedStats(means=[float(m) for m in means], mean=float(means.mean()), sd=sd,
                     spread=(float(means.min()), float(means.max())),
                     paired=paired_stats(b, t.mean(axis=0)))


# --------------------------------------------------------------------------- Recall@N explorer
# Notebook 02's widget: choose a temperature T and a number of samples N over one run's
# per-problem correctness and see Recall@N and the best temperature at that N. The widget only
# draws; everything it shows comes from these two functions.


def per_problem_recall(correct: np.ndarray | Sequence[Sequence[bool]],
                       n_grid: Sequence[int]) -> dict[int, np.ndarray]:
    """Each problem's unbiased pass@N (its term of :func:`recall_curve`) for each N.

    Args:
        correct: bool ``[P, n]``: sample j of problem i is correct.
        n_grid: the N values, each in ``1..n``.
    Returns:
        ``{N: float array [P]}``; the mean over problems of ``out[N]`` is ``recall_curve``'s
        value at N, and two temperatures' arrays on the same problems compare paired
        (:func:`paired_stats`).
    """
    arr = np.asarray(correct, dtype=bool)
    if arr.ndim != 2:
        raise ValueError(f"correct must be [problems, samples], got shape {arr.shape}")
    n, c = arr.shape[1], arr.sum(axis=1)
    bad = [k for k in n_grid if k > n or k < 1]
    if bad:
        raise ValueError(f"N values {bad} outside 1..{n} (samples per problem)")
    return {int(k): np.atleast_1d(np.asarray(pass_at_k(np.full_like(c, n), c, k), dtype=np.float64))
            for k in n_grid}


@dataclass(frozen=True)
class RecallView:
    """What the Recall@N explorer shows for one choice of temperature ``t`` and ``n`` samples.

    Attributes:
        t: the chosen temperature.
        n: the chosen number of samples N.
        curve: ``{N': Recall@N'}`` at temperature ``t`` for every ``N'`` in ``1..k``.
        at_n: ``{T: Recall@n}`` for every temperature of the run.
        best_t: the temperature with the highest Recall@n (the lowest one on a tie).
        se: ``{T: standard error of Recall@n over problems}`` (the per-problem pass@n's
            standard deviation over the square root of the number of problems).
    """

    t: float
    n: int
    curve: dict[int, float]
    at_n: dict[float, float]
    best_t: float
    se: dict[float, float]

    @property
    def recall(self) -> float:
        """Recall@n at temperature ``t``."""
        return self.at_n[self.t]


def recall_view(correct_by_t: Mapping[float, np.ndarray | Sequence[Sequence[bool]]],
                t: float, n: int) -> RecallView:
    """Recall@N of a run's samples at temperature ``t`` and ``n`` samples, and every
    temperature's Recall@n (the explorer of notebooks/02_recall_at_n).

    Args:
        correct_by_t: ``{T: bool [P, k]}``, the correctness of ``k`` samples per problem at
            each temperature, the same ``P`` problems and ``k`` at every temperature.
        t: a key of ``correct_by_t``.
        n: the number of samples N, ``1 <= n <= k``.
    """
    if t not in correct_by_t:
        raise ValueError(f"temperature {t!r} not among {sorted(correct_by_t)}")
    shapes = {np.asarray(c).shape for c in correct_by_t.values()}
    if len(shapes) != 1:
        raise ValueError(f"every temperature needs the same [problems, samples], got {sorted(shapes)}")
    k = np.asarray(correct_by_t[t]).shape[-1]
    if not 1 <= n <= k:
        raise ValueError(f"N={n} outside 1..{k} (samples per problem)")
    per = {temp: per_problem_recall(c, [n])[n] for temp, c in correct_by_t.items()}
    at_n = {temp: float(v.mean()) for temp, v in per.items()}
    se = {temp: float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
          for temp, v in per.items()}
    top = max(at_n.values())
    best_t = min(temp for temp, r in at_n.items() if r == top)
    return RecallView(t=t, n=int(n), curve=recall_curve(correct_by_t[t], range(1, k + 1)),
                      at_n=at_n, best_t=best_t, se=se)


def se_over_problems(values: Sequence[float] | np.ndarray) -> float:
    """Standard error of a mean over problems: ``std(values, ddof=1) / sqrt(P)`` for ``[P]``
    per-problem scores (0/1 correctness, a per-problem pass@N); 0.0 for one problem."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


def draw_se(per_problem_pass: Sequence[float] | np.ndarray, draws: int) -> float:
    """The noise that random subsets add to best-of-N with an oracle reranker.

    Best-of-N with the verifier draws ``draws`` random subsets of N samples per problem and is
    right on a draw exactly when the subset holds a correct sample: a Bernoulli draw whose
    probability is that problem's unbiased pass@N ``q_i`` (``per_problem_pass``, ``[P]``). The
    mean over the ``P * draws`` draws therefore estimates Recall@N with standard error
    ``sqrt(sum_i q_i (1 - q_i) / draws) / P`` around it, for these samples (0 when every draw
    is the whole list)."""
    q = np.asarray(per_problem_pass, dtype=np.float64).ravel()
    if draws < 1 or q.size == 0:
        raise ValueError(f"draw_se needs draws >= 1 and some problems, got draws={draws}, P={q.size}")
    return float(np.sqrt(np.sum(q * (1 - q)) / draws) / q.size)


def crossover_halves(per_problem: Mapping[float, Mapping[int, np.ndarray]], best_small: float,
                     best_large: float, n_small: int, n_large: int
                     ) -> dict[str, tuple[float, float, int, PairedStats]]:
    """The two paired comparisons that test the paper's temperature crossover (notebook 02).

    The pair: the best temperatures at ``n_small`` and ``n_large`` when the first is the lower
    (they cross), else the best at ``n_small`` and its strongest rival above it at ``n_large``
    (below it, when it is the highest temperature). ``per_problem``: ``{T: {N: [P]}}``
    unbiased pass@N (:func:`per_problem_recall`), the same problems at every T.

    Returns:
        ``{"small": (lower T, higher T, n_small, stats of lower minus higher),
        "large": (higher T, lower T, n_large, stats of higher minus lower)}``: each half in the
        paper's direction; ``{}`` with a single temperature.
    """
    temps = list(per_problem)
    at_large = {t: float(np.mean(per_problem[t][n_large])) for t in temps}
    if best_small < best_large:
        low, high = best_small, best_large
    elif above := [t for t in temps if t > best_small]:
        low, high = best_small, max(above, key=lambda t: at_large[t])
    elif below := [t for t in temps if t < best_small]:
        low, high = max(below, key=lambda t: at_large[t]), best_small
    else:
        return {}
    pp = per_problem
    return {"small": (low, high, n_small, paired_stats(pp[high][n_small], pp[low][n_small])),
            "large": (high, low, n_large, paired_stats(pp[low][n_large], pp[high][n_large]))}
