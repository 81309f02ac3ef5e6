"""plotting.n_axis: N axes read as plain numbers."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from larpo_lite import plotting  # noqa: E402


@pytest.mark.parametrize("axis", ["x", "y"])
def test_n_axis_labels_plain_numbers_on_a_log_scale(axis):
    fig, ax = plt.subplots()
    ns = [1, 2, 5, 20]
    values = [0.1, 0.3, 0.6, 0.9]
    ax.plot(ns, values) if axis == "x" else ax.plot(values, ns)
    plotting.n_axis(ax, ns + [5], axis=axis)
    fig.canvas.draw()
    target = ax.xaxis if axis == "x" else ax.yaxis
    assert target.get_scale() == "log"
    assert list(target.get_majorticklocs()) == ns
    labels = [t.get_text() for t in target.get_ticklabels()]
    assert labels == ["1", "2", "5", "20"]                     # not $\\mathdefault{10^{0}}$
    assert all(t.get_text() == "" for t in target.get_ticklabels(minor=True))
    plt.close(fig)


def test_n_axis_rejects_an_unknown_axis():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="axis"):
        plotting.n_axis(ax, [1, 2], axis="z")
    plt.close(fig)
