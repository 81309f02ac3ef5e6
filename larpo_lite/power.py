"""What more (or fewer) training seeds would buy: the minimum detectable effect of a paired
comparison as a function of the number of seeds.

Introduced in notebooks/04_ranking_losses, which must choose between more seeds per
objective and a second reranker in the same time. A comparison of a treatment trained with
``S`` seeds against a baseline on the same ``P`` problems uses each problem's mean over seeds
(:func:`larpo_lite.metrics.paired_over_seeds`): ``d_i = mean_s t_si - mean_s b_si``. Its
variance over problems has two parts, the problems' own differences and the seeds' noise::

    Var_i(d_i) = V + sigma_t^2 / S_t + sigma_b^2 / S_b

with ``sigma^2`` the mean over problems of the variance over seeds of a problem's score
(``ddof=1``; 0 for a baseline run once). :func:`mde_with_seeds` estimates ``V`` from the
measured run and predicts the MDE (``2.8 * sqrt(Var / P)``, 80% power) at another number of seeds; at the
measured numbers it equals :func:`larpo_lite.metrics.paired_over_seeds`'s ``paired.mde``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import MDE_Z


def _seed_noise(scores: np.ndarray) -> tuple[float, int]:
    """Mean over problems of the variance over seeds of ``[S, P]`` scores, and ``S``."""
    if scores.shape[0] < 2:
        raise ValueError("the seed noise needs at least 2 seeds; got 1")
    return float(scores.var(axis=0, ddof=1).mean()), int(scores.shape[0])


def mde_with_seeds(baseline: Sequence[Any] | np.ndarray, treatment: Sequence[Any] | np.ndarray,
                   seeds: int) -> float:
    """Predicted minimum detectable effect (2 paired SE) of ``treatment`` against
    ``baseline`` if every trained side ran ``seeds`` seeds.

    Args:
        baseline: ``[P]`` scores of a policy evaluated once (the initial one: its part does
            not change with ``seeds``) or ``[S_b, P]`` of a baseline trained with seeds (then
            it gets ``seeds`` seeds too).
        treatment: ``[S_t, P]`` scores, one row per seed, ``S_t >= 2`` (the seed noise is
            estimated from them).
        seeds: ``>= 1``.
    Returns:
        the predicted MDE; the measured one when ``seeds`` equals the run's seed counts
        (unless the estimate of ``V`` came out negative: it is clipped at 0).
    Raises:
        ValueError: fewer than 2 seeds measured (of the treatment, or of a baseline with
            seeds), ``seeds < 1``, shapes that disagree, or fewer than 2 problems.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    t = np.asarray(treatment, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if t.ndim != 2 or b.ndim not in (1, 2) or b.shape[-1] != t.shape[1]:
        raise ValueError(f"treatment must be [seeds, problems] and baseline [problems] or "
                         f"[seeds, problems] on the same problems, got {t.shape} and {b.shape}")
    n = t.shape[1]
    if n < 2:
        raise ValueError(f"a paired standard error needs at least 2 problems, got {n}")
    sig_t, s_t = _seed_noise(t)
    d = t.mean(axis=0) - (b.mean(axis=0) if b.ndim == 2 else b)
    now, then = sig_t / s_t, sig_t / seeds
    if b.ndim == 2:
        sig_b, s_b = _seed_noise(b)
        now, then = now + sig_b / s_b, then + sig_b / seeds
    problems = max(float(d.var(ddof=1)) - now, 0.0)  # V, the part seeds cannot average away
    return float(MDE_Z * np.sqrt((problems + then) / n))
