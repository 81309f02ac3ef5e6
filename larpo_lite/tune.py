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
from .loop import LoopConfig, finished_rows, per_problem, run_locked
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
    if isinstance(raw, dict):
        raw.pop("preset", None)  # the preset reader names every file it reads
    if isinstance(raw, dict) and is_staged(raw):
        return load_staged(raw, str(path))
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


_FROM_ROUND = ("lists", "train_lists", "skipped_prompts", "shortened_lists", "truncated_samples",
               "truncated_in_lists", "sample_accuracy", "sample_reward",
               "train_steps", "loss_first", "loss_last", "ranking_accuracy_last", "note")


def tune(params: Any, study: dict[str, Any], runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Run every setting of ``study`` (:func:`load_study` or :func:`grid_study`) as a loop run
    evaluated on validation and compare each with the initial policy; see the module doc.

    Args:
        params: the preset (``config.Params``): the loop set-up the settings override.
        study: the settings.
        runs_dir: where the runs go (default ``runs/<preset>/tune``).
    """
    from .paths import runs_dir as runs_root

    n_val = study["n_val"] or params.n_val
    runs = Path(runs_dir) if runs_dir else runs_root() / params.preset / "tune"
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
    return _config_hash_of(cfg.to_dict())


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
    if spec.get("staged"):
        folder = params.out_dir("reports")
        report, partial = folder / "tuning_validation.json", folder / f"{PARTIAL}.json"

        def prior() -> dict[str, dict[str, Any]]:
            return {**prior_rows(report), **prior_rows(partial)}

        def write(result: dict[str, Any]) -> Path:
            # rows another process of the study wrote meanwhile are kept (same config hash)
            rows = {r["config_hash"]: r for r in result["rows"]}
            for h, r in prior().items():
                rows.setdefault(h, r)
            result = {**result, "rows": list(rows.values())}
            p = dataclasses.replace(params, n_val=result["n_val"])
            if not result["complete"]:  # the notebooks read only a finished study
                return reports.write_metrics(PARTIAL, result, p, folder)
            path = reports.write_metrics("tuning_validation", result, p, folder)
            partial.unlink(missing_ok=True)
            return path

        out = tune_staged(params, spec, runs_dir=runs_dir, prior=prior(), on_progress=write,
                          reload_prior=prior)
        out["path"] = str(write(out))
        return out
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
    return _chosen(record) if record.get("params", {}).get("preset") == preset else {}


def _chosen(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    chosen = record.get("metrics", {}).get("chosen", {})
    return {o: c for o, c in chosen.items() if isinstance(c, dict) and "lr" in c}


def study_records(params: Any) -> list[tuple[Path, dict[str, Any]]]:
    """The validation studies a notebook run with ``params`` reads, in order: this run's
    reports folder's ``tuning_validation.json``, then the repository's committed one (a run
    of the default preset with a changed value writes its reports under ``runs/`` but trains
    at the default study's step sizes); each ``(path, record)`` kept only where it exists and
    belongs to the preset these results stand for (:func:`larpo_lite.replay.results_preset`:
    a replay reads the recorded preset's study)."""
    from .paths import repo_root
    from .replay import results_preset

    preset = results_preset(params)
    out = []
    for path in (params.out_dir("reports", create=False) / "tuning_validation.json",
                 repo_root() / "reports" / "tuning_validation.json"):
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("params", {}).get("preset") == preset:
                out.append((path, record))
    return out


def read_choices(params: Any) -> dict[str, dict[str, Any]]:
    """The study's choices for a notebook run with ``params`` (:func:`chosen_settings`) from
    the first of :func:`study_records` that has any; ``{}`` when none does."""
    return next((c for _, record in study_records(params) if (c := _chosen(record))), {})


def apply_choice(cfg: LoopConfig, chosen: dict[str, dict[str, Any]]) -> LoopConfig:
    """``cfg`` at the lr and beta chosen for its objective (``chosen`` as
    :func:`chosen_settings` returns it; a choice without ``beta`` keeps ``cfg.beta``), or
    ``cfg`` unchanged when its objective has no choice."""
    c = chosen.get(cfg.objective)
    if not c:
        return cfg
    return dataclasses.replace(cfg, lr=float(c["lr"]), beta=float(c.get("beta", cfg.beta)))


# --------------------------------------------------------------------------- staged studies
# A staged study chooses in the order the loop issue asks for: the round size first
# (prompts per round and epochs, at one objective and lr), then each objective's step size at
# that round size on a grid that is extended where the choice sits at an edge, then graded vs
# binary lists at each listed objective's choice. Every setting runs ``base.iterations`` rounds
# from the initial policy and is scored on its LAST round (a step size that helps in round 1
# can over-optimize in round 2); round 1's change is kept beside it (``diff_round1``).
#
#     n_val: 200
#     base: {iterations: 2, k: 8, temperatures: [0.7], beta: 0.1, eval_samples: 0}
#     round_size: {objective: pairwise, lr: 2.0e-4,
#                  options: [{prompts_per_iter: 64, epochs: 3}, {prompts_per_iter: 32, epochs: 3}]}
#     grids:
#       pairwise: [1.0e-4, 2.0e-4, 4.0e-4]
#       pairwise_after_sft: {objective: pairwise, start: sft, lrs: [5.0e-5, 1.0e-4, 2.0e-4]}
#     extend: {factor: 2.0, max: 2}
#     graded_vs_binary: {objectives: [contrastive, lambdarank, listmle], reranker: graded_verifier}
#
# Several processes may run the same staged study at once (``larpo-lite tune ... --jobs 2``
# starts them): each takes the next setting whose folder nobody holds, so the work splits
# without a plan; a setting that needs an earlier choice waits until that choice is final.

STAGED_KEYS = ("n_val", "base", "round_size", "grids", "extend", "graded_vs_binary")
# an unfinished staged study's report: its rows carry over to the next session (committed),
# while tuning_validation.json, which the notebooks read, keeps the last finished study
PARTIAL = "tuning_validation.partial"
_POLL_SECONDS = 20.0


def is_staged(raw: dict[str, Any]) -> bool:
    """Whether a study file's mapping is a staged study (it has ``grids``)."""
    return "grids" in raw


def load_staged(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """A staged study's mapping, checked (every value against :class:`LoopConfig`'s fields)."""
    unknown = set(raw) - set(STAGED_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: {', '.join(STAGED_KEYS)}")
    base = _overrides(raw.get("base") or {}, f"{path}: base")
    rs = raw.get("round_size")
    round_size = None
    if rs is not None:
        if not isinstance(rs, dict) or not isinstance(rs.get("options"), list) or not rs["options"]:
            raise ValueError(f"{path}: round_size needs options: a non-empty list of "
                             "{prompts_per_iter, epochs} mappings")
        options = [_overrides(o, f"{path}: round_size.options[{i}]") for i, o in enumerate(rs["options"])]
        for i, o in enumerate(options):
            if set(o) - {"prompts_per_iter", "epochs"} or not o:
                raise ValueError(f"{path}: round_size.options[{i}]: only prompts_per_iter and epochs")
        fixed = _overrides({k: v for k, v in rs.items() if k != "options"}, f"{path}: round_size")
        round_size = {"fixed": fixed, "options": options}
    grids_raw = raw.get("grids")
    if not isinstance(grids_raw, dict) or not grids_raw:
        raise ValueError(f"{path}: grids must map a name to a list of lrs or to "
                         "{objective: ..., lrs: [...], <other settings>}")
    grids = {}
    for name, g in grids_raw.items():
        where = f"{path}: grids.{name}"
        g = {"lrs": g} if isinstance(g, list) else g
        if not isinstance(g, dict) or not isinstance(g.get("lrs"), list) or not g["lrs"]:
            raise ValueError(f"{where}: needs a non-empty list of lrs")
        lrs = sorted({_coerce("lr", v, where) for v in g["lrs"]})
        if any(not np.isfinite(v) or v <= 0 for v in lrs):
            raise ValueError(f"{where}: lrs must be finite and > 0, got {lrs}")
        over = _overrides({k: v for k, v in g.items() if k != "lrs"}, where)
        over.setdefault("objective", name)
        _coerce("objective", over["objective"], where)
        grids[str(name)] = {"lrs": lrs, "overrides": over}
    ext = raw.get("extend") or {}
    factor, most = float(ext.get("factor", 2.0)), ext.get("max", 2)
    if not np.isfinite(factor) or factor <= 1 or not isinstance(most, int) or most < 0:
        raise ValueError(f"{path}: extend needs factor > 1 and an integer max >= 0")
    gvb = raw.get("graded_vs_binary")
    if gvb is not None:
        if not isinstance(gvb, dict) or not set(gvb.get("objectives") or []) <= set(grids):
            raise ValueError(f"{path}: graded_vs_binary.objectives must name grids")
        gvb = {"objectives": list(gvb["objectives"]),
               "reranker": _coerce("reranker", gvb.get("reranker", "graded_verifier"), path)}
    n_val = raw.get("n_val")
    if n_val is not None and (not isinstance(n_val, int) or n_val < 2):
        raise ValueError(f"{path}: n_val must be an integer >= 2, got {n_val!r}")
    return {"staged": True, "n_val": n_val, "base": base, "round_size": round_size,
            "grids": grids, "extend": {"factor": factor, "max": most},
            "graded_vs_binary": gvb, "path": path}


def _lr_name(lr: float) -> str:
    return f"{lr:.3g}"


def _setting_row(cfg: LoopConfig, results: list[dict[str, Any]], name: str, phase: str,
                 grid: str | None, folder: Path) -> dict[str, Any]:
    """One finished setting's row: its settings, the paired change of its last round (and of
    round 1) against the initial policy on validation, its cost and per-problem scores."""
    init, last = results[0], results[-1]
    row = {"name": name, "phase": phase, "grid": grid, "objective": cfg.objective,
           "lr": cfg.lr, "beta": cfg.beta, "start": getattr(cfg, "start", "initial") or "initial",
           "reranker": cfg.reranker, "prompts_per_iter": cfg.prompts_per_iter,
           "epochs": cfg.epochs, "iterations": cfg.iterations, "k": cfg.k, "seed": cfg.seed,
           "val_greedy_init": init["val_greedy"], "val_greedy": last["val_greedy"],
           "val_greedy_per_round": [r["val_greedy"] for r in results],
           **compare(init, last),
           "seconds": round(sum(r["seconds"] for r in results[1:]), 1),
           "train_seconds": round(sum(r.get("train_seconds", 0.0) for r in results[1:]), 1),
           "cost": list(_cost(cfg)), "val_tokens_init": init["val_tokens"],
           "val_tokens": last["val_tokens"],
           **{k: last[k] for k in _FROM_ROUND if k in last},
           "run": str(folder), "config": cfg.to_dict(), "config_hash": _config_hash(cfg)}
    if len(results) > 2:
        first = compare(init, results[1])
        row.update({"diff_round1": first["diff"], "se_round1": first["se"]})
        drop = compare(results[1], last)  # the last round against round 1
        row.update({"diff_last_vs_round1": drop["diff"], "se_last_vs_round1": drop["se"],
                    "over_optimized": drop["verdict"] == "worse"})
    for key in ("val_correct", "val_rewards"):
        if key in last:
            row[key + "_init"], row[key] = init[key], last[key]
            if len(results) > 2:
                row[key + "_round1"] = results[1].get(key)
    return row


def _scores(row: dict[str, Any], which: str = "") -> np.ndarray:
    key = "val_rewards" if "val_rewards" in row else "val_correct"
    return per_problem({key: row[key + which]}, "val")


class _Staged:
    """The state of a staged study: which settings exist now (they depend on finished
    choices), which have rows, and the choices."""

    def __init__(self, spec: dict[str, Any], base: LoopConfig, runs: Path,
                 prior: dict[str, dict[str, Any]]) -> None:
        self.spec, self.base, self.runs, self.prior = spec, base, runs, prior
        self.rows: dict[str, dict[str, Any]] = {}  # config hash -> row

    # the settings, in order, as far as the finished rows decide them
    def settings(self) -> tuple[list[tuple[str, str, str | None, LoopConfig]], bool]:
        """``[(name, phase, grid, cfg)]`` known so far, and whether the list is final."""
        out: list[tuple[str, str, str | None, LoopConfig]] = []
        base = self.base
        rs = self.spec["round_size"]
        if rs is not None:
            for o in rs["options"]:
                cfg = dataclasses.replace(base, **rs["fixed"], **o)
                out.append((f"round size: {_name(o)}", "round_size", None, cfg))
            picked = self._choose_among([c for *_, c in out])
            if picked is None:
                return out, False
            base = dataclasses.replace(base, prompts_per_iter=picked.prompts_per_iter,
                                       epochs=picked.epochs)
        final = True
        chosen: dict[str, LoopConfig] = {}
        for gname, g in self.spec["grids"].items():
            lrs = self.grid_lrs(gname, base)
            cfgs = [dataclasses.replace(base, **g["overrides"], lr=lr) for lr in lrs]
            out += [(f"{gname}: lr={_lr_name(c.lr)}", "lr", gname, c) for c in cfgs]
            best = self._choose_among(cfgs)  # every row in: no extension pending (grid_lrs)
            if best is None:
                final = False
            else:
                chosen[gname] = best
        gvb = self.spec["graded_vs_binary"]
        if gvb:
            for gname in gvb["objectives"]:
                if gname not in chosen:
                    final = False
                    continue
                cfg = dataclasses.replace(chosen[gname], reranker=gvb["reranker"], iterations=1)
                out.append((f"{gname}: {gvb['reranker']}, one round", "graded_vs_binary", gname, cfg))
        return out, final

    def _row(self, cfg: LoopConfig) -> dict[str, Any] | None:
        return self.rows.get(_config_hash(cfg))

    def _choose_among(self, cfgs: list[LoopConfig]) -> LoopConfig | None:
        rows = [self._row(c) for c in cfgs]
        if any(r is None for r in rows):
            return None
        best = choose(rows)  # type: ignore[arg-type]
        return cfgs[rows.index(best)]

    def grid_lrs(self, gname: str, base: LoopConfig) -> list[float]:
        """The grid's lrs so far: the study's, plus one extension at a time beyond an edge
        where the choice sits (see :meth:`edge_state`); the last one may still lack its row."""
        lrs = list(self.spec["grids"][gname]["lrs"])
        while True:
            state = self.edge_state(gname, base, lrs)
            if state["next_lr"] is None:
                return lrs
            lrs = sorted(lrs + [state["next_lr"]])

    def edge_state(self, gname: str, base: LoopConfig, lrs: list[float]) -> dict[str, Any]:
        """Whether the grid ``lrs`` brackets its choice: ``next_lr`` (the extension to run, or
        None), ``edge_reason`` (why an edge choice stays), ``extensions``."""
        g = self.spec["grids"][gname]
        study_lrs = g["lrs"]
        cfgs = {lr: dataclasses.replace(base, **g["overrides"], lr=lr) for lr in lrs}
        rows = {lr: self._row(c) for lr, c in cfgs.items()}
        out: dict[str, Any] = {"next_lr": None, "edge_reason": None,
                               "extensions": [lr for lr in lrs if lr not in study_lrs]}
        if any(r is None for r in rows.values()):
            return out
        best_lr = choose(list(rows.values()))["lr"]  # type: ignore[arg-type]
        top = best_lr == max(lrs) and len(lrs) > 1
        low = best_lr == min(lrs) and len(lrs) > 1
        if not (top or low):
            return out
        factor, most = self.spec["extend"]["factor"], self.spec["extend"]["max"]
        where = "top" if top else "bottom"
        beyond = (lambda lr: lr > max(study_lrs)) if top else (lambda lr: lr < min(study_lrs))
        ladder = sorted(lrs) if top else sorted(lrs, reverse=True)  # towards the edge
        side = [lr for lr in ladder if beyond(lr)]
        # extensions that gained no more than 1 paired SE over the lr before them
        no_gain = []
        for lr in side:
            prev = ladder[ladder.index(lr) - 1]
            stats = paired_stats(_scores(rows[prev]), _scores(rows[lr]))  # type: ignore[arg-type]
            if stats.diff <= stats.se:
                no_gain.append(lr)
        cap = 2 * max(most, 1)  # extensions that keep gaining stop here all the same
        if len(no_gain) >= most or len(side) >= cap:
            tried = ", ".join(_lr_name(x) for x in side) or "none"
            out["edge_reason"] = (
                f"the choice (lr {_lr_name(best_lr)}) sits at the {where} edge of the grid; "
                f"extensions tried beyond the study's grid: {tried}; "
                + (f"{len(no_gain)} of them gained no more than 1 paired SE over the lr before "
                   f"them (the rule stops after {most})" if len(side) < cap else
                   f"the cap of {cap} extensions was reached"))
            return out
        out["next_lr"] = best_lr * factor if top else best_lr / factor
        return out

    def chosen(self) -> dict[str, Any]:
        """The choices so far: ``round_size`` and one entry per grid whose rows are in."""
        out: dict[str, Any] = {}
        base = self.base
        rs = self.spec["round_size"]
        if rs is not None:
            cfgs = [dataclasses.replace(base, **rs["fixed"], **o) for o in rs["options"]]
            picked = self._choose_among(cfgs)
            if picked is None:
                return out
            row = self._row(picked)
            out["round_size"] = {"prompts_per_iter": picked.prompts_per_iter,
                                 "epochs": picked.epochs, "name": row["name"],  # type: ignore[index]
                                 **{k: row[k] for k in ("diff", "se", "mde", "verdict")}}  # type: ignore[index]
            base = dataclasses.replace(base, prompts_per_iter=picked.prompts_per_iter,
                                       epochs=picked.epochs)
        for gname, g in self.spec["grids"].items():
            lrs = self.grid_lrs(gname, base)
            cfgs = [dataclasses.replace(base, **g["overrides"], lr=lr) for lr in lrs]
            best = self._choose_among(cfgs)
            if best is None:
                continue
            row = self._row(best)
            assert row is not None
            state = self.edge_state(gname, base, lrs)
            entry = {"name": row["name"], "objective": best.objective, "lr": best.lr,
                     "beta": best.beta, "start": row["start"],
                     "prompts_per_iter": best.prompts_per_iter, "epochs": best.epochs,
                     "iterations": best.iterations, "grid": lrs,
                     "extensions": state["extensions"],
                     "final": state["next_lr"] is None,
                     **{k: row[k] for k in ("diff", "se", "mde", "verdict")},
                     "moved_validation": row["verdict"] == "better"}
            for k in ("diff_round1", "se_round1", "over_optimized"):
                if k in row:
                    entry[k] = row[k]
            if state["edge_reason"]:
                entry["edge_reason"] = state["edge_reason"]
            out[gname] = entry
        return out

    def graded_vs_binary(self) -> dict[str, Any]:
        """Per objective: the graded reranker's one round against the same objective's binary
        round 1 at the same lr (both from the initial policy, seed 0), paired on validation."""
        out: dict[str, Any] = {}
        gvb = self.spec["graded_vs_binary"]
        if not gvb:
            return out
        chosen = self.chosen()
        for gname in gvb["objectives"]:
            c = chosen.get(gname)
            graded = next((r for r in self.rows.values() if r["phase"] == "graded_vs_binary"
                           and r["grid"] == gname and c and r["lr"] == c["lr"]), None)
            binary = next((r for r in self.rows.values() if r["phase"] != "graded_vs_binary"
                           and r["name"] == (c or {}).get("name")), None)
            if graded is None or binary is None or "val_correct_round1" not in binary:
                continue
            stats = paired_stats(_scores(binary, "_round1"), _scores(graded))
            out[gname] = {"objective": graded["objective"], "lr": graded["lr"],
                          "reranker": graded["reranker"], "binary_val_greedy_round1":
                          float(_scores(binary, "_round1").mean()),
                          "graded_val_greedy": graded["val_greedy"],
                          "graded_lists": graded.get("lists"), "binary_lists": binary.get("lists"),
                          "a": "graded", "b": "binary", "diff": stats.diff, "se": stats.se,
                          "mde": stats.mde, "n": stats.n, "gained": stats.gained,
                          "lost": stats.lost, "verdict": stats.verdict, "seeds": 1}
        return out


def _free(folder: Path) -> bool:
    """Whether no other process holds the run folder's lock right now."""
    import fcntl

    lock_path = folder.with_name(folder.name + ".lock")
    if not lock_path.exists():
        return True
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
    return True


def prior_rows(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Rows of an earlier report of a staged study (``tuning_validation.json``), by config
    hash: a setting finished in an earlier session (whose run folder is gone) is read back
    from the committed report instead of run again."""
    if path is None or not Path(path).is_file():
        return {}
    record = json.loads(Path(path).read_text())
    rows = record.get("metrics", {}).get("rows", [])
    return {r["config_hash"]: r for r in rows
            if "config_hash" in r and "config" in r
            and _config_hash_of(r["config"]) == r["config_hash"]}


def _config_hash_of(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


def tune_staged(params: Any, spec: dict[str, Any], runs_dir: str | Path | None = None,
                prior: dict[str, dict[str, Any]] | None = None,
                on_progress: Any = None, poll: float = _POLL_SECONDS,
                reload_prior: Any = None) -> dict[str, Any]:
    """Run a staged study (:func:`load_study` of a file with ``grids``): see the section's
    comment. ``prior``: rows of an earlier report (:func:`prior_rows`) taken instead of
    running those settings again. ``on_progress(result)`` is called with the partial result
    after every setting this process finishes or reads back; ``reload_prior()``, if given,
    refreshes ``prior`` before each pass (rows another process of the study reported)."""
    from .paths import runs_dir as runs_root

    n_val = spec["n_val"] or params.n_val
    runs = Path(runs_dir) if runs_dir else runs_root() / params.preset / "tune"
    base = LoopConfig.from_params(params, alignment=True, **spec["base"])
    base = dataclasses.replace(base, eval_split="validation", n_val=n_val)
    state = _Staged(spec, base, runs, prior or {})
    init_scores: dict[str, np.ndarray] = {}  # per start: every setting's round 0 agrees
    while True:
        if reload_prior is not None:
            state.prior = {**state.prior, **reload_prior()}
        settings, final = state.settings()
        todo = [(n, p, g, c) for n, p, g, c in settings if _config_hash(c) not in state.rows]
        progressed = False
        for name, phase, grid, cfg in todo:
            cfg.validate()
            h = _config_hash(cfg)
            folder = runs / f"{cfg.objective}-{h}"
            results = finished_rows(cfg, folder)
            if results is None and h in state.prior:
                row = dict(state.prior[h], name=name, phase=phase, grid=grid, read_back=True)
            else:
                if results is None:
                    if not _free(folder):
                        continue  # another process of the study runs it
                    results = run_locked(cfg, folder, resume=True)
                row = _setting_row(cfg, results, name, phase, grid, folder)
            scores = _scores(row, "_init")
            seen = init_scores.setdefault(row["start"], scores)
            if not np.allclose(seen, scores, atol=1e-6):
                raise ValueError(f"{folder}: its initial policy scored differently from the "
                                 "other settings' on the same validation problems; delete the "
                                 "tune runs and start again")
            state.rows[h] = row
            progressed = True
            print({k: row[k] for k in ("name", "val_greedy_init", "val_greedy", "diff", "se",
                                       "seconds")}, flush=True)
            if on_progress is not None:
                on_progress(_staged_result(state, spec, base, complete=False))
            break  # the settings list may have grown: recompute it
        if not progressed:
            if final and not todo:
                break
            time.sleep(poll)  # the rest is held by other processes, or waits on their choices
    return _staged_result(state, spec, base, complete=True)


def _staged_result(state: _Staged, spec: dict[str, Any], base: LoopConfig,
                   complete: bool) -> dict[str, Any]:
    settings, final = state.settings()
    order = {_config_hash(c): i for i, (*_, c) in enumerate(settings)}
    rows = sorted(state.rows.values(), key=lambda r: order.get(r["config_hash"], len(order)))
    pending = [n for n, _, _, c in settings if _config_hash(c) not in state.rows]
    first = next((r for r in rows if r["start"] == "initial"), rows[0] if rows else None)
    return {"split": "validation", "task": base.task, "staged": True,
            "n_val": len(_scores(first, "_init")) if first else base.n_val,
            "study": spec.get("path"), "base": spec["base"],
            "complete": complete and final and not pending, "pending": pending,
            "val_greedy_init": first["val_greedy_init"] if first else None,
            "rows": rows, "chosen": state.chosen(), "graded_vs_binary": state.graded_vs_binary()}
