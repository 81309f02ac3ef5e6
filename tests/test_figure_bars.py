"""Every accuracy figure carries its error bars into its data file: ``plotting.errorbar_series``
draws a series and records its 2-SE half-widths, ``savefig`` writes them beside the PNG, and
``plotting.missing_error_bars`` names an accuracy plot whose data file lacks them."""

import json

import matplotlib.pyplot as plt
import pytest

from larpo_lite import plotting
from larpo_lite.paths import repo_root

COMMITTED = sorted((repo_root() / "figures").glob("*.data.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_accuracy_figure_carries_its_error_bars(path):
    """Fails on figures drawn before errorbar_series, until the next default run."""
    problems = plotting.missing_error_bars(json.loads(path.read_text()), path.name)
    assert problems == [], "\n".join(problems)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _saved(fig, tmp_path, name="fig"):
    plotting.savefig(fig, name, tmp_path)
    return json.loads((tmp_path / f"{name}.data.json").read_text())


def test_errorbar_series_draws_and_records_its_bars(tmp_path):
    fig, (ax, bx) = plt.subplots(1, 2)
    plotting.errorbar_series(ax, [1, 4, 16], [0.1, 0.3, 0.5], [0.02, 0.04, float("nan")], label="ListMLE")
    ax.axhline(0.1, color="gray", label="initial policy")  # a reference line needs no bars
    ax.set(xlabel="N", ylabel="pass@N")
    plotting.errorbar_series(bx, ["T=0.3", "T=0.7"], [0.2, 0.25], [0.05, 0.06], label="Recall@4", bar=True)
    bx.set(ylabel="Recall@4")
    data = _saved(fig, tmp_path)
    (line,) = data[0]["series"]
    assert line["label"] == "ListMLE" and line["x"] == [1, 4, 16] and line["y"] == [0.1, 0.3, 0.5]
    assert line["two_se"][:2] == [0.02, 0.04] and line["two_se"][2] is None  # NaN: no value
    assert data[1]["series"][0]["x"] == ["T=0.3", "T=0.7"]
    # what is drawn holds the same bars: the error-bar segments span y -+ two_se
    (segments,) = [c["segments"] for c in data[0]["collections"] if "segments" in c]
    assert [round(s[3] - s[1], 9) for s in segments[:2]] == [0.04, 0.08]
    assert len(data[1]["bars"]) == 2 and any("segments" in c for c in data[1]["collections"])
    # NaN half-width where y has a value: not carried
    assert plotting.missing_error_bars(data, "fig") == [
        "fig axes 1 ('', y: 'pass@N'): series 'ListMLE' has no 2-SE bars (two_se [0.02, 0.04, None])"]


def test_an_accuracy_plot_without_recorded_bars_is_named(tmp_path):
    fig, axes = plt.subplots(1, 4)
    axes[0].plot([1, 2, 4], [0.1, 0.2, 0.3], marker="o", label="iterative DPO")  # plain line
    axes[0].set(xlabel="N", ylabel="Recall@N", title="LARPO over DPO")
    axes[1].errorbar([1, 2], [0.3, 0.4], yerr=[0.01, 0.01], label="SFT")  # bars, not recorded as 2 SE
    axes[1].set(ylabel="test greedy accuracy")
    plotting.errorbar_series(axes[2], [1, 2], [0.3, 0.4], None, label="DPO")  # no bars on purpose
    axes[2].set(xlabel="validation greedy accuracy")
    axes[3].plot([0, 1, 2], [2.0, 1.5, 1.2], label="loss")  # not an accuracy axis
    axes[3].set(ylabel="loss")
    problems = plotting.missing_error_bars(_saved(fig, tmp_path), "03_demo.data.json")
    assert [p.split(":")[0] for p in problems] == [
        "03_demo.data.json axes 1 ('LARPO over DPO', y", "03_demo.data.json axes 1 ('LARPO over DPO', y",
        "03_demo.data.json axes 2 ('', y", "03_demo.data.json axes 3 ('', y"]
    assert "an accuracy plot without a series" in problems[0]
    assert "line 'iterative DPO' drawn without error bars" in problems[1]
    assert "an accuracy plot without a series" in problems[2]  # bars drawn but not said to be 2 SE
    assert "series 'DPO' has no 2-SE bars" in problems[3]  # axes 4, a loss, is no accuracy plot


def test_every_problem_kind_is_caught_once():
    data = [{"title": "a", "xlabel": "N", "ylabel": "pass@N", "lines": [], "series": []},
            {"title": "b", "xlabel": "", "ylabel": "greedy accuracy", "lines": [],
             "series": [{"label": "DPO", "x": [1], "y": [0.3], "two_se": None}]},
            {"title": "c", "xlabel": "", "ylabel": "greedy accuracy",
             "lines": [{"label": "SFT", "x": [0, 1, 2], "y": [0.2, 0.3, 0.25]},
                       {"label": "initial", "x": [0, 1], "y": [0.2, 0.2]}],
             "series": [{"label": "DPO", "x": [1], "y": [0.3], "two_se": [0.05]}]},
            {"title": "d", "xlabel": "step", "ylabel": "loss", "lines": [{"label": "x", "x": [0, 1], "y": [1, 2]}]}]
    problems = plotting.missing_error_bars(data, "f")
    assert [p.split(":")[0] for p in problems] == ["f axes 1 ('a', y", "f axes 2 ('b', y", "f axes 3 ('c', y"]
    assert "without a series" in problems[0] and "'DPO' has no 2-SE bars" in problems[1]
    assert "line 'SFT'" in problems[2]


def test_curves_with_bars_records_two_standard_errors(tmp_path):
    fig, ax = plt.subplots()
    plotting.curves_with_bars(ax, {"a": {1: 0.2, 4: 0.5}}, {"a": {1: 0.01, 4: 0.02}})
    ax.set(ylabel="Recall@N")
    (series,) = _saved(fig, tmp_path)[0]["series"]
    assert series["two_se"] == [0.02, 0.04] and series["y"] == [0.2, 0.5]


def test_a_figure_without_recorded_series_keeps_its_data_as_before(tmp_path):
    """Figures that do not use errorbar_series write the same data file as before it."""
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4], label="x")
    assert "series" not in _saved(fig, tmp_path)[0]


def test_bad_bars_are_refused():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="'a': 2 x, 2 y and 1 two_se"):
        plotting.errorbar_series(ax, [1, 2], [0.1, 0.2], [0.1], label="a")
    with pytest.raises(ValueError, match="negative half-width"):
        plotting.errorbar_series(ax, [1, 2], [0.1, 0.2], [0.1, -0.1], label="a")


def test_a_format_string_draws_without_a_warning(tmp_path):
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from larpo_lite import plotting

    fig, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when fmt and marker both name one
        plotting.errorbar_series(ax, [0], [0.5], [0.1], fmt="o", label="a")
        plotting.errorbar_series(ax, [1], [0.4], [0.1], label="b")
    plt.close(fig)
