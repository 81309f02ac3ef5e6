"""One seaborn style for every figure; figures are saved only when a notebook finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

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
