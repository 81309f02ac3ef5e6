"""The Recall@N explorer of notebook 02 (per-problem pass@N, the view for a chosen T and N) and
the small plotting helpers its figures use."""

from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from larpo_lite import findings, metrics, plotting

# Problem 0 is always right at T=0.3 and right once at T=1.0; problem 1 is never right at
# T=0.3 and right once at T=1.0. T=0.3 wins at N=1, ties at N=2, T=1.0 wins at N=4.
CROSS = {
    0.3: np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool),
    1.0: np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=bool),
}


def brute_pass_at_n(row, n):
    """Share of the size-n subsets of one problem's samples that hold a correct one."""
    subsets = list(combinations(row, n))
    return sum(any(s) for s in subsets) / len(subsets)


def test_per_problem_recall_equals_brute_force_and_averages_to_the_curve():
    rng = np.random.default_rng(0)
    correct = rng.random((7, 6)) < 0.3
    grid = [1, 2, 3, 6]
    per = metrics.per_problem_recall(correct, grid)
    for n in grid:
        assert per[n].shape == (7,)
        np.testing.assert_allclose(per[n], [brute_pass_at_n(r, n) for r in correct], atol=1e-12)
        assert per[n].mean() == pytest.approx(metrics.recall_curve(correct, grid)[n])


def test_per_problem_recall_rejects_n_beyond_the_samples():
    with pytest.raises(ValueError, match="outside"):
        metrics.per_problem_recall(np.zeros((2, 4), dtype=bool), [8])


def test_recall_view_hand_example_best_temperature_moves_with_n():
    v1 = metrics.recall_view(CROSS, 1.0, 1)
    assert v1.at_n == pytest.approx({0.3: 0.5, 1.0: 0.25})
    assert v1.best_t == 0.3 and v1.recall == pytest.approx(0.25)
    # per-problem pass@1 is [1, 0] at T=0.3 and [0.25, 0.25] at T=1.0
    assert v1.se == pytest.approx({0.3: np.std([1, 0], ddof=1) / np.sqrt(2), 1.0: 0.0})
    v2 = metrics.recall_view(CROSS, 0.3, 2)
    assert v2.at_n == pytest.approx({0.3: 0.5, 1.0: 0.5})
    assert v2.best_t == 0.3  # a tie goes to the lower temperature
    v4 = metrics.recall_view(CROSS, 1.0, 4)
    assert v4.at_n == pytest.approx({0.3: 0.5, 1.0: 1.0})
    assert v4.best_t == 1.0
    # the curve is the chosen temperature's Recall@N' for every N' up to k
    assert v4.curve == pytest.approx({1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0})
    assert metrics.recall_view(CROSS, 0.3, 4).curve == pytest.approx({1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5})


def test_recall_view_rejects_unknown_t_bad_n_and_mismatched_shapes():
    with pytest.raises(ValueError, match="temperature"):
        metrics.recall_view(CROSS, 0.7, 1)
    with pytest.raises(ValueError, match="outside"):
        metrics.recall_view(CROSS, 0.3, 5)
    with pytest.raises(ValueError, match="same"):
        metrics.recall_view({0.3: CROSS[0.3], 1.0: CROSS[1.0][:, :2]}, 0.3, 1)


def test_dodge_spreads_series_around_the_true_values():
    xs = [1, 2, 4]
    shifted = [plotting.dodge(xs, i, 3, width=0.06) for i in range(3)]
    assert shifted[1] == pytest.approx(xs)  # the middle series stays put
    assert all(a < b < c for a, b, c in zip(*shifted, strict=True))
    assert np.log10(shifted[2][0] / shifted[0][0]) == pytest.approx(0.06)
    assert plotting.dodge(xs, 0, 2, width=0.2, log=False) == pytest.approx([0.9, 1.9, 3.9])
    assert plotting.dodge(xs, 0, 1) == pytest.approx(xs)


def test_zoom_y_fits_the_values_within_bounds():
    fig, ax = plt.subplots()
    plotting.zoom_y(ax, [0.30, 0.45, 0.40])
    lo, hi = ax.get_ylim()
    assert 0.2 < lo < 0.30 and 0.45 < hi < 0.55
    plotting.zoom_y(ax, [0.0, 0.98])
    assert ax.get_ylim() == pytest.approx((0.0, 1.0))  # clipped to [0, 1]
    plt.close(fig)


def test_live_frontend_is_off_outside_a_jupyter_server_and_can_be_forced(monkeypatch):
    monkeypatch.delenv("LARPO_LITE_WIDGETS", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "nb.ipynb")
    assert plotting.live_frontend() is False  # no kernel here (pytest), whatever the env says
    monkeypatch.setenv("LARPO_LITE_WIDGETS", "1")
    assert plotting.live_frontend() is True
    monkeypatch.setenv("LARPO_LITE_WIDGETS", "0")
    assert plotting.live_frontend() is False


def _per_problem(correct_by_t, grid):
    return {t: metrics.per_problem_recall(c, grid) for t, c in correct_by_t.items()}


def test_crossover_halves_compare_the_two_ends_paired_in_the_papers_direction():
    pp = _per_problem(CROSS, [1, 4])
    halves = metrics.crossover_halves(pp, 0.3, 1.0, 1, 4)  # they cross: 0.3 best at N=1, 1.0 at N=4
    lo, hi, n, small = halves["small"]
    assert (lo, hi, n) == (0.3, 1.0, 1)
    assert small.diff == pytest.approx(0.5 - 0.25)  # the lower T minus the higher at N=1
    hi2, lo2, n2, large = halves["large"]
    assert (hi2, lo2, n2) == (1.0, 0.3, 4) and large.diff == pytest.approx(1.0 - 0.5)
    # no crossing: the best at N=1 and its strongest rival above it at the largest N
    three = {**CROSS, 1.2: np.zeros((2, 4), dtype=bool)}
    got = metrics.crossover_halves(_per_problem(three, [1, 4]), 0.3, 0.3, 1, 4)
    assert got["small"][:3] == (0.3, 1.0, 1)
    # the highest temperature best everywhere: its rival below it
    got = metrics.crossover_halves(_per_problem(CROSS, [1, 4]), 1.0, 1.0, 1, 4)
    assert got["small"][:3] == (0.3, 1.0, 1)
    assert metrics.crossover_halves(_per_problem({0.3: CROSS[0.3]}, [1, 4]), 0.3, 0.3, 1, 4) == {}


def test_the_crossover_in_words_needs_both_halves():
    pp = _per_problem(CROSS, [1, 4])
    sentences, verdicts = findings.crossover(metrics.crossover_halves(pp, 0.3, 1.0, 1, 4), pp, 0.3, 1.0)
    assert len(sentences) == 3 and set(verdicts) == {"small", "large"}
    assert "best temperature is 0.3 at N=1 and 1.0 at N=4" in sentences[-1]
    assert ("reproduced here." in sentences[-1]) == (verdicts["small"] == verdicts["large"] == "reproduced")
    assert findings.crossover({}, pp, 0.3, 0.3) == ([], {})


def test_bars_are_two_standard_errors_and_the_legend_sits_off_the_axes():
    fig, ax = plt.subplots()
    plotting.curves_with_bars(ax, {"a": {1: 0.2, 4: 0.5}, "b": {1: 0.1, 4: 0.3}},
                              {"a": {1: 0.05, 4: 0.1}})
    plotting.legend_outside(ax)
    (data,) = plotting.figure_data(fig)
    segments = [s for c in data["collections"] if "segments" in c for s in c["segments"]]
    spans = sorted(round(abs(s[3] - s[1]), 6) for s in segments)  # each bar: [x, y_lo, x, y_hi]
    assert spans == [0.2, 0.4]  # 2 SE on "a", no bars on "b"
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    view = metrics.recall_view(CROSS, 0.3, 1)
    plotting.draw_recall_view(axes, view, [1, 2, 4])
    (_, right) = plotting.figure_data(fig)
    bars = [s for c in right["collections"] if "segments" in c for s in c["segments"]]
    assert sorted(round(abs(s[3] - s[1]), 6) for s in bars) == sorted(
        round(4 * v.item() if hasattr(v, "item") else 4 * v, 6) for v in view.se.values())
    plt.close(fig)
