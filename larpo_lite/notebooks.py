"""Running the numbered notebooks headless with papermill, one preset at a time."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from .config import Params, load_preset_values, preset_path
from .paths import repo_root


def notebook_paths(only: Sequence[str] | None = None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order; ``only`` selects by number prefix ("01", "2")."""
    nbs = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return nbs
    wanted = {s.strip().zfill(2) for s in only if s.strip()}
    have = {p.name[:2] for p in nbs}
    missing = sorted(wanted - have)
    if missing:
        raise ValueError(f"no notebook numbered {missing}; have {sorted(have)}")
    return [p for p in nbs if p.name[:2] in wanted]


def run_notebooks(preset: str, only: Sequence[str] | None = None, out_dir: str | Path | None = None,
                  overrides: dict | None = None, log_output: bool = False) -> list[Path]:
    """Execute notebooks with papermill into ``runs/<preset>/``; parameters come from the
    preset file and are validated first (an unknown key or a wrong type stops before any
    notebook runs). Returns the executed notebooks' paths."""
    import papermill as pm

    values = load_preset_values(preset)
    values.update(overrides or {})
    params = Params.from_mapping(values, source=str(preset_path(preset)))
    values.setdefault("preset", Path(preset).stem)
    if params.device.startswith("cuda"):  # a GPU preset must not crawl on the CPU instead
        from .models import pick_device

        try:
            pick_device(params.device)
        except RuntimeError as e:
            raise RuntimeError(f"preset {values['preset']!r} asks for device "
                               f"{params.device!r}: {e}") from None
    out = Path(out_dir) if out_dir else repo_root() / "runs" / Path(preset).stem
    out.mkdir(parents=True, exist_ok=True)
    done = []
    env_before = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # quiets a debugger warning in kernels
    try:
        for nb in notebook_paths(only):
            t0 = time.perf_counter()
            print(f"[larpo-lite] {nb.name} (preset {values['preset']}) ...", flush=True)
            target = out / nb.name
            declared = pm.inspect_notebook(str(nb))  # the names of its `parameters` cell
            own = {k: v for k, v in values.items() if k in declared}
            pm.execute_notebook(str(nb), str(target), parameters=own, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False, log_output=log_output)
            print(f"[larpo-lite] {nb.name} done in {time.perf_counter() - t0:.0f}s -> {target}",
                  flush=True)
            done.append(target)
    finally:
        if env_before is None:
            os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
    return done
