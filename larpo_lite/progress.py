"""tqdm progress bars, silenced when ``CI`` is set and in notebooks run headless by
``larpo-lite notebooks`` (it sets ``LARPO_LITE_PROGRESS=0``: no widget or carriage-return
redraws in the executed copies), and the notices of :func:`waiting` with them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, disabled under CI (``CI`` set) or with ``LARPO_LITE_PROGRESS=0``."""
    kwargs.setdefault("disable", bars_off())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def bars_off() -> bool:
    """Progress bars are off when ``CI`` is set, and in notebooks run headless."""
    return bool(os.environ.get("CI")) or headless()


def headless() -> bool:
    """True in a notebook that ``larpo-lite notebooks`` runs (``LARPO_LITE_PROGRESS=0``)."""
    return os.environ.get("LARPO_LITE_PROGRESS") == "0"


def waiting(message: str) -> None:
    """Say on stderr why this process waits (another one holds a lock it needs), except in
    notebooks run headless: there the waits are those of notebooks run side by side, which
    the executed copies would keep as stderr output (``tests/test_clean_outputs.py``)."""
    if not headless():
        print(f"[larpo-lite] {message}", file=sys.stderr, flush=True)
