"""Running the numbered notebooks headless with papermill, one preset at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .config import Params, load_preset_values, preset_path
from .errors import LarpoLiteError
from .paths import repo_root


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


# Notebooks that read another's cached results; run side by side, they wait for it.
DEPENDS_ON: dict[str, tuple[str, ...]] = {"02": ("01",)}


def schedule(numbers: Sequence[str], finished: set[str], running: set[str]) -> str | None:
    """The next notebook a free worker should start: the first not started whose
    dependencies (``DEPENDS_ON``, among those selected) have finished; None if none is ready."""
    for n in numbers:
        if n in finished or n in running:
            continue
        if all(d in finished or d not in numbers for d in DEPENDS_ON.get(n, ())):
            return n
    return None


def _run_parallel(preset: str, nbs: list[Path], out: Path, jobs: int, log_output: bool) -> list[Path]:
    """Each notebook in its own ``larpo-lite notebooks --only NN`` process, ``jobs`` at a time,
    each with ``cores // jobs`` threads (unless OMP_NUM_THREADS is set). On two cores two
    one-thread notebooks side by side do ~1.4x the work of one two-thread notebook."""
    numbers = [p.name[:2] for p in nbs]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    running: dict[str, subprocess.Popen] = {}
    finished: set[str] = set()
    failed: list[str] = []
    while len(finished) + len(failed) < len(numbers):
        while not failed and len(running) < jobs:
            nxt = schedule(numbers, finished, set(running))
            if nxt is None:
                break
            cmd = [sys.executable, "-m", "larpo_lite.cli", "notebooks", "--preset", preset,
                   "--only", nxt, "--out-dir", str(out)] + (["--log-output"] if log_output else [])
            running[nxt] = subprocess.Popen(cmd, env=env)
        if not running:
            break
        time.sleep(1.0)
        for n, proc in list(running.items()):
            if proc.poll() is not None:
                del running[n]
                if proc.returncode == 0:
                    finished.add(n)
                else:
                    failed.append(n)
    if failed:
        raise LarpoLiteError(f"notebook(s) {failed} failed (preset {preset}); see the output above "
                           f"and the executed copies in {out}")
    return [out / p.name for p in nbs]


def run_notebooks(preset: str, only: Sequence[str] | None = None, out_dir: str | Path | None = None,
                  overrides: dict | None = None, log_output: bool = False, jobs: int = 1,
                  folder: str = "notebooks") -> list[Path]:
    """Execute notebooks with papermill into ``runs/<preset>/``; parameters come from the
    preset file and are validated first (an unknown key or a wrong type stops before any
    notebook runs). ``jobs`` > 1 runs that many notebooks at once, each in its own process
    (see ``_run_parallel``). ``folder``: ``notebooks`` or ``notebooks/solutions``. On the
    default preset each notebook's wall time goes to ``reports/timing.json`` and the
    instructor's guide is regenerated (:mod:`larpo_lite.workshop`). Returns the executed
    notebooks' paths."""
    import papermill as pm

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and (overrides or folder != "notebooks"):
        raise ValueError("overrides and other folders work with jobs=1 only")

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
    out = Path(out_dir) if out_dir else repo_root() / "runs" / Path(preset).stem
    out.mkdir(parents=True, exist_ok=True)
    if jobs > 1:
        return _run_parallel(preset, notebook_paths(only), out, jobs, log_output)
    timed = values["preset"] == "default" and folder == "notebooks" and not overrides
    done = []
    env_before = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # quiets a debugger warning in kernels
    try:
        for nb in notebook_paths(only, folder):
            t0 = time.perf_counter()
            print(f"[larpo-lite] {nb.name} (preset {values['preset']}) ...", flush=True)
            target = out / nb.name
            declared = pm.inspect_notebook(str(nb))  # the names of its `parameters` cell
            own = {k: v for k, v in values.items() if k in declared}
            pm.execute_notebook(str(nb), str(target), parameters=own, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False, log_output=log_output)
            print(f"[larpo-lite] {nb.name} done in {time.perf_counter() - t0:.0f}s -> {target}",
                  flush=True)
            if timed:
                from .workshop import after_default_notebook

                after_default_notebook(nb.stem, time.perf_counter() - t0)
            done.append(target)
    finally:
        if env_before is None:
            os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
    return done
