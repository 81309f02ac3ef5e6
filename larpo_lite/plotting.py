"""One seaborn style for every figure; figures are saved only when a notebook finishes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

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


def savefig(fig: Any, name: str, folder: str | Path) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (written to a temporary file, then renamed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    tmp = folder / f".{name}.tmp.png"
    fig.savefig(tmp)
    tmp.replace(path)
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
