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


# ---- paired comparisons
def _brute(b, t):
    """The paired statistics written out one problem at a time."""
    n = len(b)
    d = [ti - bi for bi, ti in zip(b, t, strict=True)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean, (var / n) ** 0.5, sum(x > 0 for x in d), sum(x < 0 for x in d)


@pytest.mark.parametrize("seed", range(6))
def test_paired_stats_matches_brute_force(seed):
    from larpo_lite.metrics import paired_stats

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    b = rng.random(n) < rng.random()
    t = np.where(rng.random(n) < 0.2, ~b, b)  # about 20% flip
    got = paired_stats(b.astype(int), t.astype(int))
    mean, se, gained, lost = _brute(b.astype(int).tolist(), t.astype(int).tolist())
    assert got.n == n and got.gained == gained and got.lost == lost
    assert got.diff == pytest.approx(mean, abs=1e-12)
    assert got.se == pytest.approx(se, abs=1e-12)
    assert got.se == pytest.approx(np.std(t.astype(float) - b, ddof=1) / np.sqrt(n), abs=1e-12)
    # the 0/1 closed form of the docstring, from the flipped problems only
    g, lo = gained, lost
    closed = np.sqrt((g + lo - (g - lo) ** 2 / n) / (n - 1) / n)
    assert got.se == pytest.approx(closed, abs=1e-12)
    assert got.mde == pytest.approx(2.8 * got.se)
    # real-valued scores go through the same formula
    rb, rt = rng.normal(size=n), rng.normal(size=n)
    real = paired_stats(rb, rt)
    mean, se, _, _ = _brute(rb.tolist(), rt.tolist())
    assert (real.diff, real.se) == (pytest.approx(mean), pytest.approx(se))


def test_paired_stats_hand_example():
    from larpo_lite.metrics import paired_stats

    # 10 problems: 3 gained, 1 lost, 6 unchanged. d = (+1, +1, +1, -1, 0 x 6), mean 0.2;
    # sum (d - 0.2)^2 = 3 * 0.64 + 1.44 + 6 * 0.04 = 3.6; var = 3.6 / 9 = 0.4; se = sqrt(0.04) = 0.2
    base = [0, 0, 0, 1, 1, 1, 0, 0, 1, 0]
    new = [1, 1, 1, 0, 1, 1, 0, 0, 1, 0]
    s = paired_stats(base, new)
    assert (s.gained, s.lost, s.n) == (3, 1, 10)
    assert s.diff == pytest.approx(0.2) and s.se == pytest.approx(0.2) and s.mde == pytest.approx(0.56)
    assert s.verdict == "inconclusive"
    row = s.row("trained", "init")
    assert row["a"] == "trained" and row["b"] == "init" and row["diff"] == pytest.approx(0.2)
    assert {"se", "n", "mde", "gained", "lost", "verdict"} <= set(row)
    # swapping the roles flips the sign and keeps the error
    back = paired_stats(new, base)
    assert back.diff == pytest.approx(-0.2) and back.se == pytest.approx(0.2)
    assert (back.gained, back.lost) == (1, 3)


def test_paired_stats_verdicts_at_the_two_se_line():
    from larpo_lite.metrics import paired_stats, paired_verdict

    assert paired_verdict(0.11, 0.05) == "better"
    assert paired_verdict(-0.11, 0.05) == "worse"
    assert paired_verdict(0.10, 0.05) == "inconclusive"  # exactly 2 SE is not beyond it
    assert paired_verdict(-0.05, 0.05) == "inconclusive"
    # 100 problems, 30 gained, 2 lost: diff 0.28, well beyond 2 SE
    base = [0] * 32 + [1] * 20 + [0] * 48
    new = [1] * 30 + [0] * 2 + [1] * 20 + [0] * 48
    base[30], base[31] = 1, 1
    s = paired_stats(base, new)
    assert s.diff == pytest.approx(0.28) and s.verdict == "better"
    assert paired_stats(new, base).verdict == "worse"


def test_paired_stats_no_flips_and_all_flips():
    from larpo_lite.metrics import paired_stats

    same = paired_stats([1, 0, 1, 1], [1, 0, 1, 1])
    assert (same.diff, same.se, same.mde, same.gained, same.lost) == (0.0, 0.0, 0.0, 0, 0)
    assert same.verdict == "inconclusive"
    # every problem flips, half each way: the largest paired error for n problems
    half = paired_stats([0, 1, 0, 1], [1, 0, 1, 0])
    assert half.diff == 0.0 and (half.gained, half.lost) == (2, 2)
    assert half.se == pytest.approx(np.sqrt(4 / 3 / 4)) and half.verdict == "inconclusive"
    # every problem flips the same way: SE 0, and the sign decides
    up = paired_stats([0, 0, 0], [1, 1, 1])
    assert (up.diff, up.se, up.gained, up.verdict) == (1.0, 0.0, 3, "better")
    assert paired_stats([1, 1, 1], [0, 0, 0]).verdict == "worse"


def test_paired_stats_rejects_bad_input():
    from larpo_lite.metrics import paired_stats

    with pytest.raises(ValueError, match="one length"):
        paired_stats([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        paired_stats([1], [0])
    with pytest.raises(ValueError, match="finite"):
        paired_stats([0.0, float("nan")], [0.0, 1.0])


def test_paired_over_seeds():
    from larpo_lite.metrics import paired_over_seeds, paired_stats

    init = [0, 0, 1, 1, 0, 0]
    seeds = [[1, 0, 1, 1, 1, 0],   # mean 4/6
             [1, 0, 1, 0, 1, 0],   # 3/6
             [1, 1, 1, 1, 1, 0]]   # 5/6
    s = paired_over_seeds(init, seeds)
    assert s.means == pytest.approx([4 / 6, 3 / 6, 5 / 6])
    assert s.mean == pytest.approx(4 / 6)
    assert s.sd == pytest.approx(np.std([4 / 6, 3 / 6, 5 / 6], ddof=1))
    assert s.spread == (pytest.approx(3 / 6), pytest.approx(5 / 6))
    per_problem = np.mean(seeds, axis=0)  # [1, 1/3, 1, 2/3, 1, 0]
    assert s.paired == paired_stats(init, per_problem)
    assert s.paired.diff == pytest.approx(4 / 6 - 2 / 6)
    assert (s.paired.gained, s.paired.lost) == (3, 1)
    # a baseline with seeds of its own is averaged the same way
    two = paired_over_seeds([init, [1, 0, 1, 1, 0, 0]], seeds)
    assert two.paired == paired_stats(np.mean([init, [1, 0, 1, 1, 0, 0]], axis=0), per_problem)
    one = paired_over_seeds(init, [seeds[0]])
    assert one.sd == 0.0 and one.paired == paired_stats(init, seeds[0])
    with pytest.raises(ValueError, match="seeds, problems"):
        paired_over_seeds(init, seeds[0])
