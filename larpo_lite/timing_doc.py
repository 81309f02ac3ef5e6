"""``docs/timing.md``, generated: how long the committed default run took, against the plan it
was run with, and what was given up to fit, every number and setting read from
``reports/timing.json``, ``benchmarks/results/default_run_plan.json`` and
``params/default.yaml``.

    python -m larpo_lite.timing_doc           # rewrite docs/timing.md
    python -m larpo_lite.timing_doc --check   # exit 1 when it is stale

The default run rewrites it at its end (``larpo-lite notebooks``), after its timing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .paths import repo_root

AIM_MIN, LIMIT_MIN = 120, 150  # the default run's budget on 2 cores: aim, and the loop's minimum
PLAN = "benchmarks/results/default_run_plan.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _min(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _given_up(p: Any, plan: dict[str, Any]) -> list[str]:
    """What the default preset leaves out to fit, each with what it costs in power or time."""
    u = plan.get("unit_costs", {})
    greedy = u.get("greedy_per_problem")
    seeds = len(p.train_seeds)
    out = [f"The headline arms (iterative DPO and the listwise objective chosen on validation) run "
           f"{seeds} seed{'s' if seeds != 1 else ''}; the other listwise objectives and offline DPO "
           "run one, labelled single-seed, so their rows are never counted as reproduced."]
    if greedy and seeds > 1:
        saved = 2 * (seeds - 1) * p.iterations * p.n_val * greedy
        out.append(f"Validation accuracy is measured on the first seed only (over-optimization is "
                   f"read there); the other seeds skip it, about {_min(saved)} of work.")
    out.append(f"05 and 06 train on {p.sweep_prompts_per_iter} prompts per round and compare on "
               f"{p.n_eval_sweep} test problems: each of their rows prints its minimum detectable "
               "effect, so an effect smaller than that is inconclusive there.")
    out.append("Graded against binary lists is compared in the validation study (one round of "
               "each listwise objective, `metrics.graded_vs_binary` of "
               "`reports/tuning_validation.json`), not in the default run's notebooks.")
    if not p.paper_k2:
        out.append("The paper's iterative DPO at k=2 (fewer samples than every other arm) is off "
                   "(`paper_k2`); 07 compares arms on one sampling budget.")
    out.append(f"Recall@N after training is measured for the initial policy and the headline arms' "
               f"first seed, on {p.n_eval_sweep} test problems with {p.n_samples} samples each.")
    return out


def render(root: str | Path | None = None) -> str:
    """The whole of ``docs/timing.md`` from the files under ``root`` (the repository)."""
    from .config import Params
    from .reports import cpu_model

    root = Path(root) if root else repo_root()
    timing = _read(root / "reports" / "timing.json")
    plan = _read(root / PLAN)
    p = Params.load(str(root / "params" / "default.yaml"))
    suite = timing.get("suite", {})
    lines = ["# How long it takes", "",
             f"Measured where the committed numbers came from ({cpu_model()}, {os.cpu_count()} "
             "cores, no GPU). Back to the [README](../README.md); throughput and memory "
             "benchmarks are in [benchmarks.md](benchmarks.md). This page is generated "
             "(`python -m larpo_lite.timing_doc`) from `reports/timing.json`, the plan in "
             f"`{PLAN}` and `params/default.yaml`.", "", "## The default run", ""]
    if suite:
        total = float(suite["seconds"])
        reused = suite.get("reused")
        how = ("(what it reused from earlier work was not recorded then)" if reused is None else
               "from an empty `runs/` (no work made before the run was reused)" if not reused
               else f"reusing {len(reused)} trained round(s) made before it: " + "; ".join(reused))
        seg = suite.get("segments") or []
        resumed = (f" It was cut and resumed: {len(seg)} segments "
                   f"({', '.join(f'{s:.0f} s' for s in seg)}), summed." if suite.get("resumed") else "")
        verdict = ("within the aim" if total <= AIM_MIN * 60 else
                   f"over the {AIM_MIN}-minute aim and within the {LIMIT_MIN}-minute limit that "
                   "the looping default's minimum needs" if total <= LIMIT_MIN * 60 else
                   f"over the {LIMIT_MIN}-minute limit")
        lines += [f"The committed figures, reports, executed copies, replay records and guide are the "
                  f"default run of {suite.get('date')}: `make notebooks` ran {how} in "
                  f"**{total:.0f} s ({_min(total)})** of wall time, {suite.get('jobs')} notebooks at "
                  f"a time, {verdict}.{resumed}", ""]
    else:
        lines += ["No default run is recorded in `reports/timing.json` yet.", ""]
    nbs, rep, sol = (timing.get(k, {}) for k in ("notebooks", "replay", "solutions"))
    if nbs:
        if suite.get("resumed"):
            lines += ["A resumed run executes every notebook again, so each notebook's seconds "
                      "below are its last execution, which reads back the rounds that earlier "
                      "segments trained. The total above counts every segment.", ""]
        lines += ["| notebook | seconds | replay seconds | solutions seconds |", "|---|---|---|---|"]
        for name in sorted(nbs):
            s = sol.get(f"{name}_solutions", {}).get("seconds", "-")
            lines.append(f"| {name} | {nbs[name]['seconds']} | {rep.get(name, {}).get('seconds', '-')} | {s} |")
        lines.append("")
    again = timing.get("reexecuted", {})
    if again:
        lines += ["After the run, executed again alone (`make notebooks ONLY=...`, reading the "
                  "same run folders; not part of the total above): "
                  + ", ".join(f"{n} in {e['seconds']} s" for n, e in sorted(again.items())) + ".", ""]
    if plan:
        u = plan.get("unit_costs", {})
        lines += ["## The plan", "",
                  f"Planned before the run (`benchmarks/default_run_plan.py`, {plan.get('measured', '?')[:10]}) "
                  "from unit costs measured in the validation study's rounds (one thread, two "
                  f"processes busy): sampling {u.get('sample_per_seq', 0):.3f} s per response, training "
                  f"{u.get('train_per_list', 0):.2f} s per list (all its epochs), greedy "
                  f"{u.get('greedy_per_problem', 0):.3f} s per problem; "
                  f"{plan.get('lists_per_round')} lists per round.", "",
                  "| work | planned thread-seconds |", "|---|---|"]
        lines += [f"| {r['work']} | {r['seconds']} |" for r in plan.get("rows", [])]
        lines += ["", f"In all {plan.get('thread_seconds')} thread-seconds: about "
                  f"{plan.get('two_slot_minutes')} minutes on two slots.", ""]
    lines += ["## What was given up to fit", "", *[f"- {x}" for x in _given_up(p, plan)], ""]
    return "\n".join(lines)


def doc_path(root: str | Path | None = None) -> Path:
    return (Path(root) if root else repo_root()) / "docs" / "timing.md"


def write(root: str | Path | None = None) -> Path:
    """Rewrite ``docs/timing.md`` (atomically)."""
    from .reports import replace_atomically

    path = doc_path(root)
    text = render(root).encode()
    replace_atomically(path, lambda f: f.write(text))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m larpo_lite.timing_doc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/timing.md is stale")
    args = ap.parse_args(argv)
    if args.check:
        from .reports import check_generated

        return check_generated(doc_path(), render(), "larpo_lite.timing_doc")
    print(write())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
