"""Replay: every notebook re-executed in minutes from the default run's recorded results.

Sampling and training are what make the default run take an afternoon. A notebook wraps each
costly step in a :class:`Recorder` call that returns plain JSON data (texts, per-problem
correctness, losses, loop rows; never weights)::

    rec = replay.Recorder("03_training_stage", P)
    sft = rec("sft", lambda: train_and_evaluate(...), what="SFT training and its evaluation")

- Under a normal preset the step runs, and its result is written to
  ``<record_dir>/<notebook>/<name>.json.gz``: ``replay/`` (committed) for the default preset,
  ``runs/<preset>/record/`` for any other (``record_dir`` "" in the preset).
- Under the ``replay`` preset (``replay: true``) the step does not run: its result is read from
  ``<replay_dir>/<notebook>/<name>.json.gz`` and the cell prints that it replays. Everything
  after it (tables, paired statistics, figures, the generated paragraph) is computed as in the
  real run, so the replayed reports and figures equal the committed ones.

Both paths hand the notebook the same objects: in a real run the result is round-tripped
through JSON before it is returned (numpy arrays become lists, tuples lists, dict keys strings),
so a notebook never sees a type in one path that the other would not give it. Dict keys keep
their order.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LarpoLiteError
from .paths import repo_root

REPLAY_DIR = "replay"  # the default run's records, committed
REPLAY_MAX_BYTES = 20_000_000  # all of replay/ together
SUFFIX = ".json.gz"


class ReplayMissingError(LarpoLiteError):
    """A replayed step has no recorded result (the records predate the notebook's change)."""


def _plain(obj: Any) -> Any:
    """``obj`` with numpy arrays and scalars, tuples and sets as JSON types."""
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return obj  # json writes NaN/Infinity and reads them back
    if hasattr(obj, "tolist") and callable(obj.tolist):  # a torch tensor
        return _plain(obj.tolist())
    return obj


def encode(obj: Any) -> bytes:
    """gzip'd JSON of ``obj``, dict keys in their order (a curve keyed 1, 5, 20 comes back in that
    order, its keys as strings), no timestamp: the same data gives the same bytes."""
    text = json.dumps(_plain(obj), separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), mtime=0)


def decode(data: bytes) -> Any:
    return json.loads(gzip.decompress(data).decode("utf-8"))


def _folder(rel: str, preset: str) -> Path:
    p = Path(rel) if rel else Path("runs") / preset / "record"
    return p if p.is_absolute() else repo_root() / p


class Recorder:
    """Records (normal presets) or replays (``replay: true``) the costly steps of one notebook.

    Args:
        notebook: the notebook's stem, e.g. ``"03_training_stage"`` (the records' folder).
        params: the notebook's :class:`~larpo_lite.config.Params`; reads ``replay``,
            ``replay_dir``, ``record_dir`` and ``preset``.
    """

    def __init__(self, notebook: str, params: Any) -> None:
        self.notebook = notebook
        self.replaying = bool(params.replay)
        self.source = _folder(params.replay_dir, params.preset) / notebook
        self.target = None if self.replaying else _folder(params.record_dir, params.preset) / notebook
        if self.replaying and not self.source.is_dir():
            raise ReplayMissingError(
                f"nothing recorded for {notebook} in {self.source}: run the notebook on the "
                "recording preset first (make notebooks records the default run in replay/)")

    def path(self, name: str) -> Path:
        folder = self.source if self.replaying else self.target
        assert folder is not None
        return folder / f"{name}{SUFFIX}"

    def __call__(self, name: str, compute: Callable[[], Any], what: str = "") -> Any:
        """``compute()``'s result (JSON data), recorded under ``name``; replayed: the recorded
        result, ``compute`` not called."""
        label = what or name
        if self.replaying:
            path = self.path(name)
            if not path.is_file():
                raise ReplayMissingError(f"{path} missing: the records of {self.notebook} are "
                                         "older than the notebook; rerun it on the recording preset")
            print(f"[replay] {label}: not run; read from {path.relative_to(repo_root())}"
                  if path.is_relative_to(repo_root()) else f"[replay] {label}: read from {path}")
            return decode(path.read_bytes())
        data = encode(compute())
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # two runs never share it
        tmp.write_bytes(data)
        tmp.replace(path)
        return decode(data)


def replay_bytes(folder: str | Path | None = None) -> int:
    """Bytes of every record under ``folder`` (default: the committed ``replay/``)."""
    root = Path(folder) if folder else repo_root() / REPLAY_DIR
    return sum(p.stat().st_size for p in root.rglob(f"*{SUFFIX}")) if root.is_dir() else 0


def _diff(a: Any, b: Any, where: str, out: list[str], limit: int = 20) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'the replay' if k in b else 'the recording'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items recorded, {len(b)} replayed")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{where}[{i}]", out, limit)
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                         and math.isnan(b)):
        out.append(f"{where}: {a!r} recorded, {b!r} replayed")


def differences(notebook: str, recorded: dict[str, str | Path], replayed: dict[str, str | Path],
                limit: int = 20) -> list[str]:
    """Where a replayed notebook's outputs differ from the recorded run's: the ``metrics`` of
    its reports file and the data of each of its figures (:func:`larpo_lite.plotting.figure_data`,
    not image bytes). ``recorded``/``replayed``: ``{"reports": folder, "figures": folder}``.
    Empty when they are the same."""
    out: list[str] = []
    a = json.loads((Path(recorded["reports"]) / f"{notebook}.json").read_text())["metrics"]
    b = json.loads((Path(replayed["reports"]) / f"{notebook}.json").read_text())["metrics"]
    _diff(a, b, f"{notebook}.json metrics", out, limit)
    prefix = notebook.split("_")[0] + "_"
    figs_a = {p.name: p for p in Path(recorded["figures"]).glob(f"{prefix}*.data.json")}
    figs_b = {p.name: p for p in Path(replayed["figures"]).glob(f"{prefix}*.data.json")}
    if not figs_a:
        out.append(f"no figure data {prefix}*.data.json in {recorded['figures']}")
    for name in sorted(set(figs_a) | set(figs_b)):
        if name not in figs_a or name not in figs_b:
            out.append(f"{name}: only in the {'replay' if name in figs_b else 'recording'}")
            continue
        _diff(json.loads(figs_a[name].read_text()), json.loads(figs_b[name].read_text()), name,
              out, limit)
    return out[:limit]
