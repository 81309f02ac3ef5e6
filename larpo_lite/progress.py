"""tqdm progress bars, silenced when ``CI`` is set and in notebooks run headless by
``larpo-lite notebooks`` (it sets ``LARPO_LITE_PROGRESS=0``: no widget or carriage-return
redraws in the executed copies)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, disabled under CI (``CI`` set) or with ``LARPO_LITE_PROGRESS=0``."""
    kwargs.setdefault("disable", bool(os.environ.get("CI"))
                      or os.environ.get("LARPO_LITE_PROGRESS") == "0")
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
