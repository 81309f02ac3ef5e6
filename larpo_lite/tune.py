"""Choosing the training setting on the validation split (never on test).

    larpo-lite tune --preset default --study configs/tuning/default.yaml
    larpo-lite tune --preset default --lrs 3e-5,1e-4,3e-4 --betas 0.1

A *study* is a list of settings, each a set of :class:`~larpo_lite.loop.LoopConfig`
overrides (the instruction, the sampling temperature, prompts per round, ``k``,
``gold_in_list``, ``lr``, ``beta``, ``epochs``, rounds, the objective ...) on top of the
preset's loop set-up and the study's ``base``. Every setting is a loop run
(:func:`larpo_lite.loop.run_locked`, ``eval_split="validation"``: greedy on the first
``n_val`` validation problems, the test split never loaded) in its own folder under
``runs/<preset>/tune/``, named by a hash of its config: a killed study resumes, a finished
setting is read back. Round 1 samples the initial policy through the candidate cache, so
settings with the same sampling settings (model, instruction, temperature, prompts, ``k``,
seed) share one sample set, and the initial policy's validation evaluation (row 0) is
computed once and read back by every other run.

Each setting is compared with the initial policy on the same problems
(:func:`larpo_lite.metrics.paired_stats` on the per-problem scores the loop records): the
validation change, its paired SE, the minimum detectable effect (2 SE), problems gained and
lost. Each objective gets its own settings (its own lr sweep: contrastive and LambdaRank sum
over several negatives or pairs, so their gradients are larger than DPO's at the same lr), and
the chosen setting of each objective is the one with the highest validation change; ties go to
the cheaper setting (fewer sampled responses, then fewer epochs), then to the smaller lr, then
the smaller beta. ``moved_validation`` says whether the chosen one moved validation by more
than 2 paired SE. A setting value ``chosen`` (e.g. ``lr: chosen``) takes that field from the
chosen setting of the same objective among the settings before it (so ``gold_in_list`` can be
tried at the best lr).

The study file (YAML)::

    n_val: 200                 # validation problems (the whole split)
    base: {iterations: 1, prompts_per_iter: 256, k: 8, temperatures: [0.7], epochs: 3}
    settings:
      - {objective: pairwise, lr: 1e-4}
      - {objective: pairwise, lr: chosen, gold_in_list: true}

Each row of the output: the setting (``name``, ``overrides``, ``objective``, ``lr``, ``beta``,
``config``), ``val_greedy_init`` and ``val_greedy``, the paired comparison (``diff``, ``se``,
``mde``, ``gained``, ``lost``, ``n``, ``verdict``), the per-problem scores it came from
(``val_correct_init`` / ``val_correct``, strings of 0/1; ``val_rewards*`` on reward-scored
tasks), the greedy answers' mean length, the round's lists and losses, and its cost:
``seconds`` (the run's rounds as they ran: sampling, training, evaluation; a setting whose
samples an earlier one drew reads them from the cache), ``train_seconds``, and ``cost``
(sampled responses, epochs) for ties.

``--lrs/--betas`` is the study of one DPO round (pairwise, best vs worst of ``k_train``
samples for ``n_train_prompts`` prompts at the preset's ``temperature``) for every
(lr, beta), on the preset's ``n_val`` problems. Writes ``<reports_dir>/tuning_validation.json``
(``n_val`` in its params); the preset's values are then set by hand from that file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import reports
from .config import load_preset_values
from .loop import LoopConfig, per_problem, run_locked
from .metrics import paired_stats

CHOSEN = "chosen"
# set by the study itself (every setting on the same validation problems), never by a setting
_FIXED = ("eval_split", "n_val", "show_progress", "task", "task_source", "reward_model")
_TYPES = {f.name: f.type for f in dataclasses.fields(LoopConfig)}


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` as the type of LoopConfig field ``name`` (YAML gives ints for floats)."""
    if name not in _TYPES or name in _FIXED:
        valid = [k for k in _TYPES if k not in _FIXED]
        raise ValueError(f"{where}: {name!r} is not a setting; valid: {', '.join(valid)}")
    kind = str(_TYPES[name])
    try:
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "int":
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            return int(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "list[float]":
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, bool) for v in values):
                raise TypeError
            return [float(v) for v in values]
        if kind.startswith("str"):
            if value is None and "None" in kind:
                return None
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{where}: {name} must be {kind}, got {value!r}")


def _overrides(values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of setting: value, got {values!r}")
    return {k: v if v == CHOSEN else _coerce(k, v, where) for k, v in values.items()
            if k != "name"}


def load_study(path: str | Path) -> dict[str, Any]:
    """A study file: ``{"n_val": int | None, "base": {...}, "settings": [{...}, ...]}`` with
    every value checked against :class:`LoopConfig`'s fields (a typo is an error naming the
    file and the valid names)."""
    path = Path(path)
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        raise ValueError(f"{path}: no such study file (a .yaml file)")
    raw = load_preset_values(str(path))  # YAML as the presets read it: 1e-4 is a float
    if not isinstance(raw, dict) or set(raw) - {"n_val", "base", "settings"}:
        raise ValueError(f"{path}: expected the keys n_val, base and settings")
    settings = raw.get("settings") or []
    if not isinstance(settings, list) or not settings:
        raise ValueError(f"{path}: settings must be a non-empty list")
    base = _overrides(raw.get("base") or {}, f"{path}: base")
    if CHOSEN in base.values():
        raise ValueError(f"{path}: base: {CHOSEN!r} is only for settings")
    n_val = raw.get("n_val")
    if n_val is not None and (not isinstance(n_val, int) or n_val < 2):
        raise ValueError(f"{path}: n_val must be an integer >= 2, got {n_val!r}")
    out = []
    for i, s in enumerate(settings):
        over = _overrides(s, f"{path}: settings[{i}]")
        out.append({"name": str(s.get("name") or _name(over)), "overrides": over})
    return {"n_val": n_val, "base": base, "settings": out, "path": str(path)}


def grid_study(params: Any, lrs: list[float], betas: list[float]) -> dict[str, Any]:
    """The study of one DPO round for every (lr, beta): the preset's ``n_train_prompts``
    prompts, ``k_train`` samples each at ``temperature``, on ``n_val`` validation problems."""
    if not lrs or not betas:
        raise ValueError("give at least one lr and one beta")
    base = {"iterations": 1, "prompts_per_iter": params.n_train_prompts, "k": params.k_train,
            "temperatures": [params.temperature], "objective": "pairwise", "eval_samples": 0}
    settings = [{"lr": float(lr), "beta": float(beta)} for lr in lrs for beta in betas]
    return {"n_val": params.n_val, "base": base, "path": None,
            "settings": [{"name": _name(s), "overrides": s} for s in settings]}


def _name(over: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in over.items()) or "base"


def _cost(cfg: LoopConfig) -> tuple[int, int]:
    """What a setting costs, for ties: sampled responses, then epochs."""
    return cfg.iterations * cfg.prompts_per_iter * cfg.k, cfg.epochs


def _rank_key(row: dict[str, Any]) -> tuple[float, ...]:
    """Higher is better: the validation change, then cheaper, then smaller lr and beta."""
    samples, epochs = row["cost"]
    return (row["diff"], -samples, -epochs, -row["lr"], -row["beta"])


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The chosen row among ``rows`` (see the module doc for the order)."""
    return max(rows, key=_rank_key)


def compare(init_row: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The paired comparison of a run's last row with its initial policy's (row 0) on the
    validation problems: ``diff``, ``se``, ``mde``, ``gained``, ``lost``, ``n``, ``verdict``."""
    stats = paired_stats(per_problem(init_row, "val"), per_problem(row, "val"))
    return {"diff": stats.diff, "se": stats.se, "mde": stats.mde, "gained": stats.gained,
            "lost": stats.lost, "n": stats.n, "verdict": stats.verdict}


_FROM_ROUND = ("lists", "train_lists", "skipped_prompts", "sample_accuracy", "sample_reward",
               "train_steps", "loss_first", "loss_last", "ranking_accuracy_last", "note")


def tune(params: Any, study: dict[str, Any], runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Run every setting of ``study`` (:func:`load_study` or :func:`grid_study`) as a loop run
    evaluated on validation and compare each with the initial policy; see the module doc.

    Args:
        params: the preset (``config.Params``): the loop set-up the settings override.
        study: the settings.
        runs_dir: where the runs go (default ``runs/<preset>/tune``).
    """
    from .paths import repo_root

    n_val = study["n_val"] or params.n_val
    runs = Path(runs_dir) if runs_dir else repo_root() / "runs" / params.preset / "tune"
    base = LoopConfig.from_params(params, alignment=True, **study["base"])
    base = dataclasses.replace(base, eval_split="validation", n_val=n_val)
    rows: list[dict[str, Any]] = []
    configs: list[LoopConfig] = []
    inits: dict[str, dict[str, Any]] = {}  # instruction -> the initial policy's row 0
    for setting in study["settings"]:
        over = dict(setting["overrides"])
        for key, value in over.items():
            if value == CHOSEN:
                same = [r for r in rows if r["objective"] == over.get("objective", base.objective)]
                if not same:
                    raise ValueError(f"setting {setting['name']!r}: {key}: {CHOSEN!r} needs an "
                                     "earlier setting of the same objective")
                best = choose(same)
                over[key] = getattr(next(c for r, c in zip(rows, configs, strict=True) if r is best), key)
        cfg = dataclasses.replace(base, **over)
        configs.append(cfg)
        cfg.validate()
        folder = runs / f"{cfg.objective}-{_config_hash(cfg)}"
        t0 = time.perf_counter()
        results = run_locked(cfg, folder, resume=True)
        init, last = results[0], results[-1]
        seen = inits.setdefault(cfg.instruction, init)  # one initial policy per instruction
        if not np.allclose(per_problem(seen), per_problem(init), atol=1e-6):
            raise ValueError(f"{folder}: its initial policy scored differently from the other "
                             "runs' on the same validation problems; delete the tune runs and "
                             "start again")
        row = {"name": setting["name"], "overrides": setting["overrides"],
               "objective": cfg.objective, "lr": cfg.lr, "beta": cfg.beta,
               "val_greedy_init": init["val_greedy"], "val_greedy": last["val_greedy"],
               **compare(init, last),
               "seconds": round(sum(r["seconds"] for r in results[1:]), 1),
               "train_seconds": round(sum(r.get("train_seconds", 0.0) for r in results[1:]), 1),
               "seconds_this_call": round(time.perf_counter() - t0, 1),
               "cost": list(_cost(cfg)), "val_tokens_init": init["val_tokens"],
               "val_tokens": last["val_tokens"],
               **{k: last[k] for k in _FROM_ROUND if k in last},
               "run": str(folder), "config": cfg.to_dict()}
        for key in ("val_correct", "val_rewards"):
            if key in last:
                row[key + "_init"], row[key] = init[key], last[key]
        rows.append(row)
        print({k: row[k] for k in ("name", "val_greedy_init", "val_greedy", "diff", "se",
                                   "seconds")}, flush=True)
    chosen = {}
    for objective in dict.fromkeys(r["objective"] for r in rows):
        best = choose([r for r in rows if r["objective"] == objective])
        chosen[objective] = {"name": best["name"], "lr": best["lr"], "beta": best["beta"],
                             "overrides": best["overrides"], "diff": best["diff"],
                             "se": best["se"], "mde": best["mde"], "verdict": best["verdict"],
                             "moved_validation": best["verdict"] == "better"}
    first = inits[next(iter(inits))]
    return {"split": "validation", "task": base.task, "n_val": len(per_problem(first)),
            "study": study.get("path"), "base": study["base"],
            "val_greedy_init": first["val_greedy"], "init_seconds": round(first["seconds"], 1),
            "rows": rows, "chosen": chosen}


def _config_hash(cfg: LoopConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def run(params: Any, lrs: list[float] | None = None, betas: list[float] | None = None,
        study: str | Path | None = None, n_val: int | None = None,
        runs_dir: str | Path | None = None) -> dict[str, Any]:
    """:func:`tune` of a study file, or of the (lr, beta) grid, written to
    ``<reports_dir>/tuning_validation.json`` with the preset's params (``n_val`` the number
    of validation problems used). ``n_val`` overrides the study's."""
    if study is not None and (lrs or betas):
        raise ValueError("give a study file or --lrs/--betas, not both")
    spec = load_study(study) if study is not None else grid_study(params, lrs or [], betas or [])
    if n_val is not None:
        if n_val < 2:
            raise ValueError(f"n_val must be >= 2 (a paired standard error), got {n_val}")
        spec["n_val"] = n_val
    params = dataclasses.replace(params, n_val=spec["n_val"] or params.n_val)
    out = tune(params, spec, runs_dir=runs_dir)
    params = dataclasses.replace(params, n_val=out["n_val"])
    path = reports.write_metrics("tuning_validation", out, params, params.out_dir("reports"))
    out["path"] = str(path)
    return out




def chosen_settings(path: str | Path, preset: str) -> dict[str, dict[str, Any]]:
    """The per-objective choices of a validation study, as notebooks 04 and 07 read them.

    Args:
        path: a ``tuning_validation.json`` (:func:`run` writes it to ``<reports_dir>``).
        preset: the preset the choices must belong to.

    Returns:
        ``{objective: {"lr": ..., "beta": ..., ...}}``, the file's ``metrics.chosen`` entries
        that hold an ``lr``, when the file exists and its ``params.preset`` equals ``preset``;
        else ``{}`` (no study, another preset's study, or an older file with one choice for
        every objective)."""
    path = Path(path)
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    if record.get("params", {}).get("preset") != preset:
        return {}
    chosen = record.get("metrics", {}).get("chosen", {})
    return {o: c for o, c in chosen.items() if isinstance(c, dict) and "lr" in c}


def apply_choice(cfg: LoopConfig, chosen: dict[str, dict[str, Any]]) -> LoopConfig:
    """``cfg`` at the lr and beta chosen for its objective (``chosen`` as
    :func:`chosen_settings` returns it; a choice without ``beta`` keeps ``cfg.beta``), or
    ``cfg`` unchanged when its objective has no choice."""
    c = chosen.get(cfg.objective)
    if not c:
        return cfg
    return dataclasses.replace(cfg, lr=float(c["lr"]), beta=float(c.get("beta", cfg.beta)))
