from math import comb

import numpy as np
import pytest

from larpo_lite.metrics import bootstrap_recall, greedy_accuracy, ndcg_at_k, pass_at_k, recall_curve


def exact(n, c, k):
    return 1.0 - comb(n - c, k) / comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 16, 32, 100])
def test_pass_at_k_matches_binomial(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k), abs=1e-12)


def test_pass_at_k_edges_and_arrays():
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    out = pass_at_k(np.array([10, 10]), np.array([1, 2]), 5)
    assert out.shape == (2,)
    assert out[0] == pytest.approx(exact(10, 1, 5))
    assert out[1] == pytest.approx(exact(10, 2, 5))


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, 1, 6), (5, 1, 0), (5, -1, 1)])
def test_pass_at_k_bad_input(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_recall_curve_is_mean_pass_at_k_and_monotone():
    rng = np.random.default_rng(0)
    correct = rng.random((20, 16)) < 0.15
    curve = recall_curve(correct, [1, 2, 4, 8, 16])
    c = correct.sum(1)
    assert curve[4] == pytest.approx(np.mean([exact(16, ci, 4) for ci in c]))
    vals = list(curve.values())
    assert all(a <= b + 1e-12 for a, b in zip(vals, vals[1:], strict=False))
    assert curve[1] == pytest.approx(correct.mean())
    with pytest.raises(ValueError):
        recall_curve(correct, [32])


def test_bootstrap_interval_contains_estimate():
    rng = np.random.default_rng(1)
    correct = rng.random((40, 8)) < 0.3
    est = recall_curve(correct, [1, 8])
    ci = bootstrap_recall(correct, [1, 8], n_boot=300)
    for n in (1, 8):
        assert ci[n][0] <= est[n] <= ci[n][1]
        assert ci[n][0] < ci[n][1]


def test_greedy_accuracy_and_ndcg():
    assert greedy_accuracy([True, False, False, True]) == 0.5
    with pytest.raises(ValueError):
        greedy_accuracy([])
    assert ndcg_at_k([1, 0, 0]) == pytest.approx(1.0)
    assert ndcg_at_k([0, 1]) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_k([0, 0]) == 0.0
