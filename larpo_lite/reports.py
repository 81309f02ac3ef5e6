"""Metrics files of a notebook run: JSON under ``reports/`` (written atomically)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import torch


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded beside every metrics file."""
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "machine": platform.machine(),
    }


def benchmark_context(script: str, argv: list[str], started: str,
                      load_start: float) -> dict[str, Any]:
    """What a benchmark record says about the machine and the run: the CPU (and whether it has
    bf16 units), thread settings, the load average at the start and now (the machine may be
    shared), the environment, when it was measured and the command that measured it."""
    from .models import cpu_has_bf16

    return {"cpu": cpu_model(), "cpu_has_bf16": cpu_has_bf16(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(),
            "load_average_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "environment": environment(), "measured": started,
            "command": f"python {script} " + " ".join(argv)}


def replace_atomically(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """``path`` written whole or not at all: ``write(f)`` fills a temporary file of its own
    beside it (a unique name: two processes saving the same file never share one), synced,
    then renamed over ``path``. On any error the temporary file is removed and ``path`` is
    left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            mask = os.umask(0o022)
            os.umask(mask)
            os.fchmod(f.fileno(), 0o666 & ~mask)  # as open() would make it (mkstemp gives 0600)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_generated(path: str | Path, fresh: str, module: str) -> int:
    """A generated file's ``--check``: prints whether ``path`` equals ``fresh`` (what the
    generator would write now) and, if not, the command that regenerates it
    (``python -m <module>``). Returns the exit status: 0 up to date, 1 stale or missing."""
    path = Path(path)
    ok = path.is_file() and path.read_text() == fresh
    print(f"{path.name}: {'up to date' if ok else f'stale: run python -m {module}'}")
    return 0 if ok else 1


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON to a temporary file, then rename it into place (:func:`replace_atomically`)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return replace_atomically(path, lambda f: f.write(text.encode("utf-8")))


def write_metrics(name: str, metrics: dict[str, Any], params: Any, folder: str | Path) -> Path:
    """``<folder>/<name>.json`` holding the metrics, the params and the environment."""
    record = {
        "notebook": name,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params.to_dict() if hasattr(params, "to_dict") else params,
        "environment": environment(),
        "metrics": metrics,
    }
    return write_json(record, Path(folder) / f"{name}.json")


def read_metrics(name: str, folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / f"{name}.json").read_text())
