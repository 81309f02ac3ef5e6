"""Replay: every notebook re-executed in minutes from the default run's recorded results.

Sampling and training are what make the default run take an afternoon. A notebook wraps each
costly step in a :class:`Recorder` call that returns plain JSON data (texts, per-problem
correctness, losses, loop rows; never weights)::

    rec = replay.Recorder("03_training_stage", P)
    sft = rec("sft", lambda: train_and_evaluate(...), what="SFT training and its evaluation")

- Under a normal preset the step runs, and its result is written to
  ``<record_dir>/<notebook>/<name>.json.gz``: ``replay/`` (committed) for the default run,
  ``runs/<preset>/record/`` for any other (``Params.out_dir("record")``). A recording writes a
  new folder (``.<notebook>.recording`` beside the old one) and ``larpo-lite notebooks`` swaps it
  in whole when the notebook has run to its end (:func:`finish_recording`): a recording killed
  part way leaves the old records as they were, never a mix.
- Each record folder holds ``manifest.json``: the recording's parameters (those that affect
  results: every parameter but ``NON_RESULT_KEYS``) and the sha256 of each file.
- Under the ``replay`` preset (``replay: true``) the step does not run: its result is read from
  ``<replay_dir>/<notebook>/<name>.json.gz`` and the cell prints that it replays. Everything
  after it (tables, paired statistics, figures, the generated paragraph) is computed as in the
  real run, so the replayed reports and figures equal the committed ones. Replay refuses
  (:class:`ReplayRecordError`, naming the file and how to re-record) a record folder without a
  manifest, a changed, truncated, missing or unlisted file, and parameters that differ from the
  recording's in anything but where outputs go.

Both paths hand the notebook the same objects: in a real run the result is round-tripped
through JSON before it is returned (numpy arrays become lists, tuples lists, dict keys strings),
so a notebook never sees a type in one path that the other would not give it. Dict keys keep
their order.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .config import NON_RESULT_KEYS, preset_folder
from .errors import LarpoLiteError
from .paths import not_writable, repo_root, resolve_output, runs_dir

REPLAY_DIR = "replay"  # the default run's records, committed
REPLAY_MAX_BYTES = 20_000_000  # all of replay/ together
SUFFIX = ".json.gz"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class ReplayMissingError(LarpoLiteError):
    """A replayed step has no recorded result (the records predate the notebook's change)."""


class ReplayRecordError(LarpoLiteError):
    """A record folder that replay cannot trust: no manifest, a changed, truncated, missing or
    unlisted file, or parameters that differ from the recording's in what affects results."""


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


def decode(data: bytes, name: str = "record") -> Any:
    """The data of :func:`encode`'s bytes; a cut or damaged record is a
    :class:`ReplayRecordError` naming ``name``, not a bare ``EOFError``."""
    try:
        return json.loads(gzip.decompress(data).decode("utf-8"))
    except (EOFError, OSError, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise ReplayRecordError(f"{name}: not a readable record ({type(e).__name__}: {e})") from None


def _show(path: Path) -> str:
    """``path`` relative to the repository root when inside it."""
    root = repo_root()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def replay_folder(params: Any) -> Path:
    """Where replay reads the records of ``params``: ``replay_dir`` (``runs/...`` under
    ``$LARPO_LITE_RUNS`` when set); "" is ``runs/<preset>/record``."""
    rel = params.replay_dir
    return resolve_output(rel) if rel else runs_dir() / preset_folder(params.preset) / "record"


def results_preset(params: Any) -> str:
    """The preset whose results a run with ``params`` stands for: a replay's is the preset its
    records were recorded with (``recorded_preset`` of the manifests in
    :func:`replay_folder`, e.g. ``default`` for ``--preset replay``), so it reads that preset's
    validation study as the recording did; any other run's is its own ``params.preset``."""
    if not getattr(params, "replay", False):
        return str(params.preset)
    recorded = set()
    for path in sorted(replay_folder(params).glob(f"*/{MANIFEST}")):
        try:
            recorded.add(json.loads(path.read_text()).get("recorded_preset"))
        except (OSError, ValueError, AttributeError):
            continue
    recorded.discard(None)
    return str(recorded.pop()) if len(recorded) == 1 else str(params.preset)


# ---------------------------------------------------------------- manifests


def recording_params(params: Any) -> dict[str, Any]:
    """The parameters of ``params`` that affect results (all but ``NON_RESULT_KEYS``), as JSON
    values in name order."""
    values = params.to_dict()
    return json.loads(json.dumps({k: values[k] for k in sorted(values) if k not in NON_RESULT_KEYS}))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rerecord(notebook: str, preset: str) -> str:
    """How to make a notebook's records again (its recording preset's command)."""
    number = notebook[:2]
    if preset == "default":
        return (f"re-record it with `make notebooks ONLY={number}` (the default run), or restore "
                f"the committed records with `git checkout -- {REPLAY_DIR}/{notebook}`")
    return f"re-record it with `larpo-lite notebooks --preset {preset} --only {number}`"


def write_manifest(folder: str | Path, notebook: str, params: Any) -> Path:
    """Write ``<folder>/manifest.json``: the notebook, the recording preset, the recording
    parameters (:func:`recording_params`) and the sha256 of every ``*.json.gz`` in ``folder``.
    The recorder writes it after each step; the same bytes come from the same records and
    parameters."""
    folder = Path(folder)
    manifest = {"format": MANIFEST_FORMAT, "notebook": notebook, "recorded_preset": params.preset,
                "params": recording_params(params),
                "files": {p.name: _sha256(p) for p in sorted(folder.glob(f"*{SUFFIX}"))}}
    path = folder / MANIFEST
    tmp = folder / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_manifest(folder: str | Path, notebook: str) -> dict[str, Any]:
    """``<folder>/manifest.json``; a missing or unreadable one is a :class:`ReplayRecordError`."""
    path = Path(folder) / MANIFEST
    way_out = _rerecord(notebook, "default" if Path(folder).parent.name == REPLAY_DIR else "<preset>")
    if not path.is_file():
        raise ReplayRecordError(f"{_show(path)} missing: the records in {_show(Path(folder))} cannot "
                                f"be checked, so replay refuses them; {way_out}")
    try:
        manifest = json.loads(path.read_text())
        if not (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
                and isinstance(manifest.get("params"), dict)):
            raise ValueError("no files or params")
    except (OSError, ValueError) as e:
        raise ReplayRecordError(f"{_show(path)}: not a readable manifest ({e}); {way_out}") from None
    return manifest


def check_records(folder: str | Path, notebook: str, params: Any) -> dict[str, Any]:
    """The manifest of a record folder, after checking that replay may use it with ``params``:
    every listed file present with its sha256, no record file left out of the list, and the
    recording parameters equal to ``params``' in everything that affects results.

    Raises:
        ReplayRecordError: naming the file or the parameters, and how to re-record.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, notebook)
    way_out = _rerecord(notebook, str(manifest.get("recorded_preset", "default")))
    ours = recording_params(params)
    theirs = manifest["params"]
    changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if changed:
        show = "; ".join(f"{k}: recorded {theirs.get(k)!r}, this run {ours.get(k)!r}" for k in changed)
        raise ReplayRecordError(
            f"{_show(folder)} was recorded with other parameters ({show}): a replay may change "
            f"only {', '.join(NON_RESULT_KEYS)}. Replay with the recording's values, or run "
            f"notebook {notebook[:2]} without replay to compute these")
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ReplayRecordError(f"{_show(path)} missing (listed in {MANIFEST}); {way_out}")
        if _sha256(path) != digest:
            raise ReplayRecordError(f"{_show(path)} changed since it was recorded (its sha256 is not "
                                    f"the one in {MANIFEST}: edited or cut); {way_out}")
    extra = sorted(p.name for p in folder.glob(f"*{SUFFIX}") if p.name not in manifest["files"])
    if extra:
        raise ReplayRecordError(f"{_show(folder)}: {', '.join(extra)} not in {MANIFEST} (added after "
                                f"the recording); {way_out}")
    return manifest


# ---------------------------------------------------------------- recording folders


RECORDING_ENV = "LARPO_LITE_RECORDING"  # names one recording: run_notebooks sets it per notebook


def recording_token() -> str:
    """This recording's name: ``$LARPO_LITE_RECORDING`` (set by ``larpo-lite notebooks`` for
    each notebook it runs, so it can swap that recording in) or, by hand, this process's id."""
    return os.environ.get(RECORDING_ENV) or str(os.getpid())


def staging_folder(final: str | Path, token: str | None = None) -> Path:
    """Where a recording of ``final`` (``<record root>/<notebook>``) is written until it is
    swapped in: ``.<notebook>.recording-<token>`` beside it (:func:`recording_token`), so two
    runs recording the same notebook at once never share one."""
    final = Path(final)
    return final.with_name(f".{final.name}.recording-{token or recording_token()}")


def finish_recording(final: str | Path, token: str | None = None) -> bool:
    """Swap a finished recording (:func:`staging_folder`) in for ``final`` whole: the old
    folder moves aside, the new one takes its name, the old one is removed. False (and nothing
    changed) when there is no recording of ``final``."""
    final = Path(final)
    token = token or recording_token()
    stage = staging_folder(final, token)
    if not (stage / MANIFEST).is_file():
        return False
    old = final.with_name(f".{final.name}.old-{token}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    stage.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return True


class Recorder:
    """Records (normal presets) or replays (``replay: true``) the costly steps of one notebook.

    Args:
        notebook: the notebook's stem, e.g. ``"03_training_stage"`` (the records' folder).
        params: the notebook's :class:`~larpo_lite.config.Params`; reads ``replay``,
            ``replay_dir``, ``record_dir``, ``preset`` and, for the manifest and its check, the
            parameters that affect results.

    Raises:
        ReplayMissingError: replaying, and nothing is recorded for ``notebook``.
        ReplayRecordError: replaying records that fail :func:`check_records`.
    """

    def __init__(self, notebook: str, params: Any) -> None:
        self.notebook = notebook
        self.params = params
        self.replaying = bool(params.replay)
        self.source = replay_folder(params) / notebook
        self.target: Path | None = None
        self.manifest: dict[str, Any] = {}
        if self.replaying:
            if not self.source.is_dir():
                raise ReplayMissingError(
                    f"nothing recorded for {notebook} in {self.source}: run the notebook on the "
                    "recording preset first (make notebooks records the default run in replay/)")
            self.manifest = check_records(self.source, notebook, params)
            return
        self.target = params.out_dir("record") / notebook
        self.token = recording_token()
        self.stage = staging_folder(self.target, self.token)
        try:
            shutil.rmtree(self.stage, ignore_errors=True)  # a recording killed before
            self.stage.mkdir(parents=True)
            write_manifest(self.stage, notebook, params)
        except OSError as e:
            raise not_writable(self.stage, e) from None

    def path(self, name: str) -> Path:
        """Where step ``name`` is read (replaying) or written (recording: the new folder)."""
        return (self.source if self.replaying else self.stage) / f"{name}{SUFFIX}"

    def finish(self) -> bool:
        """Swap this recording in for the notebook's record folder (``larpo-lite notebooks``
        does it when the notebook has run to its end; a notebook run by hand may call it)."""
        return False if self.target is None else finish_recording(self.target, self.token)

    def __call__(self, name: str, compute: Callable[[], Any], what: str = "") -> Any:
        """``compute()``'s result (JSON data), recorded under ``name``; replayed: the recorded
        result, ``compute`` not called."""
        label = what or name
        if self.replaying:
            path = self.path(name)
            listed = self.manifest["files"].get(path.name)
            if listed is None:
                raise ReplayMissingError(f"{path} missing: the records of {self.notebook} are "
                                         "older than the notebook; rerun it on the recording "
                                         f"preset ({_rerecord(self.notebook, str(self.manifest.get('recorded_preset')))})")
            print(f"[replay] {label}: not run; read from {_show(path)}")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != listed:
                raise ReplayRecordError(f"{_show(path)} changed since it was checked (its sha256 is "
                                        f"not the one in {MANIFEST}); "
                                        f"{_rerecord(self.notebook, str(self.manifest.get('recorded_preset')))}")
            return decode(data, _show(path))
        data = encode(compute())
        path = self.path(name)
        try:
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)
            write_manifest(self.stage, self.notebook, self.params)
        except OSError as e:
            raise not_writable(path.parent, e) from None
        return decode(data, str(path))


    def recorded(self, name: str | Callable[..., str], what: str | Callable[..., str] = ""
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A decorator: every call of the function is a recorded step (see ``__call__``), so a
        notebook's cell reads ``runs = run_objectives(configs)`` and the recording stays out of
        sight. ``name`` (and ``what``) may be a string or a function of the call's arguments,
        one record per distinct name::

            @rec.recorded(lambda cfg: f"run_{cfg.objective}_s{cfg.seed}")
            def run(cfg):
                return loop.run_shared(cfg, P.preset)
        """
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def step(*args: Any, **kwargs: Any) -> Any:
                key = name(*args, **kwargs) if callable(name) else name
                label = what(*args, **kwargs) if callable(what) else what
                return self(key, lambda: fn(*args, **kwargs), what=label)
            return step
        return wrap


def replay_bytes(folder: str | Path | None = None) -> int:
    """Bytes of every record under ``folder`` (default: the committed ``replay/``)."""
    root = Path(folder) if folder else repo_root() / REPLAY_DIR
    if not root.is_dir():
        return 0
    return sum(p.stat().st_size for p in root.rglob(f"*{SUFFIX}")
               if not any(part.startswith(".") for part in p.relative_to(root).parts))


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
