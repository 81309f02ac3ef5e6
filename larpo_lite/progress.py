"""tqdm progress bars, silenced when ``CI`` is set."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm`` with ``disable=True`` under CI (``CI`` env var set)."""
    kwargs.setdefault("disable", bool(os.environ.get("CI")))
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
