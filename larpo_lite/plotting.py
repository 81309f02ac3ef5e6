"""One seaborn style for every figure; figures are saved only when a notebook finishes.

Error bars travel with the figure's data. Draw every accuracy series (greedy accuracy, pass@N /
Recall@N, a difference of accuracies) with one call that draws AND records it::

    plotting.errorbar_series(ax, x, y, two_se, label="ListMLE")                # line, markers, bars
    plotting.errorbar_series(ax, names, y, two_se, label="Recall@4", bar=True)  # bars with whiskers

``two_se``: each point's half-width, two standard errors (``2 * se``; None draws no bars and
is recorded as such). Other keyword arguments go to ``ax.errorbar`` (``ax.bar`` with
``bar=True``): ``color``, ``marker``, ``alpha``... :func:`curves_with_bars` draws through it.
:func:`savefig` writes ``<name>.data.json`` (:func:`figure_data`), where each axes holding a
recorded series has ``series``: ``[{"label", "x", "y", "two_se"}]``. :func:`missing_error_bars`
is the check (tests/test_figure_bars.py runs it on every committed figure): an axes whose x or y
label names accuracy, Recall or pass@ must hold a recorded series, each with its bars, and no
other labelled line (a horizontal or vertical reference line, ``ax.axhline``, is fine). Say in
the caption that the bars are 2 SE.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

PALETTE = "colorblind"


def set_style() -> None:
    """The project's plotting style (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def _num(values: Any) -> list:
    """Finite floats rounded to 12 significant digits (masked and non-finite values: None)."""
    arr = np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)
    return [None if not np.isfinite(v) else float(f"{v:.12g}") for v in arr.ravel()]


def figure_data(fig: Any) -> list[dict[str, Any]]:
    """What ``fig`` plots, per axes: titles and labels, each line's x and y, each collection's
    points or segments (scatter, error bars), each bar's x, width and height, each text. Two
    figures drawing the same numbers give the same data whatever the image bytes."""
    from matplotlib.collections import Collection, LineCollection
    from matplotlib.patches import Rectangle

    axes = []
    for ax in fig.axes:
        item: dict[str, Any] = {"title": ax.get_title(), "xlabel": ax.get_xlabel(),
                                "ylabel": ax.get_ylabel(), "lines": [], "collections": [],
                                "bars": [], "texts": [t.get_text() for t in ax.texts]}
        for line in ax.get_lines():
            item["lines"].append({"label": str(line.get_label()), "x": _num(line.get_xdata()),
                                  "y": _num(line.get_ydata())})
        for coll in ax.collections:
            if isinstance(coll, LineCollection):
                item["collections"].append({"segments": [_num(s) for s in coll.get_segments()]})
            elif isinstance(coll, Collection):
                item["collections"].append({"offsets": _num(coll.get_offsets())})
        for patch in ax.patches:
            if isinstance(patch, Rectangle):
                item["bars"].append(_num([patch.get_x(), patch.get_width(), patch.get_height()]))
        if getattr(ax, SERIES_ATTR, None):  # only then: other figures' data stay as they were
            item["series"] = list(getattr(ax, SERIES_ATTR))
        axes.append(item)
    return axes


SERIES_ATTR = "_larpo_lite_series"  # the series errorbar_series recorded on an axes


def _values(values: Any) -> list:
    """Numbers as :func:`_num` writes them; categories (bar names) as strings."""
    try:
        return _num(values)
    except (TypeError, ValueError):
        return [str(v) for v in values]


def errorbar_series(ax: Any, x: Sequence[Any], y: Sequence[float], two_se: Sequence[float] | None,
                    label: str | None = None, bar: bool = False, **kwargs: Any) -> Any:
    """Draw one series on ``ax`` with bars of ``two_se`` (each point's half-width: two standard
    errors) and record it for the figure's data file (:func:`figure_data`, ``series``).

    Args:
        x, y: the series' points (``len(y)`` each; ``x`` may be category names with ``bar``).
        two_se: ``len(y)`` half-widths, each >= 0 (NaN where a point has none); None: drawn
            without bars and recorded as ``two_se: null`` (:func:`missing_error_bars` names it
            on an accuracy axes).
        label: the legend label.
        bar: bars with whiskers (``ax.bar``) instead of a line with markers (``ax.errorbar``).
        kwargs: passed on to ``ax.errorbar`` / ``ax.bar``.

    Returns:
        what ``ax.errorbar`` / ``ax.bar`` returned.

    Raises:
        ValueError: ``x``, ``y`` and ``two_se`` differ in length, or a half-width is negative.
    """
    x, y = list(x), list(y)
    err = None if two_se is None else [float(e) for e in two_se]
    if len(x) != len(y) or (err is not None and len(err) != len(y)):
        raise ValueError(f"errorbar_series {label!r}: {len(x)} x, {len(y)} y and "
                         f"{'no' if err is None else len(err)} two_se values; give one per point")
    if err is not None and any(e < 0 for e in err):
        raise ValueError(f"errorbar_series {label!r}: negative half-width in two_se {err}; "
                         "pass 2 * SE, a length")
    if bar:
        kwargs.setdefault("capsize", 4)
        drawn = ax.bar(x, y, yerr=err, label=label, **kwargs)
    else:
        kwargs.setdefault("capsize", 3)
        if "fmt" not in kwargs:  # a format string names its own marker (both: a warning)
            kwargs.setdefault("marker", "o")
        drawn = ax.errorbar(x, y, yerr=err, label=label, **kwargs)
    record = {"label": "" if label is None else str(label), "x": _values(x), "y": _num(y),
              "two_se": None if err is None else _num(err)}
    if not hasattr(ax, SERIES_ATTR):
        setattr(ax, SERIES_ATTR, [])
    getattr(ax, SERIES_ATTR).append(record)
    return drawn


ACCURACY_AXIS = ("accuracy", "recall", "pass@")  # an axis label naming one is an accuracy axis


def missing_error_bars(data: list[dict[str, Any]], name: str = "figure") -> list[str]:
    """What a figure's data (:func:`figure_data`, as ``savefig`` wrote it) lacks in error bars,
    one line per problem naming ``name`` and the axes: an axes whose x or y label names
    accuracy, Recall or pass@ (:data:`ACCURACY_AXIS`) without a series recorded by
    :func:`errorbar_series`; a recorded series whose ``two_se`` is missing, or missing where it
    has a value; a labelled line there that is not a recorded series (a horizontal or vertical
    reference line is fine). Empty when every accuracy series carries its bars."""
    problems = []
    for i, ax in enumerate(data):
        labels = f"{ax.get('xlabel', '')} {ax.get('ylabel', '')}".lower()
        series = ax.get("series", [])
        if not any(word in labels for word in ACCURACY_AXIS):
            continue
        where = f"{name} axes {i + 1} ({ax.get('title', '')[:60]!r}, y: {ax.get('ylabel', '')!r})"
        if not series:
            problems.append(f"{where}: an accuracy plot without a series drawn by "
                            "plotting.errorbar_series (no error bars recorded)")
        for s in series:
            err = s.get("two_se")
            if err is None or any(e is None for e, y in zip(err, s.get("y", []), strict=False)
                                  if y is not None):
                problems.append(f"{where}: series {s.get('label')!r} has no 2-SE bars "
                                f"(two_se {err})")
        drawn = {s.get("label") for s in series}
        for line in ax.get("lines", []):
            label = line.get("label", "")
            xs = [v for v in line.get("x", []) if v is not None]
            ys = [v for v in line.get("y", []) if v is not None]
            reference = len(set(xs)) <= 1 or len(set(ys)) <= 1  # axhline, axvline
            if label and not label.startswith("_") and label not in drawn and not reference:
                problems.append(f"{where}: line {label!r} drawn without error bars "
                                "(draw it with plotting.errorbar_series)")
    return problems


def savefig(fig: Any, name: str, folder: str | Path) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (written to a temporary file of its own, then
    renamed: two processes saving the same figure each replace it whole) and
    what it plots as ``<folder>/<name>.data.json`` (:func:`figure_data`: the replay test
    compares these, not image bytes)."""
    from .reports import replace_atomically  # unique temporary names, then os.replace

    folder = Path(folder)
    path = replace_atomically(folder / f"{name}.png", lambda f: fig.savefig(f, format="png"))
    text = json.dumps(figure_data(fig), indent=1) + "\n"
    replace_atomically(folder / f"{name}.data.json", lambda f: f.write(text.encode("utf-8")))
    return path


def palette(n: int) -> list[Any]:
    """``n`` colours of the project's palette."""
    return sns.color_palette(PALETTE, n)


def n_axis(ax: Any, ns: Sequence[float] | None = None, axis: str = "x", log: bool = True) -> None:
    """Make ``axis`` of ``ax`` an N axis (list size, samples per problem): log scale when
    ``log``, major ticks at ``ns`` (every value plotted) labelled as plain numbers (1, 5, 20
    rather than matplotlib's 10^0 style), minor ticks unlabelled."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    if ns is not None:
        target.set_major_locator(FixedLocator(sorted(set(ns))))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def dodge(xs: Sequence[float], i: int, n: int, width: float = 0.08, log: bool = True) -> list[float]:
    """``xs`` shifted for series ``i`` of ``n`` drawn at the same x values, so that no line or
    error bar hides another: spread over ``width`` (in decades on a log axis, else in x
    units), centred on the true values."""
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"need 0 <= i < n, got i={i}, n={n}")
    shift = (i - (n - 1) / 2) * (width / max(n - 1, 1)) if n > 1 else 0.0
    return [x * 10 ** shift if log else x + shift for x in xs]


def zoom_y(ax: Any, values: Sequence[float], pad: float = 0.04, lo: float = 0.0,
           hi: float = 1.0) -> None:
    """Zoom the y axis to ``values`` (every plotted point, interval end and reference line),
    padded by ``pad`` of their range (at least 0.01), clipped to ``[lo, hi]``."""
    vals = [float(v) for v in values]
    if not vals:
        return
    a, b = min(vals), max(vals)
    margin = max((b - a) * pad, 0.01)
    ax.set_ylim(max(lo, a - margin), min(hi, b + margin))


def live_frontend() -> bool:
    """Whether an ipywidgets widget would reach a person: True in a kernel that a Jupyter
    server started (JupyterLab or Notebook, which set ``JPY_SESSION_NAME``) and in Colab; False
    under papermill, nbclient and plain scripts, where a notebook shows its static figure only
    (a widget there would write its state into the executed copy and show nothing). The
    environment variable ``LARPO_LITE_WIDGETS=1`` (or ``0``) forces the answer, e.g. in VS Code."""
    forced = os.environ.get("LARPO_LITE_WIDGETS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return bool(os.environ.get("JPY_SESSION_NAME")) or "google.colab" in sys.modules


MARKERS = "osD^vPX*"


def curves_with_bars(ax: Any, curves: Mapping[str, Mapping[float, float]],
                     ses: Mapping[str, Mapping[float, float]] | None = None, log: bool = True,
                     colors: Sequence[Any] | None = None) -> None:
    """Draw each ``{label: {N: value}}`` curve on ``ax`` with bars of two standard errors
    (``ses``: ``{label: {N: one SE}}``; a label without one is drawn without bars), the series
    set slightly apart (:func:`dodge`) so no bar hides another, and the N axis as
    :func:`n_axis` (every N of every curve a tick)."""
    ses = ses or {}
    for i, (label, curve) in enumerate(curves.items()):
        xs, ys = list(curve), list(curve.values())
        err = [2 * ses[label][x] for x in xs] if label in ses else None
        errorbar_series(ax, dodge(xs, i, len(curves), log=log), ys, err, label=label,
                        marker=MARKERS[i % len(MARKERS)], color=None if colors is None else colors[i])
    n_axis(ax, sorted({x for c in curves.values() for x in c}), log=log)


def legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend of ``ax`` to the right of its axes, off the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), **kwargs)


def draw_recall_view(axes: Sequence[Any], view: Any, n_grid: Sequence[int]) -> None:
    """Notebook 02's Recall@N explorer for one :class:`~larpo_lite.metrics.RecallView`: left,
    Recall@N' at ``view.t`` for every N' with ``view.n`` marked; right, every temperature's
    Recall@n with two standard errors over problems, the best in colour."""
    v = view
    axes[0].plot(list(v.curve), list(v.curve.values()), marker=".", color="0.45")
    axes[0].plot([v.n], [v.recall], marker="o", ms=11, color="C3", ls="")
    n_axis(axes[0], n_grid)
    axes[0].set(xlabel="N", ylabel="Recall@N", ylim=(0, 1.02), title=f"T={v.t}: Recall@{v.n} = {v.recall:.3f}")
    temps = list(v.at_n)
    errorbar_series(axes[1], [str(x) for x in temps], list(v.at_n.values()),
                    [2 * v.se[x] for x in temps], bar=True,
                    color=["C3" if x == v.best_t else "0.75" for x in temps])
    axes[1].set(xlabel="temperature", ylabel=f"Recall@{v.n} (bars: 2 SE)", ylim=(0, 1.02),
                title=f"best T at N={v.n}: {v.best_t}")
