"""Where things live: the repository root, data, figures, reports, run folders and the model cache.

Run folders (``runs/``: every non-default run's outputs, loop and tuning runs, the candidate
cache) live in the repository unless ``$LARPO_LITE_RUNS`` names another folder: a course folder
can be read-only, and replaying or running any other preset then writes nothing into it."""

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


RUNS_ENV = "LARPO_LITE_RUNS"  # where runs/ lives instead of the repository


class NotWritableError(OSError):
    """An output folder that cannot be written (a read-only course folder); the message names
    ``LARPO_LITE_RUNS``, the way out."""


def runs_dir() -> Path:
    """``$LARPO_LITE_RUNS`` if set, else ``<repo>/runs`` (git-ignored); not created here."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser().absolute() if env else repo_root() / "runs"


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """An output path: ``runs/...`` under :func:`runs_dir`, any other relative path under the
    repository root, an absolute path as it is."""
    p = Path(path)
    if p.is_absolute():
        return p
    if p.parts and p.parts[0] == "runs":
        return runs_dir().joinpath(*p.parts[1:])
    return repo_root() / p


def not_writable(path: str | os.PathLike[str], err: OSError) -> NotWritableError:
    """The error for an output folder that cannot be written, naming the way out."""
    why = err.strerror or str(err)
    if RUNS_ENV in os.environ and Path(path).absolute().is_relative_to(runs_dir()):
        hint = f"{RUNS_ENV}={os.environ[RUNS_ENV]} is not writable either: point it at a writable folder"
    else:
        hint = (f"a read-only checkout (a course folder) needs {RUNS_ENV} set to a writable "
                "folder: every run but the default one (replay included) then writes its runs/, "
                "figures, reports, records and executed copies there; the default run writes the "
                "committed results, so it needs a writable clone")
    return NotWritableError(f"cannot write to {path} ({why}); {hint}")


# The committed results (figures, metrics, replay records, executed copies, the guide): written
# only by the default run (config.Params.is_default_run).
COMMITTED_DIRS = ("figures", "reports", "replay", "executed", "docs")


def is_committed(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (resolved as :func:`resolve_output` does) is, or is inside, one of the
    committed folders of the repository (``COMMITTED_DIRS``)."""
    p = resolve_output(path).resolve()
    root = repo_root().resolve()
    return any(p.is_relative_to(root / d) for d in COMMITTED_DIRS)


def writable_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` created if needed and checked writable (a file made and removed in it).

    Raises:
        NotWritableError: it cannot be created or written; the message names ``LARPO_LITE_RUNS``.
    """
    import tempfile

    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p, prefix=".write-check-"):
            pass
    except OSError as e:
        raise not_writable(p, e) from None
    return p


def cache_dir() -> Path:
    """The model cache: ``$LARPO_LITE_CACHE`` or ``~/.cache/larpo-lite``."""
    env = os.environ.get("LARPO_LITE_CACHE")
    p = Path(env) if env else Path.home() / ".cache" / "larpo-lite"
    p.mkdir(parents=True, exist_ok=True)
    return p
