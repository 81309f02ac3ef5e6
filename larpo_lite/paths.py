"""Where things live: the repository root, data, figures, reports and the model cache."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: the first parent holding ``pyproject.toml`` and ``data/``.

    Looked up from the package (editable installs) and then from the working
    directory, so notebooks find it whether they run from ``notebooks/`` or the root.
    """
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for p in [start, *start.parents]:
            if (p / "pyproject.toml").is_file() and (p / "data").is_dir():
                return p
    raise FileNotFoundError(
        "Could not find the larpo-lite repository root (a folder with pyproject.toml and data/); "
        "run from inside a clone of the repository."
    )


def data_dir() -> Path:
    """The committed data folder, ``<repo>/data``."""
    return repo_root() / "data"


def resolve(path: str | os.PathLike[str]) -> Path:
    """A path relative to the repository root (absolute paths are kept)."""
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def cache_dir() -> Path:
    """The model cache: ``$LARPO_LITE_CACHE`` or ``~/.cache/larpo-lite``."""
    env = os.environ.get("LARPO_LITE_CACHE")
    p = Path(env) if env else Path.home() / ".cache" / "larpo-lite"
    p.mkdir(parents=True, exist_ok=True)
    return p
