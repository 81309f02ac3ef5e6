"""Running the numbered notebooks headless with papermill, one preset at a time, and the
committed executed copies of the default run (``executed/``): written by the default run,
kept under 2 MB each, and checked against their sources by the tests.

Only the default run (:func:`is_default_run`: this repository's ``params/default.yaml``, nothing
changed) writes the committed results; every other run writes under ``runs/<preset>/`` (or
``$LARPO_LITE_RUNS/<preset>/``), replay included, and changes no tracked file."""

from __future__ import annotations

import ast
import base64
import copy
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import (
    DEFAULT_PRESET,
    PRESET_FILE_ENV,
    Params,
    load_preset_values,
    params_dir,
    preset_folder,
    preset_path,
)
from .errors import LarpoLiteError
from .jsonl import read_jsonl
from .paths import repo_root, runs_dir, writable_dir


def notebook_paths(only: Sequence[str] | None = None, folder: str | Path = "notebooks") -> list[Path]:
    """``<folder>/NN_*.ipynb`` in order (``folder`` relative to the repository root, e.g.
    ``notebooks/solutions``); ``only`` selects by number prefix ("01", "2")."""
    nbs = sorted((repo_root() / folder).glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return nbs
    wanted = {s.strip().zfill(2) for s in only if s.strip()}
    have = {p.name[:2] for p in nbs}
    missing = sorted(wanted - have)
    if missing:
        raise ValueError(f"no notebook numbered {missing}; have {sorted(have)}")
    return [p for p in nbs if p.name[:2] in wanted]


# Set for the notebook kernels, so that no progress bar reaches an executed copy:
# LARPO_LITE_PROGRESS=0 turns off the package's own bars (larpo_lite.progress, retrieval.encode);
# TQDM_DISABLE=1 every other tqdm bar left at its default (tqdm reads TQDM_<argument> as the
# argument's default); HF_HUB_DISABLE_PROGRESS_BARS=1 huggingface_hub's and transformers' bars
# (transformers' "Loading weights" bar, sentence-transformers' model load);
# PYDEVD_DISABLE_FILE_VALIDATION=1 the debugger's frozen-modules notice on the kernel's stderr.
# Warnings are not silenced here: one that reaches an output is named when the executed copy is
# written and fails tests/test_clean_outputs.py (silence a harmless one where it is raised).
HEADLESS_ENV = {"LARPO_LITE_PROGRESS": "0", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"}

# Notebooks that read another's cached results or continue its runs (06 and 07 take round 1 of
# the loop runs 04 starts); run side by side, they wait for it.
DEPENDS_ON: dict[str, tuple[str, ...]] = {"02": ("01",), "06": ("04",), "07": ("04",)}


def schedule(numbers: Sequence[str], finished: set[str], running: set[str],
             seconds: dict[str, float] | None = None) -> str | None:
    """The next notebook a free worker should start: among those not started whose
    dependencies (``DEPENDS_ON``, among those selected) have finished, the one whose chain
    (itself and the notebooks that wait for it) took longest in the last recorded run
    (``seconds`` per number, e.g. from ``reports/timing.json``), so the longest work starts
    first; without timings, the first in order. None if none is ready."""
    seconds = seconds or {}

    def chain(n: str) -> float:
        after = [m for m in numbers if n in DEPENDS_ON.get(m, ())]
        return seconds.get(n, 0.0) + max((chain(m) for m in after), default=0.0)

    ready = [n for n in numbers if n not in finished and n not in running
             and all(d in finished or d not in numbers for d in DEPENDS_ON.get(n, ()))]
    return max(ready, key=lambda n: (chain(n), -numbers.index(n))) if ready else None


PLAN = "benchmarks/results/default_run_plan.json"  # benchmarks/default_run_plan.py writes it


def recorded_seconds(root: Path | None = None) -> dict[str, float]:
    """Each notebook's expected wall time by number: its last default-run time
    (``reports/timing.json``), or, where the default run's plan (:data:`PLAN`, made from
    measured unit costs before the run it plans) is newer than that measurement, the plan's."""
    import json

    root = root or repo_root()

    def read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    entries = read(root / "reports" / "timing.json").get("notebooks", {})
    out = {name[:2]: (str(e.get("date", "")), float(e["seconds"]))
           for name, e in entries.items() if "seconds" in e}
    plan = read(root / PLAN)
    planned_on = str(plan.get("measured", ""))[:10]
    for n, sec in (plan.get("notebooks") or {}).items():
        if n not in out or out[n][0] < planned_on:
            out[n] = (planned_on, float(sec))
    return {n: sec for n, (_, sec) in out.items()}


def reused_work_note(since: float, root: Path | None = None) -> str:
    """:func:`reused_work` in one sentence; "" when there was none, so the run's wall time is
    that of a run from scratch."""
    earlier = reused_work(since, root)
    if not earlier:
        return ""
    return (f"{len(earlier)} trained round(s) loaded from run folders made before this run, not "
            "trained in it (" + "; ".join(earlier) + ")")


def reused_work(since: float, root: Path | None = None) -> list[str]:
    """What a default run found already trained: loop rounds under ``root`` (default
    ``runs/default``) whose training was loaded (``train_reused_from`` in a run's
    ``results.jsonl``) from a run folder that existed before ``since`` (a ``time.time()``): the
    validation study's, or an earlier run's, one line each. Rounds shared within the run are
    not counted."""
    root = root or runs_dir() / DEFAULT_PRESET
    earlier = []
    for results in sorted(root.glob("loop/*/results.jsonl")):
        try:
            rows = read_jsonl(results)
        except (OSError, ValueError):  # a damaged run is named when it is resumed, not here
            continue
        for row in rows:
            source = row.get("train_reused_from")
            if not source:
                continue
            folder = root / source.split(" round ")[0]
            made = (folder / "config.json").stat().st_mtime if (folder / "config.json").exists() else 0.0
            if made < since:
                earlier.append(f"{results.parent.name} round {row.get('iteration')} from {source}")
    return earlier


SEGMENTS_FILE = ".suite_segments.json"  # in runs/default: the whole default run's segments
_HEARTBEAT_SECONDS = 30.0


class SuiteClock:
    """The wall time of a whole default run that may be cut and started again: each start is
    a segment, its elapsed time written to ``<runs>/default/.suite_segments.json`` every
    ``_HEARTBEAT_SECONDS`` (so a killed segment counts up to its last heartbeat); a run that
    finds unfinished segments there is ``resumed`` and counts their sum. The file goes when
    the run ends."""

    def __init__(self, root: Path | None = None) -> None:
        import threading

        self.path = (root or runs_dir() / DEFAULT_PRESET) / SEGMENTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            record = json.loads(self.path.read_text())
            earlier = record.get("segments", [])
        except (OSError, ValueError, AttributeError):
            record, earlier = {}, []
        self.segments = [float(x) for x in earlier if isinstance(x, (int, float))]
        self.resumed = bool(self.segments)
        # when the whole run began: its first segment's start (work done in an earlier segment
        # is this run's own, not reused: reused_work)
        first = record.get("started") if self.resumed else None
        self.started = float(first) if isinstance(first, (int, float)) else time.time()
        self._t0 = time.perf_counter()
        self.segments.append(0.0)
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        self.segments[-1] = round(time.perf_counter() - self._t0, 1)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"segments": self.segments, "started": self.started}))
        os.replace(tmp, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(_HEARTBEAT_SECONDS):
            self._write()

    def stop(self, finished: bool) -> dict[str, Any]:
        """End this segment: ``{"seconds", "resumed", "segments"}``; ``finished`` removes the
        file (a later run starts afresh), else it keeps this segment for the next start."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()
        if finished:
            self.path.unlink(missing_ok=True)
        return {"seconds": round(sum(self.segments), 1), "resumed": self.resumed,
                "segments": list(self.segments)}


CHILD_ENV = "LARPO_LITE_JOBS_CHILD"  # set in the processes that _run_parallel starts
# set in them too when the default run executes only some notebooks again (``ONLY=``): their
# seconds go to ``reexecuted`` in reports/timing.json, the whole run's per-notebook seconds stay
PARTIAL_ENV = "LARPO_LITE_PARTIAL_RUN"


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every live process below it (its children, theirs...), found by parent pid
    (psutil, else /proc): a Jupyter kernel starts in a session of its own, so the process
    group of the notebook process that started it does not hold it. [] if ``pid`` is gone."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel
        psutil = None
    if psutil is not None:
        try:
            return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    parent_of = {}
    for d in Path("/proc").iterdir():
        try:
            parent_of[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, IndexError, OSError):
            continue
    if pid not in parent_of:
        return []
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, parent in parent_of.items() if parent == p]
    return tree


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, finished but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc (macOS)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def end_processes(children: Sequence[subprocess.Popen], grace: float = 5.0) -> list[int]:
    """End ``children`` (each started in a process group of its own) and every process below
    them: SIGTERM to each child's group and to each of their descendants (Jupyter kernels
    included), SIGKILL to whatever still runs ``grace`` seconds later; the children are reaped.
    Returns the pids signalled."""
    import signal

    pids = sorted({p for proc in children if proc.poll() is None for p in _process_tree(proc.pid)})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid in pids:
            if _alive(pid):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            for proc in children:
                proc.poll()  # reaps a child that ended
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            break
    for proc in children:
        proc.wait()
    return pids


def _die_with_parent() -> Any:
    """For ``Popen(preexec_fn=...)`` on Linux: the child gets SIGTERM when this process dies,
    even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing is imported after fork
    parent = os.getpid()

    def set_it() -> None:
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl ran
            os.kill(os.getpid(), signal.SIGTERM)

    return set_it


def _run_parallel(preset: str, nbs: list[Path], out: Path, jobs: int, log_output: bool,
                  partial: bool = False) -> list[Path]:
    """Each notebook in its own ``larpo-lite notebooks --only NN`` process, ``jobs`` at a time,
    each with ``cores // jobs`` threads (unless OMP_NUM_THREADS is set). On two cores two
    one-thread notebooks side by side do ~1.4x the work of one two-thread notebook.

    The children end with this process: each runs in a process group of its own, and SIGTERM,
    SIGINT or SIGHUP here (or any error) ends them and their kernels (:func:`end_processes`)
    before this process exits (status 128 + the signal; SIGINT raises KeyboardInterrupt); on
    Linux a child also gets SIGTERM if this process is killed outright (SIGKILL)."""
    import signal

    numbers = [p.name[:2] for p in nbs]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env[CHILD_ENV] = "1"
    env[PARTIAL_ENV] = "1" if partial else ""
    timings = recorded_seconds()  # the longest chain of notebooks starts first
    running: dict[str, subprocess.Popen] = {}
    finished: set[str] = set()
    failed: list[str] = []
    stop: list[int] = []  # the signal received, if any (the handler only records it)
    handlers = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                handlers[sig] = signal.signal(sig, lambda signum, _frame: stop.append(signum))
            except ValueError:  # not the main thread: the caller handles signals
                break
        preexec = _die_with_parent()
        while not stop and len(finished) + len(failed) < len(numbers):
            while not failed and not stop and len(running) < jobs:
                nxt = schedule(numbers, finished, set(running), timings)
                if nxt is None:
                    break
                cmd = [sys.executable, "-m", "larpo_lite.cli", "notebooks", "--preset", preset,
                       "--only", nxt, "--out-dir", str(out)] + (["--log-output"] if log_output else [])
                running[nxt] = subprocess.Popen(cmd, env=env, process_group=0, preexec_fn=preexec)
            if not running:
                break
            time.sleep(0.2)
            for n, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[n]
                    if proc.returncode == 0:
                        finished.add(n)
                    else:
                        failed.append(n)
    finally:
        if running:  # a signal or an error here: the children and their kernels go too
            if stop:
                print(f"[larpo-lite] {signal.Signals(stop[0]).name}: ending notebook(s) "
                      f"{sorted(running)}", file=sys.stderr, flush=True)
            end_processes(list(running.values()))
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop:
        if stop[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + stop[0])
    if failed:
        raise LarpoLiteError(f"notebook(s) {failed} failed (preset {preset}); see the output above "
                           f"and the executed copies in {out}")
    return [out / p.name for p in nbs]


# ---------------------------------------------------------------- executed copies

EXECUTED_DIR = "executed"  # the default run's executed notebooks, committed (repo root)
SOLUTIONS_FOLDER = "notebooks/solutions"  # the exercise solutions, NN_*_solutions.ipynb
SOLUTIONS_EXECUTED_DIR = "executed/solutions"  # the default run's executed solutions, committed
EXECUTED_MAX_BYTES = 2_000_000  # each executed copy at most 2 MB
EXECUTED_PRESET = "default"
INJECTED_TAG = "injected-parameters"  # papermill's cell holding the values it passed
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STREAM_MAX_CHARS = 20_000  # a longer stream output keeps its head and tail when shrinking
PNG_SCALES = (0.75, 0.5, 0.35, 0.25)  # tried in turn on every embedded PNG, from the original


def is_default_run(preset: str, folder: str | Path = "notebooks", overrides: dict | None = None) -> bool:
    """Whether ``run_notebooks(preset, folder=folder, overrides=overrides)`` is the default run,
    the one that writes the committed results: the notebooks of ``notebooks/`` on this
    repository's ``params/default.yaml`` (not a file of that name elsewhere), with parameters
    equal to that file's (:meth:`Params.is_default_run`; overrides that change a value, or a
    preset ``based_on: default``, are other runs)."""
    if Path(folder) != Path("notebooks"):
        return False
    path = preset_path(preset)
    if path.resolve() != (params_dir() / f"{DEFAULT_PRESET}.yaml").resolve():
        return False
    values = load_preset_values(preset)
    values.update(overrides or {})
    return Params.from_mapping(values, source=str(path)).is_default_run()


def committed_copies_dir(folder: str | Path = "notebooks") -> Path | None:
    """Where the default run's executed copies of ``folder`` are committed: ``executed/`` for
    ``notebooks``, ``executed/solutions/`` for ``notebooks/solutions``; None for any other."""
    return {Path("notebooks"): repo_root() / EXECUTED_DIR,
            Path(SOLUTIONS_FOLDER): repo_root() / SOLUTIONS_EXECUTED_DIR}.get(Path(folder))


def executed_dir_for(preset: str, folder: str | Path = "notebooks", overrides: dict | None = None,
                     executed_dir: str | Path | None = None) -> Path | None:
    """Where ``run_notebooks`` writes executed copies, or None: ``executed_dir`` if given,
    else, on the default preset unchanged (:func:`is_default_run`), ``executed/`` for
    ``notebooks`` and ``executed/solutions/`` for ``notebooks/solutions`` (the solutions the
    default run executes at its end), else nowhere (the executed notebooks stay under
    ``runs/<preset>/``). Any other run aimed at either folder is refused."""
    own = committed_copies_dir(folder)
    default_values = own is not None and is_default_run(preset, "notebooks", overrides)
    if executed_dir is None:
        return own if default_values else None
    target = Path(executed_dir)
    for committed in (committed_copies_dir("notebooks"), committed_copies_dir(SOLUTIONS_FOLDER)):
        if target.resolve() == committed.resolve() and not (
                default_values and own is not None and own.resolve() == committed.resolve()):
            raise ValueError(f"{committed.relative_to(repo_root())}/ holds the default run's copies "
                             f"of its own folder only (preset {preset!r}, folder {str(folder)!r}, "
                             f"overrides {sorted(overrides or {})})")
    return target


def _notebook_text(nb: Any) -> str:
    import nbformat

    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _notebook_bytes(nb: Any) -> int:
    return len(_notebook_text(nb).encode("utf-8"))


def _code_outputs(nb: Any):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                yield i, cell, out


def _drop_widgets(nb: Any) -> bool:
    """Widget state and widget views go; the static representations beside them (the figure
    a widget falls back to, its text) stay."""
    changed = nb.metadata.pop("widgets", None) is not None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data is not None and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                changed = True
                if not data:
                    continue
            kept.append(out)
        cell.outputs = kept
    return changed


def _as_terminal_shows(text: str) -> str:
    """Each line as a terminal leaves it after carriage returns (progress-bar redraws)."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def _trim_streams(nb: Any, max_chars: int = STREAM_MAX_CHARS) -> bool:
    """Carriage-return redraws collapsed; a stream output longer than ``max_chars`` keeps
    its first and last ``max_chars / 2`` characters (at line breaks) around a note."""
    changed = False
    for _, _, out in _code_outputs(nb):
        if out.get("output_type") != "stream":
            continue
        text = out.get("text", "")
        new = _as_terminal_shows(text)
        if len(new) > max_chars:
            half = max_chars // 2
            head = new[:half].rsplit("\n", 1)[0]
            tail = new[-half:].split("\n", 1)[-1]
            cut = new[len(head):len(new) - len(tail)]
            new = (f"{head}\n[... {len(cut)} characters ({cut.count(chr(10))} lines) cut from "
                   f"this executed copy to keep it under {EXECUTED_MAX_BYTES / 1e6:g} MB; "
                   f"rerun the notebook for the full output ...]\n{tail}")
        if new != text:
            out["text"] = new
            changed = True
    return changed


# A tqdm bar as it prints ("encoding:  40%|####      | 2/5 [00:01<00:01, 2.0it/s]") or as a
# notebook widget's text ("Loading weights:   0%|          | 0/103 [00:00<?, ?it/s]").
PROGRESS_LINE = re.compile(r"\d{1,3}%\|.*\|\s*[\d.]+[kMG]?/(?:[\d.]+[kMG]?|\?)\s*\[")
# A warning as Python, transformers or torch prints it ("UserWarning: ...", "WARNING:root:...").
WARNING_TEXT = re.compile(r"\b\w*Warning: |^WARNING\b", re.MULTILINE)


def _output_texts(out: Any) -> list[str]:
    """The text an output shows: a stream's text, a result's ``text/*`` values."""
    texts = [out.get("text", "")] if out.get("output_type") == "stream" else []
    texts += [v if isinstance(v, str) else "".join(v)
              for k, v in (out.get("data") or {}).items() if k.startswith("text/")]
    return [t if isinstance(t, str) else "".join(t) for t in texts]


def output_noise(nb: Any, name: str = "notebook") -> list[str]:
    """What should not be in an executed copy's outputs, one line per output naming ``name``
    and the cell (1-based, over all cells, with its first source line): a progress bar (``%|``),
    a carriage return, a stream written to stderr, or warning text (``UserWarning: ...``).
    Empty for a clean notebook."""
    problems = []
    for i, cell, out in _code_outputs(nb):
        where = f"{name} cell {i + 1} ({(cell.source.splitlines() or [''])[0][:60]!r})"
        text = "".join(_output_texts(out))
        found = []
        if "%|" in text:
            found.append("a progress bar")
        if "\r" in text:
            found.append("a carriage return")
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            found.append("stderr")
        if WARNING_TEXT.search(text):
            found.append("warning text")
        if found:
            first = next((line for line in text.replace("\r", "\n").splitlines() if line.strip()), "")
            problems.append(f"{where}: {', '.join(found)}: {first.strip()[:160]!r}")
    return problems


def strip_progress_bars(nb: Any) -> list[int]:
    """Remove progress bars from ``nb``'s outputs, in place (the last line of defence: the
    kernels are started with :data:`HEADLESS_ENV` so that none is drawn): a widget whose text is
    a bar goes, with the widget state when no widget is left; a stream has its carriage-return
    redraws collapsed and its bar lines removed, and goes if nothing else is left. Nothing else
    is touched: a warning stays, for :func:`output_noise` to name. Returns the 1-based numbers
    of the cells changed."""
    changed: set[int] = set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if WIDGET_VIEW in data and any(PROGRESS_LINE.search(t) for t in _output_texts(out)):
                changed.add(i + 1)
                continue
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                lines = _as_terminal_shows(text).split("\n") if "\r" in text else text.split("\n")
                new = "\n".join(line for line in lines if not PROGRESS_LINE.search(line))
                if new != text:
                    changed.add(i + 1)
                    if not new.strip():
                        continue
                    out["text"] = new
            kept.append(out)
        cell.outputs = kept
    if changed and not any(WIDGET_VIEW in (o.get("data") or {}) for _, _, o in _code_outputs(nb)):
        nb.metadata.pop("widgets", None)
    return sorted(changed)


def _rescale_png(b64: str, scale: float) -> tuple[str, tuple[int, int]]:
    """The PNG (base64) resampled to ``scale`` of its pixel size; returns the new base64 and
    the original ``(width, height)``."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        size = im.size
        mode = "RGBA" if im.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        small = im.convert(mode).resize((max(1, round(size[0] * scale)),
                                         max(1, round(size[1] * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii") + "\n", size


def _scale_pngs(nb: Any, originals: list[tuple[Any, Any, str]], scale: float) -> None:
    """Every embedded PNG re-encoded from its original at ``scale``; its displayed size is
    pinned to the original's so the page looks the same, only less sharp."""
    for out, meta, b64 in originals:
        out["data"]["image/png"], (w, h) = _rescale_png(b64, scale)
        meta.setdefault("width", w)
        meta.setdefault("height", h)


def _largest_outputs(nb: Any, n: int = 3) -> str:
    """The ``n`` biggest outputs and sources of ``nb`` as written (JSON), largest first."""
    import json

    sizes = []
    for i, _, out in _code_outputs(nb):
        kinds = "+".join(sorted(out.get("data") or {})) or out.get("output_type", "output")
        sizes.append((len(json.dumps(out, indent=1)), i + 1, kinds))
    for i, cell in enumerate(nb.cells):
        sizes.append((len(json.dumps(cell.source)), i + 1, f"{cell.cell_type} source"))
    return ", ".join(f"cell {i} {kind} {size / 1e6:.2f} MB"
                     for size, i, kind in sorted(sizes, reverse=True)[:n])


def shrink_notebook(nb: Any, max_bytes: int = EXECUTED_MAX_BYTES,
                    name: str = "notebook") -> tuple[Any, list[str]]:
    """A copy of the executed notebook ``nb`` (an ``nbformat`` node) that fits ``max_bytes``
    as written, and the steps it took. Steps run in order, each only while still over:
    widget state and views dropped (static figures kept), carriage-return redraws collapsed
    and very long stream outputs cut with a note, then every PNG re-encoded at 75%, 50%, 35%,
    25% of its resolution. Deterministic: the same input gives the same bytes. Raises
    ``LarpoLiteError`` naming the largest outputs when even that is over."""
    nb = copy.deepcopy(nb)
    steps: list[str] = []
    if _notebook_bytes(nb) <= max_bytes:
        return nb, steps
    if _drop_widgets(nb):
        steps.append("dropped widget state and views (static figures kept)")
        if _notebook_bytes(nb) <= max_bytes:
            return nb, steps
    if _trim_streams(nb):
        steps.append("collapsed progress redraws and cut very long printed output")
        if _notebook_bytes(nb) <= max_bytes:
            return nb, steps
    originals = []
    for _, _, out in _code_outputs(nb):
        if "image/png" in (out.get("data") or {}):
            meta = out.setdefault("metadata", {}).setdefault("image/png", {})
            originals.append((out, meta, out["data"]["image/png"]))
    for scale in PNG_SCALES if originals else ():
        _scale_pngs(nb, originals, scale)
        if _notebook_bytes(nb) <= max_bytes:
            steps.append(f"re-encoded {len(originals)} figure(s) at {scale:.0%} of their resolution")
            return nb, steps
    if originals:
        steps.append(f"figures at {PNG_SCALES[-1]:.0%} of their resolution")
    raise LarpoLiteError(
        f"{name}: the executed copy is {_notebook_bytes(nb) / 1e6:.2f} MB after shrinking "
        f"({'; '.join(steps) or 'nothing to shrink'}), over the {max_bytes / 1e6:g} MB limit. "
        f"Largest: {_largest_outputs(nb)}. Make those cells print or plot less.")


def render_in_place(executed: str | Path) -> bool:
    """Fill an executed notebook's markdown placeholders from the values it published
    (:func:`larpo_lite.prose.render_notebook`), in place; whether anything changed."""
    import nbformat

    from .prose import render_notebook

    nb = nbformat.read(str(executed), as_version=4)
    if not render_notebook(nb):
        return False
    nbformat.write(nb, str(executed))
    return True


def write_executed_copy(executed: str | Path, dest_dir: str | Path,
                        max_bytes: int = EXECUTED_MAX_BYTES) -> Path:
    """Copy the executed notebook ``executed`` (as papermill wrote it) into ``dest_dir``
    under the same name, its markdown placeholders filled from the values the run published
    (:func:`larpo_lite.prose.render_notebook`), any progress bar removed
    (:func:`strip_progress_bars`; any other noise, a warning, is kept and printed:
    :func:`output_noise`) and shrunk to ``max_bytes`` if needed (:func:`shrink_notebook`).
    Returns the copy's path; raises ``LarpoLiteError`` (and writes nothing) when it cannot fit.
    The copy is written whole or not at all: to a temp file of its own beside it, synced, then
    renamed over it; a failed write (a full disk, an interrupt) removes the temp file and leaves
    the earlier copy as it was."""
    import nbformat

    from .prose import render_notebook
    from .reports import replace_atomically

    executed = Path(executed)
    nb = nbformat.read(executed, as_version=4)
    render_notebook(nb)  # markdown placeholders filled from the run's published values
    stripped = strip_progress_bars(nb)
    if stripped:  # said, not hidden: HEADLESS_ENV should have kept these bars from being drawn
        print(f"[larpo-lite] {executed.name}: removed progress bars from cell(s) {stripped}; "
              "find what drew them past HEADLESS_ENV", flush=True)
    for problem in output_noise(nb, executed.name):
        print(f"[larpo-lite] left in the executed copy, fix at its source "
              f"(tests/test_clean_outputs.py fails on it): {problem}", flush=True)
    nb, steps = shrink_notebook(nb, max_bytes, executed.name)
    dest = Path(dest_dir) / executed.name
    data = _notebook_text(nb).encode("utf-8")
    replace_atomically(dest, lambda f: f.write(data))
    how = f" ({'; '.join(steps)})" if steps else ""
    print(f"[larpo-lite] executed copy {dest} {len(data) / 1e6:.2f} MB{how}", flush=True)
    return dest


def _is_injected(cell: Any) -> bool:
    return INJECTED_TAG in cell.get("metadata", {}).get("tags", [])


def code_sources(nb: Any) -> list[str]:
    """The sources of ``nb``'s code cells in order, papermill's injected-parameters cell left out."""
    return [c.source for c in nb.cells if c.cell_type == "code" and not _is_injected(c)]


def executed_preset(nb: Any) -> str | None:
    """The preset an executed notebook ran with: papermill's recorded ``preset`` parameter,
    else the ``preset = ...`` line of its injected-parameters cell; None if neither says."""
    params = nb.metadata.get("papermill", {}).get("parameters")
    if isinstance(params, dict) and "preset" in params:
        return str(params["preset"])
    for cell in nb.cells:
        if cell.cell_type != "code" or not _is_injected(cell):
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:
            continue
        for node in body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "preset"
                    and isinstance(node.value, ast.Constant)):
                return str(node.value.value)
    return None


def executed_copy_problems(copy_path: str | Path, source_dir: str | Path | None = None,
                           preset: str = EXECUTED_PRESET,
                           max_bytes: int = EXECUTED_MAX_BYTES) -> list[str]:
    """What is wrong with one executed copy, empty if nothing: over ``max_bytes``; no source
    notebook of the same name in ``source_dir`` (default ``notebooks/``); code cells that
    differ from the source's (edited, added or removed; the injected-parameters cell and
    markdown are ignored); not run with ``preset``."""
    import nbformat

    copy_path = Path(copy_path)
    source = Path(source_dir or repo_root() / "notebooks") / copy_path.name
    try:  # executed/NN_*.ipynb, executed/solutions/NN_*_solutions.ipynb
        name = copy_path.resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        name = f"{EXECUTED_DIR}/{copy_path.name}"
    rerun = f"rerun `make notebooks ONLY={copy_path.name[:2]}` and commit {name}"
    problems = []
    size = copy_path.stat().st_size
    if size > max_bytes:
        problems.append(f"{name}: {size / 1e6:.2f} MB, over the {max_bytes / 1e6:g} MB limit")
    if not source.is_file():
        return problems + [f"{name}: no source notebook {source}; delete the copy or restore the source"]
    try:
        nb = nbformat.read(copy_path, as_version=4)
    except Exception as e:  # noqa: BLE001 - any unreadable copy is a problem to report
        return problems + [f"{name}: not a readable notebook ({e})"]
    ours, theirs = code_sources(nb), code_sources(nbformat.read(source, as_version=4))
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False))
                      if a != b),
                     min(len(ours), len(theirs)))
        problems.append(f"{name}: stale: {len(ours)} code cells against the source's {len(theirs)}, "
                        f"differing from code cell {first + 1} on; {rerun}")
    ran = executed_preset(nb)
    if ran != preset:
        problems.append(f"{name}: ran with preset {ran!r}, not {preset!r}; {rerun}")
    return problems


def stale_executed_copies(executed_dir: str | Path | None = None,
                          source_dir: str | Path | None = None, preset: str = EXECUTED_PRESET,
                          max_bytes: int = EXECUTED_MAX_BYTES) -> list[str]:
    """The problems (:func:`executed_copy_problems`) of every ``*.ipynb`` in ``executed_dir``
    (default ``executed/``); empty when each copy matches its source and fits."""
    folder = Path(executed_dir or repo_root() / EXECUTED_DIR)
    return [p for c in sorted(folder.glob("*.ipynb"))
            for p in executed_copy_problems(c, source_dir, preset, max_bytes)]


# ---------------------------------------------------------------- running


REPLAY_PRESET = "replay"  # params/replay.yaml: the default run's records, re-executed


def _kernel_params(nb: Path, injected: dict[str, Any], preset_values: dict[str, Any] | None = None
                   ) -> Params | None:
    """The Params a notebook's kernel builds (``Params.for_notebook``): the preset file's
    ``preset_values``, its parameters cell's values over them and ``injected`` over those; None
    when the cell holds something other than literals (the kernel then checks on its own)."""
    import papermill as pm

    values = dict(preset_values or {})
    for name, spec in pm.inspect_notebook(str(nb)).items():
        try:
            values[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError, TypeError):
            return None
    values.update(injected)
    return Params.from_mapping(values, source=f"{nb.name} parameters")


def _check_replay_records(nb: Path, kernel: Params | None) -> None:
    """Before any notebook runs: a replayed notebook's records exist, are intact and were
    recorded with the same parameters (:func:`larpo_lite.replay.check_records`)."""
    from .replay import check_records, replay_folder

    if kernel is None or not kernel.replay:
        return
    folder = replay_folder(kernel) / nb.stem
    if folder.is_dir():  # else the notebook's Recorder says nothing is recorded
        check_records(folder, nb.stem, kernel)


def _replay_after_default_run(nbs: Sequence[Path], log_output: bool) -> None:
    """The replay timings: each notebook just recorded by the default run, replayed once
    (preset ``replay``, outputs under ``runs/replay/``), its wall time recorded under ``replay``
    in ``reports/timing.json`` and the guide regenerated. A replay writes no tracked file: its
    timings are the default run's to record."""
    from .replay import MANIFEST, REPLAY_DIR
    from .workshop import after_default_notebook

    for nb in nbs:
        if not (repo_root() / REPLAY_DIR / nb.stem / MANIFEST).is_file():
            continue
        t0 = time.perf_counter()
        run_notebooks(REPLAY_PRESET, only=[nb.name[:2]], log_output=log_output)
        after_default_notebook(nb.stem, time.perf_counter() - t0, REPLAY_PRESET)


def run_notebooks(preset: str, only: Sequence[str] | None = None, out_dir: str | Path | None = None,
                  overrides: dict | None = None, log_output: bool = False, jobs: int = 1,
                  folder: str = "notebooks", executed_dir: str | Path | None = None) -> list[Path]:
    """Execute notebooks with papermill into ``runs/<preset>/`` (``$LARPO_LITE_RUNS/<preset>/``
    when set); parameters come from the preset file and are validated first (an unknown key
    or a wrong type stops before any notebook runs), and a replay's records are checked first
    (:func:`larpo_lite.replay.check_records`). ``jobs`` > 1 runs that many notebooks at once,
    each in its own process (see ``_run_parallel``). ``folder``: ``notebooks`` or
    ``notebooks/solutions``. A notebook that ran to its end has its new replay records swapped
    in whole (:func:`larpo_lite.replay.finish_recording`).

    Only the default run (:func:`is_default_run`) writes tracked files: each notebook's wall time
    goes to ``reports/timing.json`` and the instructor's guide is regenerated
    (:mod:`larpo_lite.workshop`), each executed notebook is also copied, at most 2 MB, into
    ``executed/`` (:func:`write_executed_copy`; ``executed_dir`` sends copies of any run
    elsewhere, see :func:`executed_dir_for`); after its notebooks it executes their exercise
    solutions into ``executed/solutions/`` (:func:`_run_solutions`, inside its wall time), and
    at its end each notebook is replayed once for the replay timings. Returns the executed
    notebooks' paths (under ``runs/``)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and (overrides or folder != "notebooks" or executed_dir is not None):
        raise ValueError("overrides, other folders and executed_dir work with jobs=1 only")
    copies_to = executed_dir_for(preset, folder, overrides, executed_dir)
    default_run = is_default_run(preset, folder, overrides)

    values = load_preset_values(preset)
    values.update(overrides or {})
    params = Params.from_mapping(values, source=str(preset_path(preset)),
                                 key_sources={k: "override" for k in overrides or {}})
    values.setdefault("preset", Path(preset).stem)
    if params.device.startswith("cuda"):  # a GPU preset must not crawl on the CPU instead
        from .models import pick_device

        try:
            pick_device(params.device)
        except RuntimeError as e:
            raise LarpoLiteError(f"preset {values['preset']!r} asks for device "
                               f"{params.device!r}: {e}") from None
    out = writable_dir(Path(out_dir) if out_dir else runs_dir() / preset_folder(params.preset))
    replay_at_end = default_run and not os.environ.get(CHILD_ENV)  # a --jobs child: the parent
    whole = replay_at_end and not only and folder == "notebooks"  # the whole default run
    # some notebooks of the default run, not all: a --jobs child learns it from its parent
    partial = default_run and (os.environ.get(PARTIAL_ENV) == "1" if os.environ.get(CHILD_ENV)
                               else bool(only))
    clock = SuiteClock() if whole else None
    finished = False
    failed_solutions: list[str] = []
    try:
        if jobs > 1:
            paths = _run_parallel(preset, notebook_paths(only), out, jobs, log_output, partial)
        else:
            paths = _run_each(preset, values, only, out, log_output, folder, copies_to,
                              default_run, partial)
        if replay_at_end:  # the exercise solutions, inside the default run's wall time
            failed_solutions = _run_solutions(preset, only, out / "solutions", log_output)
        finished = True
    finally:
        timing = clock.stop(finished) if clock is not None else None
    if replay_at_end:
        _replay_after_default_run(notebook_paths(only, folder), log_output)
    if timing is not None:  # the whole default run: its wall time, summed over its segments
        from .workshop import record_suite, write_guide

        record_suite(timing["seconds"], jobs, note=reused_work_note(clock.started),
                     reused=reused_work(clock.started), resumed=timing["resumed"],
                     segments=timing["segments"])
        write_guide()
        from . import timing_doc

        timing_doc.write()
    if failed_solutions:
        raise LarpoLiteError("solutions notebook(s) failed (the notebooks and their copies are "
                             "written): " + "; ".join(failed_solutions) + ". Fix them and rerun "
                             "`make notebooks ONLY=<NN>`")
    return paths


def _run_solutions(preset: str, only: Sequence[str] | None, out: Path, log_output: bool) -> list[str]:
    """The default run's exercise solutions, after its notebooks (they read the reports and
    replay records those wrote): ``notebooks/solutions/NN_*_solutions.ipynb`` for each number
    run, one after another, each executed copy into ``executed/solutions/``
    (:func:`executed_dir_for`) and its wall time into ``reports/timing.json`` under
    ``solutions``. A solution that fails does not stop the others; returns one line per
    failure (empty when all ran)."""
    from .workshop import after_default_notebook

    have = {p.name[:2] for p in notebook_paths(folder=SOLUTIONS_FOLDER)}
    failed = []
    for n in [p.name[:2] for p in notebook_paths(only)]:
        if n not in have:
            continue
        t0 = time.perf_counter()
        try:
            (path,) = run_notebooks(preset, only=[n], out_dir=out, log_output=log_output,
                                    folder=SOLUTIONS_FOLDER)
        except Exception as e:  # noqa: BLE001 - named at the end of the run, the others go on
            print(f"[larpo-lite] solutions {n} failed: {e}", file=sys.stderr, flush=True)
            last = (str(e).strip().splitlines() or [""])[-1][:200]
            failed.append(f"{n} ({type(e).__name__}: {last})")
            continue
        after_default_notebook(path.stem, time.perf_counter() - t0, "solutions")
    return failed


def _run_each(preset: str, values: dict[str, Any], only: Sequence[str] | None, out: Path,
              log_output: bool, folder: str, copies_to: Path | None, default_run: bool,
              partial: bool = False) -> list[Path]:
    """The notebooks of :func:`run_notebooks`, one after another in this process (``partial``:
    the default run's notebooks executed again alone, timed under ``reexecuted``)."""
    import papermill as pm

    from .replay import RECORDING_ENV, finish_recording

    done = []
    too_big: list[str] = []
    # the kernels inherit these: no progress bars, and which preset file runs (a default.yaml
    # elsewhere is not the default run: Params.is_default_run)
    kernel_env = {**HEADLESS_ENV, PRESET_FILE_ENV: str(preset_path(preset).resolve()),
                  RECORDING_ENV: ""}
    import logging

    # the kernel takes keys a notebook does not declare (overrides) through Params.for_notebook:
    # papermill's "Passed unknown parameter" is expected here, not a warning for the reader
    logging.getLogger("papermill").addFilter(
        lambda record: not record.getMessage().startswith("Passed unknown parameter"))
    file_values = load_preset_values(preset)
    full = Params.from_mapping(values, source=str(preset_path(preset))).to_dict()  # with defaults
    env_before = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        plans = []
        for nb in notebook_paths(only, folder):
            declared = pm.inspect_notebook(str(nb))  # the names of its `parameters` cell
            # its own keys, the preset's name and what differs from the preset file (the
            # kernel reads the rest from that file: Params.for_notebook)
            own = {k: v for k, v in full.items() if k in declared or k == "preset"}
            own.update({k: v for k, v in values.items()  # overrides, and keys the file lacks
                        if k not in file_values or file_values[k] != v})
            kernel = _kernel_params(nb, own, file_values)
            _check_replay_records(nb, kernel)  # every record checked before any notebook runs
            plans.append((nb, own, kernel))
        for nb, own, kernel in plans:
            t0 = time.perf_counter()
            token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # this notebook's recording folder
            os.environ[RECORDING_ENV] = token
            print(f"[larpo-lite] {nb.name} (preset {values['preset']}) ...", flush=True)
            target = out / nb.name
            pm.execute_notebook(str(nb), str(target), parameters=own, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False, log_output=log_output)
            render_in_place(target)  # its prose placeholders filled from the run's values
            print(f"[larpo-lite] {nb.name} done in {time.perf_counter() - t0:.0f}s -> {target}",
                  flush=True)
            if kernel is not None and not kernel.replay:  # ran to its end: its records swap in
                finish_recording(kernel.out_dir("record", create=False) / nb.stem, token)
            if default_run:
                from .workshop import after_default_notebook

                after_default_notebook(nb.stem, time.perf_counter() - t0,
                                       "reexecuted" if partial else DEFAULT_PRESET)
            if copies_to is not None:
                try:
                    write_executed_copy(target, copies_to)
                except LarpoLiteError as e:  # the other notebooks still run and copy
                    too_big.append(f"{e} ({copies_to / nb.name} not updated)")
            done.append(target)
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if too_big:
        raise LarpoLiteError("executed copies over the size limit:\n" + "\n".join(too_big))
    return done
